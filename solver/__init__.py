from .lr_scheduler import WarmupMultiStepLR
from .optimizer import make_center_optimizer, make_optimizer

__all__ = ["WarmupMultiStepLR", "make_center_optimizer", "make_optimizer"]
