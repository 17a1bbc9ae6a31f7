"""The dataset table: every dataset is an entry DATASETS.<NAME> with the fields of DATASET_FIELDS.

The presets (config/defaults.py) and a user's own datasets (entries a YAML
file adds) are read the same way; SOURCES and TARGET name entries in any
case. This module finds entries and checks that the ones a run uses are
complete; data/dataset_presets.py reads them.
"""
from yacs.config import CfgNode

from .defaults import DATASET_FIELDS
from .errors import ConfigError

SPLIT_KEYS = {"train": "TRAIN_DIR", "query": "QUERY_DIR", "gallery": "GALLERY_DIR"}


def new_entry():
    """An entry with every field at its default, to be filled from a YAML file."""
    return DATASET_FIELDS.clone()


def is_entry_field(field):
    return field in DATASET_FIELDS


def dataset_names(cfg):
    """The names of every entry of the table, in lower case, in table order."""
    return [key.lower() for key, value in cfg.DATASETS.items() if isinstance(value, CfgNode)]


def dataset_entry(cfg, name):
    """(key, entry) of dataset ``name``; a ConfigError naming the known ones when there is none."""
    key = name.upper()
    entry = cfg.DATASETS.get(key)
    if not isinstance(entry, CfgNode):
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(dataset_names(cfg))} (or describe it "
                          f"under DATASETS.{key}: FOLDER, PATTERN, TRAIN_DIR, QUERY_DIR, GALLERY_DIR; see README)")
    return key, entry


def check_used_entries(cfg):
    """SOURCES, TARGET and VALIDATION (when set) name complete entries: a pattern, the splits each role reads."""
    sources = [name.lower() for name in cfg.DATASETS.SOURCES]
    if not sources:
        raise ConfigError(f"DATASETS.SOURCES is empty: name one or more of {', '.join(dataset_names(cfg))}")
    if len(set(sources)) != len(sources):
        raise ConfigError(f"DATASETS.SOURCES names a dataset twice: {list(cfg.DATASETS.SOURCES)}")
    roles = [("DATASETS.SOURCES", source) for source in sources] + [("DATASETS.TARGET", cfg.DATASETS.TARGET.lower())]
    if cfg.DATASETS.VALIDATION:
        roles.append(("DATASETS.VALIDATION", cfg.DATASETS.VALIDATION.lower()))
    for role, name in roles:
        try:
            key, entry = dataset_entry(cfg, name)
        except ConfigError as err:
            none = ", or '' for none" if role == "DATASETS.VALIDATION" else ""
            raise ConfigError(f"{role}: {err}{none}") from None
        field = f"DATASETS.{key}"
        if not entry.PATTERN:
            raise ConfigError(f"{field}.PATTERN is empty: give a regex with the named groups pid and camid "
                              "that reads the dataset's file names (or list lines)")
        if entry.CAMERA_FILE and not entry.CAMERA_PATTERN:
            raise ConfigError(f"{field}.CAMERA_FILE is set but {field}.CAMERA_PATTERN is empty")
        if role == "DATASETS.SOURCES":
            needed = ["TRAIN_DIR"]
        else:
            needed = ["QUERY_DIR"] if entry.GALLERY_PER_ID else ["QUERY_DIR", "GALLERY_DIR"]
        for split_key in needed:
            if not entry[split_key]:
                what = "training" if role == "DATASETS.SOURCES" else "query/gallery"
                raise ConfigError(f"{role} = {name!r}: {entry.NAME or name} has no {what} split "
                                  f"({field}.{split_key} is empty)")
        for counts_key in ("TRAIN_COUNTS", "QUERY_COUNTS", "GALLERY_COUNTS"):
            if len(entry[counts_key]) not in (0, 2):
                raise ConfigError(f"{field}.{counts_key} = {list(entry[counts_key])} must be [ids, images] or []")
