"""Builds the run's configuration from the defaults, a YAML file and overrides.

The YAML file and the ``KEY VALUE`` overrides go through one path: every
key is looked up (a key DATASETS.<NAME>.<FIELD> may add an entry to the
dataset table, config/dataset_table.py), renamed when it is a deprecated name
(config/renamed_keys.py), translated when it is one of reid-strong-baseline's
(config/rsb_compat.py), given the form of its default when it is a yes/no
switch (config/switches.py), type-checked as yacs does, and set. Every
mistake a user can make here (a missing or unreadable file, a misspelt key, a
value of the wrong type, outside its choices or below its minimum) becomes
one ``ConfigError`` whose message names the key, with the nearest known key
for a typo.
"""
import difflib
import os

import yaml
from yacs.config import CfgNode, _check_and_coerce_cfg_value_type

from .dataset_table import check_used_entries, is_entry_field, new_entry
from .defaults import _C
from .errors import ConfigError
from .renamed_keys import translate_renamed
from .rsb_compat import RSBKeys
from .switches import coerce_switch

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
# Keys with a smallest valid value; below it a loader, the sampler or the schedule would fail
# later with a traceback, or (SOLVER.MAX_EPOCHS) a run would save an untrained model.
MINIMUMS = {
    "SOLVER.MAX_EPOCHS": 1,
    "SOLVER.ITERS_PER_EPOCH": 0,
    "SOLVER.IMS_PER_BATCH": 1,
    "SOLVER.WARMUP_EPOCHS": 0,
    "SOLVER.CHECKPOINT_PERIOD": 0,
    "SOLVER.EVAL_PERIOD": 0,
    "DATALOADER.NUM_WORKERS": 0,
    "DATALOADER.NUM_INSTANCE": 1,
    "INPUT.PADDING": 0,
    "TEST.IMS_PER_BATCH": 1,
    "TEST.MAX_RANK": 1,
    "TEST.AQE.QE_K": 1,
    "TEST.AQE.QE_TIME": 1,
}


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
    check_used_entries(cfg)
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


def _all_keys(node, prefix=""):
    keys = []
    for name, value in node.items():
        full = f"{prefix}{name}"
        keys += _all_keys(value, full + ".") if isinstance(value, CfgNode) else [full]
    return keys


def _unknown_key(cfg, key, origin):
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "DATASETS" and isinstance(cfg.DATASETS.get(parts[1].upper()), CfgNode):
        # A field of a dataset entry, maybe one the user is adding: compare with the entry fields.
        fields = difflib.get_close_matches(parts[2], list(new_entry()), n=1, cutoff=0.6)
        guess = [f"DATASETS.{parts[1].upper()}.{fields[0]}"] if fields else []
    else:
        guess = difflib.get_close_matches(key, _all_keys(cfg), n=1, cutoff=0.75)
    hint = f"; did you mean {guess[0]}?" if guess else ""
    return ConfigError(f"{origin}: unknown config key {key}{hint} (config/defaults.py lists the keys)")


def _as_list(text):
    """A list key given as text that is not a Python literal: [veri, vehiclex] (YAML's flow form) or one name."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return parsed if isinstance(parsed, list) else [text]


def flatten_keys(mapping, prefix=""):
    """(dotted key, value) pairs of a nested dict read from YAML, in file order."""
    pairs = []
    for name, value in mapping.items():
        full = f"{prefix}{name}"
        pairs += flatten_keys(value, full + ".") if isinstance(value, dict) else [(full, value)]
    return pairs


class _Merger:
    """Sets (key, value) pairs from YAML files and the command line into one config."""

    def __init__(self):
        self.cfg = get_default_cfg()
        self.rsb = RSBKeys()
        self.renamed = set()

    def merge(self, pairs, origin):
        for key, raw in pairs:
            key = translate_renamed(key, self.renamed)
            value = CfgNode._decode_cfg_value(raw)
            translated = self.rsb.translate(key, value) if not self._has(key) else None
            for target, target_value in ([(key, value)] if translated is None else translated):
                self._set(target, target_value, origin)

    def _has(self, key):
        try:
            _lookup(self.cfg, key)
        except (KeyError, TypeError):
            return False
        return True

    def _set(self, key, value, origin):
        *path, leaf = key.split(".")
        if len(path) == 2 and path[0] == "DATASETS" and is_entry_field(leaf):
            # An entry of the dataset table, maybe a new one (the user's own dataset); entries are in capitals.
            path[1] = path[1].upper()
            key = ".".join(path + [leaf])
            if path[1] not in self.cfg.DATASETS:
                self.cfg.DATASETS[path[1]] = new_entry()
        node = self.cfg
        for part in path:
            if not isinstance(node, CfgNode) or part not in node:
                raise _unknown_key(self.cfg, key, origin)
            node = node[part]
        if not isinstance(node, CfgNode) or leaf not in node:
            raise _unknown_key(self.cfg, key, origin)
        default = node[leaf]
        if isinstance(default, CfgNode):
            shown = ", ".join(f"{key}.{name}" for name in list(default)[:3])
            raise ConfigError(f"{origin}: {key} is a section of keys ({shown}, ...), not a single value")
        value = coerce_switch(value, default, CHOICES.get(key, ()))
        if isinstance(default, (list, tuple)) and isinstance(value, str):
            value = _as_list(value)
        if isinstance(default, float) and type(value) is int:
            # RSB's files write whole numbers where this project's defaults are floats (BIAS_LR_FACTOR: 1).
            value = float(value)
        try:
            node[leaf] = _check_and_coerce_cfg_value_type(value, default, leaf, key)
        except ValueError:
            raise ConfigError(f"{origin}: {_type_mismatch(key, value, default)}") from None

    def finish(self):
        self.rsb.finish(self.cfg)
        return self.cfg


def _a(value):
    kind = type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _type_mismatch(key, value, default):
    """One line for a value whose type the key does not take."""
    return f"{key} takes {_a(default)} (default {default!r}), not {_a(value)} ({value!r})"


def _read_yaml(config_file):
    """The mapping a YAML config file holds, or a ConfigError saying why it holds none."""
    if not os.path.isfile(config_file):
        raise ConfigError(f"config file not found: {config_file}")
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
    merger = _Merger()
    if config_file:
        merger.merge(flatten_keys(_read_yaml(config_file)), config_file)
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides must come in KEY VALUE pairs; {opts[-1]!r} has no value")
    merger.merge(zip(opts[0::2], opts[1::2]), "command line")
    cfg = merger.finish()
    _validate(cfg)
    cfg.freeze()
    return cfg


__all__ = ["CfgNode", "ConfigError", "flatten_keys", "get_default_cfg", "load_cfg"]
