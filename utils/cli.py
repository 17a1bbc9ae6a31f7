"""Entry-point wrapper: user mistakes become one line on stderr, not a traceback."""
import logging
import os
import sys

from config import ConfigError

from .errors import UserError


def run_cli(main):
    """Call ``main()``; a UserError or ConfigError prints ``error: ...`` and exits 2."""
    try:
        code = main()
    except (UserError, ConfigError) as err:
        logging.shutdown()
        # Under torchrun every process meets the same mistake; label all but the first.
        rank = int(os.environ.get("RANK", "0"))
        print(f"error (rank {rank}): {err}" if rank else f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def add_config_arguments(parser):
    """The arguments every tool shares: a config file and KEY VALUE overrides."""
    parser.add_argument("--config_file", default="", help="path to a YAML config file")
    parser.add_argument("opts", nargs="*", default=[], help="KEY VALUE pairs overriding the config")
    return parser
