"""One logger tree ("jifd.*") writing to the console and OUTPUT_DIR/log.txt."""
import logging
import os
import sys

from .file_faults import make_folder

_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


def printable(text):
    """``text`` with what no UTF-8 stream can write escaped: a file name that is not UTF-8 (which Python
    holds as lone surrogates) shows its bytes as \\xNN instead of failing the write."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _PrintableFormatter(logging.Formatter):
    def format(self, record):
        return printable(super().format(record))


class _EarlyRecords(logging.Handler):
    """Keeps what "jifd.*" logs before setup_logger runs (the config loader's warnings, logged before
    OUTPUT_DIR is known), so that setup_logger can pass it on to the console and log.txt."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


_early = _EarlyRecords()
logging.getLogger("jifd").addHandler(_early)


def setup_logger(output_dir="", distributed_rank=0, filename="log.txt"):
    """Configure the "jifd" logger; only rank 0 writes anything."""
    logger = logging.getLogger("jifd")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if distributed_rank > 0:
        logger.addHandler(logging.NullHandler())
        _early.records.clear()
        return logger
    formatter = _PrintableFormatter(_FORMAT, datefmt="%H:%M:%S")
    console = logging.StreamHandler(stream=sys.stdout)
    console.setLevel(logging.INFO)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if output_dir:
        make_folder(output_dir, "OUTPUT_DIR")
        to_file = logging.FileHandler(os.path.join(output_dir, filename), mode="a", encoding="utf-8")
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(formatter)
        logger.addHandler(to_file)
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.handlers = logger.handlers
    for record in _early.records:
        logger.handle(record)
    _early.records.clear()
    return logger
