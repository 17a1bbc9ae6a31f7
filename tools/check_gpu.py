"""Check a new machine before training: python tools/check_gpu.py [--configs F ...] [--iterations N]

On CUDA: each protocol configuration at its real size on generated images, with fp16 autocast + GradScaler
and channels_last (images/s, peak GPU memory, fp16 vs fp32 loss), evaluation on the GPU against the CPU, and
with 2+ GPUs a 2-process nccl run. Without CUDA it says so and runs the same checks on the CPU at a small size.
Exit code 0 when every check passed, 1 otherwise.
"""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from engine.gpu_check import protocol_configs, run_checks  # noqa: E402
from utils.cli import run_cli  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.logger import setup_logger  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=None,
                        help="config files to check (default: every configs/*2opri.yml)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="timed training iterations per config (default 10 on CUDA, 3 on the CPU)")
    parser.add_argument("--skip_two_processes", action="store_true",
                        help="leave out the 2-process (nccl / gloo) check")
    parser.add_argument("--cpu", action="store_true", help="run the CPU checks even where CUDA is present")
    args = parser.parse_args()
    if args.iterations is not None and args.iterations < 1:
        raise UserError(f"--iterations must be at least 1, got {args.iterations}")
    setup_logger()
    report = run_checks(args.configs or protocol_configs(), iterations=args.iterations,
                        two_processes=not args.skip_two_processes, cpu=args.cpu,
                        out=lambda line: print(line, flush=True))
    return 1 if report.failed else 0


if __name__ == "__main__":
    run_cli(main)
