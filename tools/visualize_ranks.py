"""Draw the worst queries' ranked lists:
python tools/visualize_ranks.py --config_file F TEST.WEIGHT model.pth [--num_queries N] [--out DIR] [KEY VALUE ...]"""
import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from engine.visualization import TOP_K, visualize_ranks  # noqa: E402
from utils.cli import run_cli, start_test_tool  # noqa: E402


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main():
    parser = argparse.ArgumentParser(
        description=f"One PNG per query of DATASETS.TARGET: the query and its top-{TOP_K} gallery images, framed "
                    "green (true match) or red, with the query's AP; lowest AP first.")
    parser.add_argument("--num_queries", type=positive_int, default=20, help="how many of the worst queries to draw")
    parser.add_argument("--out", default="",
                        help="output folder (default OUTPUT_DIR/test_<weight name>/ranks, or OUTPUT_DIR/ranks when "
                             "OUTPUT_DIR is on the command line)")
    args, cfg = start_test_tool(parser, "visualize_ranks_log.txt")
    visualize_ranks(cfg, args.num_queries, args.out or os.path.join(cfg.OUTPUT_DIR, "ranks"))


if __name__ == "__main__":
    run_cli(main)
