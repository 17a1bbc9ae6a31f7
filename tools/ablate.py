"""Run the ablation rows of one protocol over seeds and tabulate them:
python tools/ablate.py --config_file F [--seeds N] [--rows R1,R2,...] [KEY VALUE ...]"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from config import load_cfg  # noqa: E402
from engine.ablation import ROWS, format_markdown, run_ablation  # noqa: E402
from utils.cli import add_config_arguments, run_cli  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.logger import setup_logger  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Train the rows (baseline, +image, +feature, full, +mixstyle) of one config for each "
                    "seed; writes OUTPUT_DIR/ablation.csv, ablation.md (mean ± std, paired 95%% intervals) "
                    "and, with DATASETS.VALIDATION, validation.csv.")
    add_config_arguments(parser)
    parser.add_argument("--seeds", type=int, default=1,
                        help="number of seeds: SOLVER.SEED, SOLVER.SEED + 1, ... (default 1)")
    parser.add_argument("--rows", default=",".join(ROWS), type=lambda text: [row for row in text.split(",") if row],
                        help=f"comma-separated rows to run, of {','.join(ROWS)} (default: all)")
    # Flags and KEY VALUE overrides in any order: ... --seeds 3 OUTPUT_DIR x  or  ... OUTPUT_DIR x --seeds 3
    args = parser.parse_intermixed_args()
    if args.seeds < 1:
        raise UserError(f"--seeds must be 1 or more, got {args.seeds}")
    unknown = [row for row in args.rows if row not in ROWS]
    if unknown:
        raise UserError(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    cfg = load_cfg(args.config_file, args.opts)
    setup_logger(cfg.OUTPUT_DIR, filename="ablation_log.txt")
    results = run_ablation(cfg, seeds=args.seeds, rows=args.rows)
    print(format_markdown(results))


if __name__ == "__main__":
    run_cli(main)
