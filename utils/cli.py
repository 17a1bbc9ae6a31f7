"""Entry-point wrapper: user mistakes become one line on stderr, not a traceback."""
import logging
import os
import signal
import sys

from config import ConfigError

from .errors import UserError
from .logger import printable


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
    parser.add_argument("--config_file", default="", help="path to a YAML config file")
    parser.add_argument("opts", nargs="*", default=[], help="KEY VALUE pairs overriding the config")
    return parser
