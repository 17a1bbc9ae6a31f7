"""Builds the run's configuration from the defaults, a YAML file and overrides.

Every mistake a user can make here (a missing file, a misspelt key, a value
of the wrong type or outside its choices) becomes one ``ConfigError`` whose
message names the key, so that tools can print it without a traceback.
"""
import os
import re

import yaml
from yacs.config import CfgNode

from .defaults import _C


class ConfigError(ValueError):
    """A configuration mistake, with a message meant for the user."""


# Keys whose values come from a closed set; checked after every merge.
CHOICES = {
    "MODEL.NAME": ("resnet18", "resnet34", "resnet50"),
    "MODEL.NECK": ("bnneck", "no"),
    "MODEL.PRETRAIN_CHOICE": ("imagenet", "self", "none"),
    "MODEL.IF_LABELSMOOTH": ("on", "off"),
    "MODEL.METRIC_LOSS_TYPE": ("triplet", "center", "triplet_center", "none"),
    "DATALOADER.SAMPLER": ("softmax", "softmax_triplet"),
    "SOLVER.OPTIMIZER_NAME": ("Adam", "AdamW", "SGD"),
    "SOLVER.WARMUP_METHOD": ("linear", "constant"),
    "SOLVER.AMP": ("auto", "off", "fp16", "bf16"),
    "DISENTANGLE.DOMAIN_LABEL": ("auto", "dataset", "camera"),
    "DATASETS.DEMO_PRESET": ("demo", "bench"),
    "DATALOADER.SOURCE_BALANCED": ("auto", "yes", "no"),
    "MODEL.MIXSTYLE.MIX": ("crossdomain", "random"),
    "DISENTANGLE.IMAGE.SWAP_BN_STATS": ("frozen", "update"),
    "DISENTANGLE.IMAGE.ADVERSARY": ("mmd", "confusion", "reversal"),
    "DISENTANGLE.IMAGE.SWAP_IMAGE": ("onto_real", "generated"),
    "DISENTANGLE.IMAGE.TEACHER": ("ema", "checkpoint", "none"),
    "DISENTANGLE.IMAGE.TEACHER_INPUT": ("real", "swap"),
    "TEST.RE_RANKING": ("yes", "no"),
    "TEST.NECK_FEAT": ("after", "before"),
    "TEST.FEAT_NORM": ("yes", "no"),
    "TEST.DISTANCE": ("euclidean", "cosine"),
}
DATASET_NAMES = ("veri", "vehiclex", "opri")
# Keys with a smallest valid value; below it a loader, the sampler or the schedule would fail
# later with a traceback, or (SOLVER.MAX_EPOCHS) a run would save an untrained model.
MINIMUMS = {
    "SOLVER.MAX_EPOCHS": 1,
    "SOLVER.ITERS_PER_EPOCH": 0,
    "SOLVER.IMS_PER_BATCH": 1,
    "SOLVER.WARMUP_ITERS": 0,
    "SOLVER.CHECKPOINT_PERIOD": 0,
    "SOLVER.EVAL_PERIOD": 0,
    "DATALOADER.NUM_WORKERS": 0,
    "DATALOADER.NUM_INSTANCE": 1,
    "INPUT.PADDING": 0,
    "TEST.IMS_PER_BATCH": 1,
    "TEST.MAX_RANK": 1,
}
_TYPE_MISMATCH = re.compile(r"^Type mismatch \(<class '([\w.]+)'> vs\. <class '([\w.]+)'>\).* for config key: (\S+)$",
                            re.DOTALL)


def get_default_cfg():
    """A fresh, mutable copy of the defaults."""
    return _C.clone()


def _lookup(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _validate(cfg):
    for key, allowed in CHOICES.items():
        value = _lookup(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key} = {value!r} is not one of {', '.join(map(repr, allowed))}")
    for key, minimum in MINIMUMS.items():
        value = _lookup(cfg, key)
        if value < minimum:
            raise ConfigError(f"{key} = {value} must be at least {minimum}")
    for key in ("INPUT.PIXEL_MEAN", "INPUT.PIXEL_STD"):
        if len(_lookup(cfg, key)) != 3:
            raise ConfigError(f"{key} = {list(_lookup(cfg, key))} must hold 3 values, one per colour channel")
    if min(cfg.INPUT.PIXEL_STD) <= 0:
        raise ConfigError(f"INPUT.PIXEL_STD = {list(cfg.INPUT.PIXEL_STD)} must be positive: images are divided by it")
    if not 0 <= cfg.TEST.MAX_UNREADABLE <= 1:
        raise ConfigError(f"TEST.MAX_UNREADABLE = {cfg.TEST.MAX_UNREADABLE} must be a fraction in [0, 1]")
    sources = [s.lower() for s in cfg.DATASETS.SOURCES]
    if not sources:
        raise ConfigError("DATASETS.SOURCES is empty: name one or more of veri, vehiclex, opri")
    for name in sources + [cfg.DATASETS.TARGET.lower()]:
        if name not in DATASET_NAMES:
            key = "DATASETS.TARGET" if name == cfg.DATASETS.TARGET.lower() else "DATASETS.SOURCES"
            raise ConfigError(f"{key}: unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    if cfg.DATASETS.TARGET.lower() == "vehiclex":
        raise ConfigError("DATASETS.TARGET = 'vehiclex': VehicleX has no query/gallery split")
    if len(set(sources)) != len(sources):
        raise ConfigError(f"DATASETS.SOURCES names a dataset twice: {list(cfg.DATASETS.SOURCES)}")
    validation = cfg.DATASETS.VALIDATION.lower()
    if validation and (validation not in DATASET_NAMES or validation == "vehiclex"):
        raise ConfigError(f"DATASETS.VALIDATION = {validation!r}: name a dataset with a query/gallery split "
                          "(veri or opri), or '' for none")
    for key in ("INPUT.SIZE_TRAIN", "INPUT.SIZE_TEST", "DISENTANGLE.IMAGE.SIZE"):
        size = _lookup(cfg, key)
        # An empty generator size means the re-ID input size.
        if key == "DISENTANGLE.IMAGE.SIZE" and not size:
            continue
        if len(size) != 2 or min(size) <= 0:
            raise ConfigError(f"{key} = {list(size)} must be [height, width] with positive values")
    if cfg.DATALOADER.SAMPLER == "softmax_triplet" and cfg.SOLVER.IMS_PER_BATCH % cfg.DATALOADER.NUM_INSTANCE:
        raise ConfigError(
            f"SOLVER.IMS_PER_BATCH = {cfg.SOLVER.IMS_PER_BATCH} is not a multiple of "
            f"DATALOADER.NUM_INSTANCE = {cfg.DATALOADER.NUM_INSTANCE}")
    if list(cfg.SOLVER.STEPS) != sorted(cfg.SOLVER.STEPS):
        raise ConfigError(f"SOLVER.STEPS = {list(cfg.SOLVER.STEPS)} must be increasing")


def _yacs_message(err, origin):
    text = str(err.args[0]) if err.args else str(err)
    if text.startswith("Non-existent config key: "):
        key = text[len("Non-existent config key: "):]
        return f"{origin}: unknown config key {key} (see config/defaults.py for the keys)"
    mismatch = _TYPE_MISMATCH.match(text)
    if mismatch:
        return f"{origin}: {_type_mismatch(*mismatch.groups())}"
    return f"{origin}: {text}"


def _type_mismatch(expected, given, key):
    """One line for yacs's type mismatch, which would print the whole default node of a section."""
    default = _lookup(_C, key)
    if isinstance(default, CfgNode):
        shown = ", ".join(f"{key}.{name}" for name in list(default)[:3])
        return f"{key} is a section of keys ({shown}, ...), not a single value"
    return f"{key} takes a {expected.rsplit('.', 1)[-1]} (default {default!r}), not a {given.rsplit('.', 1)[-1]}"


def _read_yaml(config_file):
    """The mapping a YAML config file holds, or a ConfigError saying why it holds none."""
    try:
        with open(config_file, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise ConfigError(f"{config_file}: cannot be read ({err.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{config_file}: not a YAML text file (byte {raw[err.start]:#04x} at offset {err.start} "
                          "is not UTF-8 text)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{config_file}: not valid YAML ({err})") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{config_file}: holds a YAML {type(data).__name__}, not a mapping of keys "
                          "(write sections and keys, e.g. 'SOLVER:' then '  BASE_LR: 0.001')")
    return data or {}


def load_cfg(config_file="", opts=()):
    """Defaults <- YAML file <- ``KEY VALUE`` pairs; frozen and validated."""
    cfg = get_default_cfg()
    if config_file:
        if not os.path.isfile(config_file):
            raise ConfigError(f"config file not found: {config_file}")
        data = _read_yaml(config_file)
        try:
            cfg.merge_from_other_cfg(CfgNode(data))
        except (KeyError, ValueError, AssertionError, TypeError) as err:
            raise ConfigError(_yacs_message(err, config_file)) from None
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides must come in KEY VALUE pairs; {opts[-1]!r} has no value")
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError, TypeError) as err:
        raise ConfigError(_yacs_message(err, "command line")) from None
    _validate(cfg)
    cfg.freeze()
    return cfg


__all__ = ["CfgNode", "ConfigError", "get_default_cfg", "load_cfg"]
