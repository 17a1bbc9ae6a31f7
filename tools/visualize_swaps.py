"""Swap grid from a checkpoint: python tools/visualize_swaps.py --config_file F TEST.WEIGHT ckpt [KEY VALUE ...]

Rows are ID sources (from --id_dir), columns are domain sources (from
--domain_dir); without the folders, the training folders of the first two
DATASETS.SOURCES (or of the only one) are used.
"""
import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from config import load_cfg  # noqa: E402
from engine.runtime import resolve_device  # noqa: E402
from engine.visualization import (  # noqa: E402
    default_grid_folders, load_image_disentangler, swap_grid_from_folders)
from utils.cli import add_config_arguments, run_cli  # noqa: E402
from utils.errors import UserError  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Draw the image-level swap grid of a training checkpoint (TEST.WEIGHT).")
    parser.add_argument("--id_dir", default="", help="folder of the ID-source images (rows)")
    parser.add_argument("--domain_dir", default="", help="folder of the domain-source images (columns)")
    parser.add_argument("--num", type=int, default=6, help="images taken from each folder")
    parser.add_argument("--output", default="",
                        help="PNG to write; default OUTPUT_DIR/swaps_<checkpoint name>.png")
    add_config_arguments(parser)
    args = parser.parse_args()
    if args.num < 1:
        raise UserError(f"--num {args.num}: take at least 1 image from each folder")
    cfg = load_cfg(args.config_file, args.opts)
    disentangler = load_image_disentangler(cfg, cfg.TEST.WEIGHT)
    id_dir, domain_dir = args.id_dir, args.domain_dir
    if not (id_dir and domain_dir):
        default_id_dir, default_domain_dir = default_grid_folders(cfg)
        id_dir, domain_dir = id_dir or default_id_dir, domain_dir or default_domain_dir
    grid = swap_grid_from_folders(disentangler, id_dir, domain_dir, args.num,
                                  resolve_device(cfg.MODEL.DEVICE))
    output = args.output or os.path.join(
        cfg.OUTPUT_DIR, f"swaps_{pathlib.Path(cfg.TEST.WEIGHT).stem}.png")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    grid.save(output)
    print(output)


if __name__ == "__main__":
    run_cli(main)
