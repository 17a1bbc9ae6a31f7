"""Write test features to .npz:
python tools/extract_features.py --config_file F TEST.WEIGHT model.pth (--folder DIR | --split query|gallery|train)
    --out features.npz [KEY VALUE ...]"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from engine.tester import extract_to_file  # noqa: E402
from utils.cli import run_cli, start_test_tool  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Extract the test features of TEST.WEIGHT (TEST.FLIP, TEST.NECK_FEAT apply) for a folder of "
                    "images or a dataset split, into a .npz with arrays features, pids, camids, paths.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", default="",
                        help="a folder of images; names that the dataset's PATTERN does not read get pid/camid -1")
    source.add_argument("--split", default="", choices=("query", "gallery", "train"),
                        help="a split of --dataset (junk images dropped, as in evaluation)")
    parser.add_argument("--dataset", default="",
                        help="veri, vehiclex or opri: whose split, or whose PATTERN labels --folder's images "
                             "(default DATASETS.TARGET; for --split train the first of DATASETS.SOURCES)")
    parser.add_argument("--out", required=True, help="the .npz file to write")
    args, cfg = start_test_tool(parser, "extract_features_log.txt")
    extract_to_file(cfg, args.out, folder=args.folder, split=args.split, dataset=args.dataset)


if __name__ == "__main__":
    run_cli(main)
