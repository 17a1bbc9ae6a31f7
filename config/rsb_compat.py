"""reid-strong-baseline's keys that this project names differently or does without.

RSB's YAML files and command lines load as they are: each RSB-only key is
either translated into this project's keys or accepted and ignored with one
warning naming it. The loader (config/loader.py) asks ``translate`` about
every key that config/defaults.py does not have, and calls ``finish`` once
every file and override is merged.
"""
import logging

from .errors import ConfigError
from .switches import as_bool

logger = logging.getLogger("jifd.config")

# RSB key -> why this project does without it.
IGNORED = {
    "MODEL.DEVICE_ID": "pick the GPU with CUDA_VISIBLE_DEVICES or MODEL.DEVICE cuda:N, several GPUs with torchrun "
                       "(README)",
    "SOLVER.CLUSTER_MARGIN": "this project has no cluster loss",
    "SOLVER.RANGE_K": "this project has no range loss",
    "SOLVER.RANGE_MARGIN": "this project has no range loss",
    "SOLVER.RANGE_ALPHA": "this project has no range loss",
    "SOLVER.RANGE_BETA": "this project has no range loss",
    "SOLVER.RANGE_LOSS_WEIGHT": "this project has no range loss",
}
# RSB's center-loss switch; this project reads it from MODEL.METRIC_LOSS_TYPE alone.
CENTER_SWITCH = "MODEL.IF_WITH_CENTER"
WITH_CENTER = {"triplet": "triplet_center", "none": "center"}
WITHOUT_CENTER = {value: key for key, value in WITH_CENTER.items()}


class RSBKeys:
    """What the RSB keys of one load asked for, applied at the end (``finish``)."""

    def __init__(self):
        self.with_center = None

    def translate(self, key, value):
        """(key, value) pairs of this project for the RSB ``key``; None when ``key`` is not an RSB key.

        ``value`` is already decoded; the center switch takes 'yes'/'no' or a boolean.
        """
        if key in IGNORED:
            logger.warning("%s = %r (a reid-strong-baseline key) is ignored: %s", key, value, IGNORED[key])
            return []
        if key == "DATASETS.NAMES":
            # RSB trains and tests on the one dataset it names.
            names = [value] if isinstance(value, str) else list(value)
            return [("DATASETS.SOURCES", names), ("DATASETS.TARGET", names[0])]
        if key == CENTER_SWITCH:
            self.with_center = _yes_no(key, value)
            return []
        return None

    def finish(self, cfg):
        """Apply MODEL.IF_WITH_CENTER to the final MODEL.METRIC_LOSS_TYPE (the two may come in any order)."""
        if self.with_center is None:
            return
        loss_type = cfg.MODEL.METRIC_LOSS_TYPE
        table = WITH_CENTER if self.with_center else WITHOUT_CENTER
        cfg.MODEL.METRIC_LOSS_TYPE = table.get(loss_type, loss_type)


def _yes_no(key, value):
    flag = as_bool(value)
    if flag is None:
        raise ConfigError(f"{key} = {value!r} is not 'yes' or 'no'")
    return flag
