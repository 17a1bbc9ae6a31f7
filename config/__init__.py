from .defaults import _C as cfg
from .loader import ConfigError, dump_cfg, get_default_cfg, load_cfg

__all__ = ["cfg", "ConfigError", "dump_cfg", "get_default_cfg", "load_cfg"]
