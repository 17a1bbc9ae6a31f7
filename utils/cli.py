"""Entry-point wrapper: user mistakes become one line on stderr, not a traceback."""
import logging
import os
import pathlib
import signal
import sys

from config import ConfigError, load_cfg

from .errors import UserError
from .logger import printable, setup_logger


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's or torchrun's stop), handled like Ctrl-C: the run unwinds, temporary files go."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _interrupted(err):
    """Log the interruption (to log.txt too) and exit as a shell does for the signal."""
    name, code = ("SIGTERM", 128 + signal.SIGTERM) if isinstance(err, Terminated) else ("SIGINT", 130)
    logging.getLogger("jifd").warning("interrupted by %s: the run stopped; checkpoints already written are kept "
                                      "(continue a training with --resume OUTPUT_DIR)", name)
    logging.shutdown()
    print(f"interrupted ({name})", file=sys.stderr)
    sys.exit(code)


def run_cli(main):
    """Call ``main()``; a UserError or ConfigError prints ``error: ...`` and exits 2; SIGINT and SIGTERM are
    logged as interruptions and exit 130 and 143."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code = main()
    except (UserError, ConfigError) as err:
        logging.shutdown()
        # Under torchrun every process meets the same mistake; label all but the first.
        rank = int(os.environ.get("RANK", "0"))
        message = printable(str(err))
        print(f"error (rank {rank}): {message}" if rank else f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        _interrupted(err)
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(code or 0)


def add_config_arguments(parser):
    """The arguments every tool shares: a config file and KEY VALUE overrides."""
    # --config-file is how fast-reid and torchreid spell it.
    parser.add_argument("--config_file", "--config-file", dest="config_file", default="",
                        help="path to a YAML config file")
    parser.add_argument("opts", nargs="*", default=[], help="KEY VALUE pairs overriding the config")
    return parser


def given_on_command_line(opts, key):
    """Whether ``key`` is among the KEY VALUE overrides."""
    return key in list(opts)[::2]


def test_output_dir(cfg, opts):
    """Where a test-time tool writes: OUTPUT_DIR when the command line sets it, else OUTPUT_DIR/test_<weight stem>.

    A training run's config names the run's own folder as OUTPUT_DIR; testing its
    checkpoints into a sub-folder keeps the run's metrics.json, cmc.png and logs.
    """
    if given_on_command_line(opts, "OUTPUT_DIR"):
        return cfg.OUTPUT_DIR
    return os.path.join(cfg.OUTPUT_DIR, f"test_{pathlib.Path(cfg.TEST.WEIGHT).stem or 'weights'}")


def load_test_tool_cfg(args):
    """The config of a test-time tool (test, extract_features, visualize_*), OUTPUT_DIR set by test_output_dir."""
    cfg = load_cfg(args.config_file, args.opts)
    cfg.defrost()
    cfg.OUTPUT_DIR = test_output_dir(cfg, args.opts)
    cfg.freeze()
    return cfg


def start_test_tool(parser, log_name):
    """Parse a test-time tool's command line (its options, --config_file and KEY VALUE pairs, in any order),
    load its config (load_test_tool_cfg) and log to OUTPUT_DIR/``log_name``; returns (args, cfg)."""
    add_config_arguments(parser)
    args = parser.parse_intermixed_args()
    cfg = load_test_tool_cfg(args)
    setup_logger(cfg.OUTPUT_DIR, filename=log_name)
    return args, cfg
