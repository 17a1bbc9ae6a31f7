"""Run the four ablation rows of one protocol and tabulate them:
python tools/ablate.py --config_file F [KEY VALUE ...]"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from config import load_cfg  # noqa: E402
from engine.ablation import format_markdown, run_ablation  # noqa: E402
from utils.cli import add_config_arguments, run_cli  # noqa: E402
from utils.logger import setup_logger  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Train baseline, +image, +feature and full JIFD with one config; "
                    "writes OUTPUT_DIR/ablation.md and ablation.csv.")
    add_config_arguments(parser)
    args = parser.parse_args()
    cfg = load_cfg(args.config_file, args.opts)
    setup_logger(cfg.OUTPUT_DIR, filename="ablation_log.txt")
    results = run_ablation(cfg)
    print(format_markdown(results))


if __name__ == "__main__":
    run_cli(main)
