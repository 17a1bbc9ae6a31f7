"""A generator warm-up kept on disk, for runs that would repeat the same one.

The warm-up trains the disentangler alone and depends only on the seed and
the configuration of the data and the generator, so the +image and full
ablation rows of one seed (or any runs that differ only after the warm-up)
can share it. The file records a fingerprint of the configuration; a file of
another configuration is never used.
"""
import hashlib
import logging
import os

from config import get_default_cfg
from modeling.weight_loading import read_weights_file
from utils.atomic_io import atomic_torch_save

logger = logging.getLogger("jifd.train.image_level")

# Keys that cannot change a warm-up: where results go, how it is shown, and what only acts after it
# (the re-ID model, and how it learns from swaps).
_IGNORED = ("OUTPUT_DIR", "TEST", "DISENTANGLE.FEATURE", "MODEL.MIXSTYLE", "DATASETS.VALIDATION",
            "SOLVER.CHECKPOINT_PERIOD", "SOLVER.EVAL_PERIOD", "SOLVER.LOG_PERIOD", "SOLVER.PROGRESS_BAR",
            "SOLVER.LOG_EXACT_LOSSES",
            "SOLVER.DIAGNOSTICS", "DISENTANGLE.IMAGE.WARMUP_CACHE", "DISENTANGLE.IMAGE.VIS_PERIOD",
            "DISENTANGLE.IMAGE.W_GEN", "DISENTANGLE.IMAGE.W_GEN_ID", "DISENTANGLE.IMAGE.GEN_RAMP_ITERS",
            "DISENTANGLE.IMAGE.GEN_FRACTION", "DISENTANGLE.IMAGE.GEN_JOINT_TRIPLET",
            "DISENTANGLE.IMAGE.SWAP_BN_STATS", "DISENTANGLE.IMAGE.SWAP_IMAGE", "DISENTANGLE.IMAGE.TEACHER", "DISENTANGLE.IMAGE.TEACHER_MOMENTUM",
            "DISENTANGLE.IMAGE.TEACHER_WEIGHT", "DISENTANGLE.IMAGE.TEACHER_INPUT")


def warmup_fingerprint(cfg):
    """A digest of every key that can change the warm-up."""
    cfg = cfg.clone()
    cfg.defrost()
    defaults = get_default_cfg()
    for dotted in _IGNORED:
        *parents, leaf = dotted.split(".")
        node, default = cfg, defaults
        for part in parents:
            node, default = node[part], default[part]
        node[leaf] = default[leaf]
    return hashlib.sha256(cfg.dump().encode()).hexdigest()


def load_warmup(path, cfg, extension):
    """Load the warm-up at ``path`` into ``extension`` if it exists and fits ``cfg``; whether it did."""
    if not os.path.isfile(path):
        return False
    saved = read_weights_file(path, "DISENTANGLE.IMAGE.WARMUP_CACHE")
    if saved.get("fingerprint") != warmup_fingerprint(cfg):
        logger.info("%s holds the warm-up of another configuration; warming up anew", path)
        return False
    extension.load_generator_state(saved["state"])
    return True


def save_warmup(path, cfg, extension):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_torch_save({"fingerprint": warmup_fingerprint(cfg), "state": extension.generator_state()}, path)
