"""Check the configured datasets without training: python tools/check_dataset.py --config_file F [KEY VALUE ...]

Prints, per split, the ids, images and cameras found, the published counts,
badly named and unreadable files, training ids seen by one camera only and
queries without a gallery match on another camera. Exit code 0 when there
is no error (warnings allowed), 1 when there are errors, 2 for a mistake in
the command or the config.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from config import load_cfg  # noqa: E402
from data.dataset_check import check_datasets, default_workers, format_reports  # noqa: E402
from utils.cli import add_config_arguments, run_cli  # noqa: E402
from utils.logger import printable, setup_logger  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description="Check the configured datasets (sources and target).")
    add_config_arguments(parser)
    parser.add_argument("--workers", type=int, default=None,
                        help="processes decoding images (default: DATALOADER.NUM_WORKERS, at most the CPUs)")
    args = parser.parse_args()
    cfg = load_cfg(args.config_file, args.opts)
    setup_logger()
    workers = default_workers(cfg) if args.workers is None else args.workers
    reports = check_datasets(cfg, workers)
    print(printable(format_reports(reports)))
    return 1 if any(report.errors for report in reports) else 0


if __name__ == "__main__":
    run_cli(main)
