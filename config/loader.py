"""Builds the run's configuration from the defaults, a YAML file and overrides.

The YAML file and the ``KEY VALUE`` overrides go through one path: every
key is looked up (a key DATASETS.<NAME>.<FIELD> may add an entry to the
dataset table, config/dataset_table.py), translated when it is one of reid-strong-baseline's
(config/rsb_compat.py), given the form of its default when it is a yes/no
switch (config/switches.py), type-checked as yacs does, and set. Every
mistake a user can make here (a missing file, a misspelt key, a value of the
wrong type or outside its choices) becomes one ``ConfigError`` whose message
names the key, with the nearest known key for a typo.
"""
import difflib
import os

import yaml
from yacs.config import CfgNode, _check_and_coerce_cfg_value_type

from .dataset_table import check_used_entries, is_entry_field, new_entry
from .defaults import _C
from .errors import ConfigError
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
    "TEST.RE_RANKING": ("yes", "no"),
    "TEST.NECK_FEAT": ("after", "before"),
    "TEST.FEAT_NORM": ("yes", "no"),
    "TEST.DISTANCE": ("euclidean", "cosine"),
}
# What a training run writes into OUTPUT_DIR first: its full configuration.
RUN_CONFIG_NAME = "config.yaml"


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
    check_used_entries(cfg)
    for key in ("INPUT.SIZE_TRAIN", "INPUT.SIZE_TEST", "DISENTANGLE.IMAGE.SIZE"):
        size = _lookup(cfg, key)
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


def _flatten(mapping, prefix=""):
    """(dotted key, value) pairs of a nested dict read from YAML, in file order."""
    pairs = []
    for name, value in mapping.items():
        full = f"{prefix}{name}"
        pairs += _flatten(value, full + ".") if isinstance(value, dict) else [(full, value)]
    return pairs


class _Merger:
    """Sets (key, value) pairs from YAML files and the command line into one config."""

    def __init__(self):
        self.cfg = get_default_cfg()
        self.rsb = RSBKeys()

    def merge(self, pairs, origin):
        for key, raw in pairs:
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
            raise ConfigError(f"{origin}: {key} is a group of keys, not a value; set the keys under it")
        value = coerce_switch(value, default, CHOICES.get(key, ()))
        if isinstance(default, (list, tuple)) and isinstance(value, str):
            value = _as_list(value)
        if isinstance(default, float) and type(value) is int:
            # RSB's files write whole numbers where this project's defaults are floats (BIAS_LR_FACTOR: 1).
            value = float(value)
        try:
            node[leaf] = _check_and_coerce_cfg_value_type(value, default, leaf, key)
        except ValueError:
            raise ConfigError(f"{origin}: {key} = {value!r} is of type {type(value).__name__}; the key takes "
                              f"type {type(default).__name__} (default {default!r})") from None

    def finish(self):
        self.rsb.finish(self.cfg)
        return self.cfg


def _read_yaml(config_file):
    if not os.path.isfile(config_file):
        raise ConfigError(f"config file not found: {config_file}")
    try:
        with open(config_file) as handle:
            loaded = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise ConfigError(f"{config_file}: not valid YAML ({err})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{config_file}: holds a {type(loaded).__name__}, not KEY: value lines")
    return loaded


def load_cfg(config_file="", opts=()):
    """Defaults <- YAML file <- ``KEY VALUE`` pairs; frozen and validated."""
    merger = _Merger()
    if config_file:
        merger.merge(_flatten(_read_yaml(config_file)), config_file)
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides must come in KEY VALUE pairs; {opts[-1]!r} has no value")
    merger.merge(zip(opts[0::2], opts[1::2]), "command line")
    cfg = merger.finish()
    _validate(cfg)
    cfg.freeze()
    return cfg


def dump_cfg(cfg, path):
    """Write the full configuration of a run, so that it can be repeated."""
    with open(path, "w") as handle:
        handle.write(cfg.dump())


__all__ = ["CfgNode", "ConfigError", "RUN_CONFIG_NAME", "get_default_cfg", "load_cfg", "dump_cfg"]
