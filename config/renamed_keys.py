"""Keys that this project has renamed: the old names still load, with one warning each, naming the new key.

The loader (config/loader.py) asks ``new_name`` about every key before it is
set, and run folders translate the keys of an earlier run's config.yaml the
same way, so that a resume compares like with like.
"""
import logging

logger = logging.getLogger("jifd.config")

# old key -> (new key, why the name changed)
RENAMED = {
    "SOLVER.WARMUP_ITERS": ("SOLVER.WARMUP_EPOCHS", "the learning-rate warm-up counts epochs, as it did under "
                                                    "reid-strong-baseline's name"),
    "DISENTANGLE.IMAGE.WARMUP_ITERS": ("DISENTANGLE.IMAGE.WARMUP_ITERATIONS", "the generator warm-up counts "
                                                                              "iterations"),
}


def new_name(key):
    """The current name of ``key`` (``key`` itself unless it was renamed)."""
    return RENAMED[key][0] if key in RENAMED else key


def translate_renamed(key, warned):
    """The current name of ``key``, with a warning the first time an old name is in ``warned`` (a set)."""
    if key not in RENAMED:
        return key
    new, why = RENAMED[key]
    if key not in warned:
        warned.add(key)
        logger.warning("%s is deprecated: it is now %s (%s); the old name still loads", key, new, why)
    return new
