"""Test a checkpoint: python tools/test.py --config_file F TEST.WEIGHT model.pth [KEY VALUE ...]"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from engine.tester import do_test  # noqa: E402
from utils.cli import run_cli, start_test_tool  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Test a re-ID checkpoint (this project's or a Bag-of-Tricks state dict) on DATASETS.TARGET.")
    _, cfg = start_test_tool(parser, "test_log.txt")
    do_test(cfg)


if __name__ == "__main__":
    run_cli(main)
