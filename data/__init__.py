"""Datasets, samplers and loaders; ``make_data_loaders(cfg)`` is the entry point."""
from .build import DataBundle, TestData, make_data_loaders, make_test_data, records_loader
from .reid_folder import ImageRecord

__all__ = ["DataBundle", "ImageRecord", "TestData", "make_data_loaders", "make_test_data", "records_loader"]
