from .defaults import _C as cfg
from .loader import RUN_CONFIG_NAME, ConfigError, dump_cfg, get_default_cfg, load_cfg

__all__ = ["cfg", "ConfigError", "RUN_CONFIG_NAME", "dump_cfg", "get_default_cfg", "load_cfg"]
