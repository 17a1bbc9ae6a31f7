"""Write the generated demo datasets: python tools/make_demo_data.py --root DIR [--preset P] [--seed N] [--scale S]"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from data.demo import PRESETS, describe_summary, generate_demo_data  # noqa: E402
from utils.cli import run_cli  # noqa: E402
from utils.errors import UserError  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Write demo VeRi, VehicleX and Opri trees of generated vehicle images, "
                    "laid out and named like the real datasets.")
    parser.add_argument("--root", required=True, help="folder to hold veri/, vehiclex/ and opri/ (DATASETS.ROOT_DIR)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images (DATASETS.DEMO_SEED)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                        help="size of the tree (DATASETS.DEMO_PRESET): demo, or bench for configs/bench_jifd.yml")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the number of identities")
    parser.add_argument("--workers", type=int, default=0, help="rendering processes (0: one per core)")
    args = parser.parse_args()
    if args.scale <= 0:
        raise UserError(f"--scale must be positive, got {args.scale}")
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    summary = generate_demo_data(args.root, seed=args.seed, scale=args.scale, workers=args.workers or None,
                                 preset=args.preset)
    print(f"{args.preset} data (seed {args.seed}) written to {summary['root']} in {summary['seconds']:.1f} s")
    print(describe_summary(summary))


if __name__ == "__main__":
    run_cli(main)
