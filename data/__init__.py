"""Datasets, samplers and loaders; ``make_data_loaders(cfg)`` is the entry point."""
from .build import DataBundle, make_data_loaders
from .reid_folder import ImageRecord

__all__ = ["DataBundle", "ImageRecord", "make_data_loaders"]
