"""One logger tree ("jifd.*") writing to the console and OUTPUT_DIR/log.txt."""
import logging
import os
import sys

_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


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
    formatter = logging.Formatter(_FORMAT, datefmt="%H:%M:%S")
    console = logging.StreamHandler(stream=sys.stdout)
    console.setLevel(logging.INFO)
    console.setFormatter(formatter)
    logger.addHandler(console)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        to_file = logging.FileHandler(os.path.join(output_dir, filename), mode="a")
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
