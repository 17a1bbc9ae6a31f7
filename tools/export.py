"""Export the test-time network and check it against PyTorch:
python tools/export.py --config_file F TEST.WEIGHT model.pth --format onnx|torchscript --out FILE [KEY VALUE ...]

The exported network takes RGB images in [0, 1] (N x 3 x INPUT.SIZE_TEST) and returns the features that
evaluation ranks, normalised as the config says (see README, "Export"). Exit code 0 when the exported
features match PyTorch's within 1e-4, 1 when they do not, 2 for a mistake in the command or the config.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from config import load_cfg  # noqa: E402
from engine.export import FORMATS, TOLERANCE, export_model  # noqa: E402
from utils.cli import add_config_arguments, run_cli  # noqa: E402
from utils.logger import setup_logger  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description="Export TEST.WEIGHT's test-time network (pixel normalisation, backbone, feature level, neck, "
                    "feature normalisation) to ONNX or TorchScript, then compare its features with PyTorch's.")
    parser.add_argument("--format", required=True, choices=FORMATS, help="onnx or torchscript")
    parser.add_argument("--out", required=True, help="the file to write (.onnx, .pt)")
    parser.add_argument("--num_images", type=int, default=8, help="images of the parity check")
    add_config_arguments(parser)
    args = parser.parse_intermixed_args()
    cfg = load_cfg(args.config_file, args.opts)
    setup_logger()
    difference, count, where = export_model(cfg, args.format, args.out, max(1, args.num_images))
    verdict = "passed" if difference <= TOLERANCE else "FAILED"
    print(f"{args.format} parity check {verdict}: max abs difference {difference:.3g} between the exported and "
          f"PyTorch features of {count} {where} (tolerance {TOLERANCE:g})")
    return 0 if difference <= TOLERANCE else 1


if __name__ == "__main__":
    run_cli(main)
