"""Train the BoT baseline or JIFD: python tools/train.py --config_file F [KEY VALUE ...]

Several GPUs or nodes: torchrun --nproc_per_node N tools/train.py ... (see README).
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from config import load_cfg  # noqa: E402
from engine.distributed import distributed_processes, rank  # noqa: E402
from engine.run_folder import hold_run_folder, output_dir_for_resume  # noqa: E402
from engine.trainer import do_train  # noqa: E402
from utils.cli import add_config_arguments, given_on_command_line, run_cli  # noqa: E402
from utils.logger import setup_logger  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description="Train a vehicle re-ID model (BoT baseline or JIFD).")
    add_config_arguments(parser)
    parser.add_argument("--resume", default="",
                        help="a run folder (its newest checkpoint) or a checkpoint file to continue from")
    args = parser.parse_args()
    cfg = load_cfg(args.config_file, args.opts)
    if args.resume:
        cfg = output_dir_for_resume(cfg, args.resume, output_dir_given=given_on_command_line(args.opts, "OUTPUT_DIR"))
    # Locked before the log is opened, so that a run refused for a busy folder writes nothing in it.
    with distributed_processes(cfg.MODEL.DEVICE) as backend, hold_run_folder(cfg.OUTPUT_DIR):
        logger = setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank())
        logger.info("config file %s, overrides %s", args.config_file or "(defaults)", args.opts)
        if backend:
            logger.info("torchrun: distributed training with backend %s", backend)
        logger.debug("full config:\n%s", cfg.dump())
        do_train(cfg, resume=args.resume)


if __name__ == "__main__":
    run_cli(main)
