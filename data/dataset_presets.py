"""The entries of the dataset table as readers, and the merging of training sources.

Every dataset, preset or the user's own, is an entry DATASETS.<NAME> of the
config (config/dataset_table.py): its folder, file-name pattern and splits,
each a folder of images (data/reid_folder.py) or a list file
(data/reid_list.py). Several training sources are merged with identities
kept apart (labels unique per source) and a domain label per image
(DISENTANGLE.DOMAIN_LABEL).
"""
import logging
import os
from dataclasses import dataclass

import numpy as np

from config.dataset_table import SPLIT_KEYS, dataset_entry
from utils.errors import UserError

from .reid_folder import GALLERY_CAMERA_BASE, checked_records, compile_pattern, scan_split_folder
from .reid_list import read_camera_file, scan_split_list

logger = logging.getLogger("jifd.data")

SPLITS = ("train", "query", "gallery")
_COUNT_KEYS = {"train": "TRAIN_COUNTS", "query": "QUERY_COUNTS", "gallery": "GALLERY_COUNTS"}
# Seed of the draw that picks the gallery images of a GALLERY_PER_ID dataset: the same split for every run.
GALLERY_DRAW_SEED = 0


@dataclass(frozen=True)
class DatasetPreset:
    """Where one dataset lives and how its file names (or list lines) read: one entry of the table."""

    name: str
    key: str
    title: str
    root: str
    pattern: str
    split_dirs: dict
    also_under: tuple = ()
    image_dir: str = ""
    image_suffix: str = ""
    camera_file: str = ""
    camera_pattern: str = ""
    gallery_per_id: int = 0
    counts: tuple = ()

    def config_key(self, field):
        return f"DATASETS.{self.key}.{field}"

    def published(self, split):
        """(ids, images) published for ``split``, None where unknown; None when nothing is published."""
        counts = dict(self.counts).get(split)
        if not counts:
            return None
        return tuple(None if value < 0 else value for value in counts)


def get_preset(cfg, name):
    """The table entry of dataset ``name`` (any case) as a DatasetPreset."""
    key, node = dataset_entry(cfg, name.lower())
    return DatasetPreset(
        name=name.lower(),
        key=key,
        title=node.NAME or name.lower(),
        root=os.path.join(cfg.DATASETS.ROOT_DIR, node.FOLDER or name.lower()),
        pattern=node.PATTERN,
        split_dirs={split: node[field] for split, field in SPLIT_KEYS.items()},
        also_under=tuple(node.ALSO_UNDER),
        image_dir=node.IMAGE_DIR,
        image_suffix=node.IMAGE_SUFFIX,
        camera_file=node.CAMERA_FILE,
        camera_pattern=node.CAMERA_PATTERN,
        gallery_per_id=node.GALLERY_PER_ID,
        counts=tuple((split, tuple(node[field])) for split, field in _COUNT_KEYS.items()),
    )


def display_name(cfg, name):
    return get_preset(cfg, name).title


def _stored_split(preset, split):
    """The split whose folder or list holds ``split``'s images: the query's, for a GALLERY_PER_ID gallery."""
    return "query" if preset.gallery_per_id and split == "gallery" else split


def split_path(preset, split):
    """The folder or list file of one split, or a UserError naming the key to change."""
    split = _stored_split(preset, split)
    dir_key = preset.config_key(SPLIT_KEYS[split])
    if not preset.split_dirs[split]:
        raise UserError(f"{preset.title} has no {split} split ({dir_key} is empty)")
    if not os.path.isdir(preset.root):
        raise UserError(
            f"dataset folder not found: {preset.root} "
            f"(set DATASETS.ROOT_DIR or {preset.config_key('FOLDER')})")
    candidates = [os.path.join(preset.root, preset.split_dirs[split])]
    candidates += [os.path.join(preset.root, parent, preset.split_dirs[split]) for parent in preset.also_under]
    for path in candidates:
        if os.path.exists(path):
            return path
    raise UserError(f"{split} folder not found: {' or '.join(candidates)} (set {dir_key})")


def split_folder(preset, split):
    """The folder of images of one split (a split given as a list file has none)."""
    path = split_path(preset, split)
    if not os.path.isdir(path):
        raise UserError(f"the {preset.title} {split} split is a list file ({path}), not a folder of images")
    return path


def scan_split(preset, split):
    """(folder or list file, FolderScan) of one split, nothing decoded; raises ConfigError/UserError."""
    path = split_path(preset, split)
    stored = _stored_split(preset, split)
    regex = compile_pattern(preset.pattern, preset.config_key("PATTERN"))
    camera_base = GALLERY_CAMERA_BASE if stored == "gallery" else 0
    if os.path.isdir(path):
        scan = scan_split_folder(path, regex, camera_base)
    else:
        cameras = None
        if preset.camera_file:
            cameras = read_camera_file(os.path.join(preset.root, preset.camera_file), preset.camera_pattern,
                                       preset.config_key("CAMERA_PATTERN"))
        scan = scan_split_list(path, regex, os.path.join(preset.root, preset.image_dir), preset.image_suffix,
                               cameras, camera_base)
    if "camid" not in regex.groupindex and not preset.camera_file:
        logger.info("%s has no camid group: every image of %s is its own camera", preset.config_key("PATTERN"),
                    path)
    if preset.gallery_per_id and split != "train":
        scan.records = draw_gallery(scan.records, preset.gallery_per_id)[split]
    return path, scan


def draw_gallery(records, per_id, seed=GALLERY_DRAW_SEED):
    """{"query": [...], "gallery": [...]}: ``per_id`` images of each identity, drawn with ``seed``, form
    the gallery (all of them when it has no more), the rest the queries; both keep the records' order."""
    by_pid = {}
    for index, record in enumerate(records):
        by_pid.setdefault(record.pid, []).append(index)
    rng = np.random.default_rng(seed)
    in_gallery = set()
    for pid in sorted(by_pid):
        indices = by_pid[pid]
        in_gallery.update(rng.choice(indices, min(per_id, len(indices)), replace=False).tolist())
    return {"query": [r for i, r in enumerate(records) if i not in in_gallery],
            "gallery": [r for i, r in enumerate(records) if i in in_gallery]}


def load_split(cfg, name, split):
    """Records of one split of one dataset, with original pids and camids."""
    preset = get_preset(cfg, name)
    path, scan = scan_split(preset, split)
    records = checked_records(scan, path, preset.pattern, preset.config_key("PATTERN"),
                              strict=cfg.DATASETS.STRICT)
    if cfg.DATASETS.CHECK_COUNTS:
        _check_counts(preset, split, records)
    return records


def split_records(cfg, split, dataset=""):
    """Records of one split of ``dataset``, with original labels, junk dropped.

    ``dataset`` defaults to DATASETS.TARGET for query and gallery, and to the
    first of DATASETS.SOURCES for train.
    """
    if not dataset:
        dataset = cfg.DATASETS.SOURCES[0] if split == "train" else cfg.DATASETS.TARGET
    return load_split(cfg, dataset, split)


def _check_counts(preset, split, records):
    expected = preset.published(split)
    if expected is None:
        return
    found = (len({r.pid for r in records}), len(records))
    if any(want is not None and want != got for want, got in zip(expected, found)):
        shown = ["?" if want is None else f"{want:,}" for want in expected]
        logger.warning(
            "%s %s: %d ids / %d images, published %s ids / %s images "
            "(a subset or another copy? DATASETS.CHECK_COUNTS False silences this)",
            preset.title, split, found[0], found[1], shown[0], shown[1])


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
    lines = [f"=> {' + '.join(display_name(cfg, s) for s in cfg.DATASETS.SOURCES)} -> "
             f"{display_name(cfg, cfg.DATASETS.TARGET)} loaded",
             "Dataset statistics:", rule,
             f"  {'subset':<18} | {'# ids':>6} | {'# images':>9} | {'# cameras':>9}", rule]
    for index, name in enumerate(cfg.DATASETS.SOURCES):
        lines.append(_row(f"{name.lower()} train", [r for r in train if r.source == index]))
    if len(cfg.DATASETS.SOURCES) > 1:
        lines.append(_row("train (all)", train))
    target = cfg.DATASETS.TARGET.lower()
    lines += [_row(f"{target} query", query), _row(f"{target} gallery", gallery), rule]
    logger.info("\n".join(lines))
