"""The three datasets as config presets, and the merging of training sources.

Each dataset is the generic folder reader of ``reid_folder`` with its own
folder, file-name pattern and split folders from cfg.DATASETS.<NAME>. Several
training sources are merged with identities kept apart (labels unique per
source) and a domain label per image (DISENTANGLE.DOMAIN_LABEL).
"""
import logging
import os
from dataclasses import dataclass

from config import ConfigError
from utils.errors import UserError

from .reid_folder import read_split_folder

logger = logging.getLogger("jifd.data")

SPLITS = ("train", "query", "gallery")
_SPLIT_KEYS = {"train": "TRAIN_DIR", "query": "QUERY_DIR", "gallery": "GALLERY_DIR"}
DISPLAY_NAMES = {"veri": "VeRi-776", "vehiclex": "VehicleX", "opri": "Opri"}
# The AI City 2020 release unpacks VehicleX's images one level down.
_EXTRA_PARENTS = {"vehiclex": ("AIC20_ReID_Simulation",)}

# Published (ids, images) per split; None where no exact number is published
# (VehicleX has "about 192k" images; Opri's gallery ids are not given).
PUBLISHED_COUNTS = {
    "veri": {"train": (576, 37778), "query": (200, 1678), "gallery": (200, 11579)},
    "vehiclex": {"train": (1362, None)},
    "opri": {"train": (8918, 67321), "query": (8917, 8917), "gallery": (None, 54756)},
}


@dataclass(frozen=True)
class DatasetPreset:
    """Where one dataset lives and how its file names read."""

    name: str
    key: str
    root: str
    pattern: str
    split_dirs: dict

    def config_key(self, field):
        return f"DATASETS.{self.key}.{field}"


def get_preset(cfg, name):
    """The preset of dataset ``name`` (veri, vehiclex or opri) from the config."""
    name = name.lower()
    if name not in DISPLAY_NAMES:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(DISPLAY_NAMES)}")
    key = name.upper()
    node = cfg.DATASETS[key]
    return DatasetPreset(
        name=name,
        key=key,
        root=os.path.join(cfg.DATASETS.ROOT_DIR, node.FOLDER),
        pattern=node.PATTERN,
        split_dirs={split: node[field] for split, field in _SPLIT_KEYS.items()},
    )


def split_folder(preset, split):
    """The folder of one split, or a UserError naming the key to change."""
    dir_key = preset.config_key(_SPLIT_KEYS[split])
    if not preset.split_dirs[split]:
        raise UserError(f"{DISPLAY_NAMES[preset.name]} has no {split} split ({dir_key} is empty)")
    if not os.path.isdir(preset.root):
        raise UserError(
            f"dataset folder not found: {preset.root} "
            f"(set DATASETS.ROOT_DIR or {preset.config_key('FOLDER')})")
    candidates = [os.path.join(preset.root, preset.split_dirs[split])]
    candidates += [os.path.join(preset.root, parent, preset.split_dirs[split])
                   for parent in _EXTRA_PARENTS.get(preset.name, ())]
    for folder in candidates:
        if os.path.isdir(folder):
            return folder
    raise UserError(f"{split} folder not found: {' or '.join(candidates)} (set {dir_key})")


def load_split(cfg, name, split):
    """Records of one split of one dataset, with original pids and camids."""
    preset = get_preset(cfg, name)
    records = read_split_folder(
        split_folder(preset, split), preset.pattern,
        folder_key=preset.config_key(_SPLIT_KEYS[split]),
        pattern_key=preset.config_key("PATTERN"),
        strict=cfg.DATASETS.STRICT,
    )
    if cfg.DATASETS.CHECK_COUNTS:
        _check_counts(preset.name, split, records)
    return records


def _check_counts(name, split, records):
    expected = PUBLISHED_COUNTS[name].get(split)
    if expected is None:
        return
    found = (len({r.pid for r in records}), len(records))
    if any(want is not None and want != got for want, got in zip(expected, found)):
        shown = ["?" if want is None else f"{want:,}" for want in expected]
        logger.warning(
            "%s %s: %d ids / %d images, published %s ids / %s images "
            "(a subset or another copy? DATASETS.CHECK_COUNTS False silences this)",
            DISPLAY_NAMES[name], split, found[0], found[1], shown[0], shown[1])


def domain_mode(cfg):
    """'dataset' or 'camera': what the domain label of a training image is."""
    mode = cfg.DISENTANGLE.DOMAIN_LABEL
    if mode == "auto":
        return "dataset" if len(cfg.DATASETS.SOURCES) > 1 else "camera"
    return mode


def merge_sources(per_source, mode):
    """Training records of all sources, relabelled.

    ``per_source`` holds one list of records per source, in SOURCES order.
    pids become 0..num_classes-1, unique per source; ``source`` is the
    source's index; ``domain`` is that index (mode 'dataset') or the camera
    relabelled 0..num_cameras-1, unique per source (mode 'camera').
    Returns (records, num_classes, num_domains).
    """
    pid_keys = sorted({(s, r.pid) for s, records in enumerate(per_source) for r in records})
    cam_keys = sorted({(s, r.camid) for s, records in enumerate(per_source) for r in records})
    pid_label = {key: label for label, key in enumerate(pid_keys)}
    cam_label = {key: label for label, key in enumerate(cam_keys)}
    merged = []
    for s, records in enumerate(per_source):
        for r in records:
            domain = s if mode == "dataset" else cam_label[(s, r.camid)]
            merged.append(r._replace(pid=pid_label[(s, r.pid)], source=s, domain=domain))
    num_domains = len(per_source) if mode == "dataset" else len(cam_keys)
    return merged, len(pid_keys), num_domains


def load_train_set(cfg):
    """(records, num_classes, num_domains) over DATASETS.SOURCES."""
    per_source = [load_split(cfg, name, "train") for name in cfg.DATASETS.SOURCES]
    return merge_sources(per_source, domain_mode(cfg))


def load_test_set(cfg, name=None):
    """(query, gallery) records of dataset ``name`` (default DATASETS.TARGET): original labels, source and
    domain -1."""
    name = name or cfg.DATASETS.TARGET
    query = load_split(cfg, name, "query")
    gallery = load_split(cfg, name, "gallery")
    return ([r._replace(source=-1, domain=-1) for r in query],
            [r._replace(source=-1, domain=-1) for r in gallery])


def _row(label, records):
    ids = len({(r.source, r.pid) for r in records})
    cams = len({(r.source, r.camid) for r in records})
    return f"  {label:<18} | {ids:>6} | {len(records):>9} | {cams:>9}"


def log_statistics(cfg, train, query, gallery):
    """A table of ids / images / cameras per split, like BoT's '=> VeRi loaded'."""
    rule = "  " + "-" * 50
    lines = [f"=> {' + '.join(DISPLAY_NAMES[s.lower()] for s in cfg.DATASETS.SOURCES)} -> "
             f"{DISPLAY_NAMES[cfg.DATASETS.TARGET.lower()]} loaded",
             "Dataset statistics:", rule,
             f"  {'subset':<18} | {'# ids':>6} | {'# images':>9} | {'# cameras':>9}", rule]
    for index, name in enumerate(cfg.DATASETS.SOURCES):
        lines.append(_row(f"{name.lower()} train", [r for r in train if r.source == index]))
    if len(cfg.DATASETS.SOURCES) > 1:
        lines.append(_row("train (all)", train))
    target = cfg.DATASETS.TARGET.lower()
    lines += [_row(f"{target} query", query), _row(f"{target} gallery", gallery), rule]
    logger.info("\n".join(lines))
