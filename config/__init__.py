from .defaults import _C as cfg
from .loader import ConfigError, get_default_cfg, load_cfg

__all__ = ["cfg", "ConfigError", "get_default_cfg", "load_cfg"]
