"""Test a checkpoint: python tools/test.py --config_file F TEST.WEIGHT model.pth [KEY VALUE ...]"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from engine.tester import do_test  # noqa: E402
from utils.cli import add_config_arguments, load_test_tool_cfg, run_cli  # noqa: E402
from utils.logger import setup_logger  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Test a re-ID checkpoint (this project's or a Bag-of-Tricks state dict) on DATASETS.TARGET.")
    add_config_arguments(parser)
    args = parser.parse_args()
    cfg = load_test_tool_cfg(args)
    setup_logger(cfg.OUTPUT_DIR, filename="test_log.txt")
    do_test(cfg)


if __name__ == "__main__":
    run_cli(main)
