from .build import make_loss

__all__ = ["make_loss"]
