"""t-SNE of a checkpoint's features, coloured by domain and by identity:
python tools/visualize_features.py --config_file F TEST.WEIGHT model.pth [--what both|source|test] [--out PNG]
    [KEY VALUE ...]"""
import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from engine.visualization import FEATURE_MAP_CHOICES, visualize_features  # noqa: E402
from utils.cli import run_cli, start_test_tool  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Draw a t-SNE map of TEST.WEIGHT's features of the sources' training images and the "
                    "target's test images: one panel coloured by domain, one by identity.")
    parser.add_argument("--what", default="both", choices=FEATURE_MAP_CHOICES,
                        help="the sources' training images, the target's query + gallery, or both (default)")
    parser.add_argument("--per_domain", type=int, default=300, help="images per domain (whole identities)")
    parser.add_argument("--num_ids", type=int, default=12, help="identities drawn in colour in the right panel")
    parser.add_argument("--out", default="",
                        help="PNG to write (default OUTPUT_DIR/test_<weight name>/features_tsne.png, or "
                             "OUTPUT_DIR/features_tsne.png when OUTPUT_DIR is on the command line)")
    args, cfg = start_test_tool(parser, "visualize_features_log.txt")
    out = args.out or os.path.join(cfg.OUTPUT_DIR, "features_tsne.png")
    visualize_features(cfg, out, args.what, max(1, args.per_domain), max(0, args.num_ids))
    print(out)


if __name__ == "__main__":
    run_cli(main)
