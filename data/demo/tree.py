"""Writing the demo trees: each dataset's folders as the dataset table names them, and a marker of what
was written, so that a tree is generated once, a missing split comes back alone, and no file the generator
did not write is ever deleted.
"""
import json
import logging
import os
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor

from config import ConfigError, get_default_cfg
from config.dataset_table import SPLIT_KEYS
from utils.errors import UserError

from .plan import EXAMPLE_NAMES, plan_shots, resolve_counts
from .render import render_image
from .styles import DATASET_NAMES

logger = logging.getLogger("jifd.data")

# Bump when the pictures change, so that ensure_demo_data regenerates old trees.
GENERATOR_VERSION = 2
MARKER_NAME = ".jifd_demo_seed"


def layout_from_cfg(cfg):
    """Each demo dataset's folder and split folders, from its entry in the dataset table (cfg.DATASETS)."""
    layout = {}
    for dataset in DATASET_NAMES:
        node = cfg.DATASETS[dataset.upper()]
        layout[dataset] = {"folder": node.FOLDER or dataset,
                           **{split: node[key] for split, key in SPLIT_KEYS.items() if node[key]}}
    return layout


DEFAULT_LAYOUT = layout_from_cfg(get_default_cfg())


def _write_shots(args):
    seed, directory, shots = args
    for shot in shots:
        image, quality = render_image(seed, shot.dataset, shot.pid, shot.cam, shot.index)
        image.save(os.path.join(directory, shot.dataset, shot.split, shot.name), quality=quality)
    return len(shots)


def read_marker(root):
    """The marker of a generated tree under ``root`` (a dict), or None."""
    path = os.path.join(root, MARKER_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _files_under(root, folder):
    """Paths, relative to ``root``, of every file and link under ``root/folder``."""
    found = []
    for parent, folders, names in os.walk(os.path.join(root, folder)):
        links = [name for name in folders if os.path.islink(os.path.join(parent, name))]
        found += [os.path.relpath(os.path.join(parent, name), root) for name in names + links]
    return found


def _clear_previous(root, layout):
    """Remove the files of an earlier generated tree, and only those: a tree that holds any other
    file (or whose marker does not list its files) is refused before anything is deleted."""
    marker = read_marker(root)
    if marker:
        folders = marker.get("folders", [])
        written = set(marker.get("files", []))
        present = [path for folder in folders for path in _files_under(root, folder)]
        foreign = sorted(path for path in present if path not in written)
        if foreign or "files" not in marker:
            what = (f"files the demo generator did not write, e.g. {os.path.join(root, foreign[0])}" if foreign
                    else "no list of the files it wrote (an older generator's tree)")
            raise UserError(
                f"{root} holds demo data of seed {marker.get('seed')} with {what}; nothing was deleted. Move "
                f"your files out of {', '.join(folders)}, or delete those folders yourself, or set "
                "DATASETS.ROOT_DIR (--root) to another folder")
        for path in present:
            os.remove(os.path.join(root, path))
        for folder in folders:
            for parent, _, _ in os.walk(os.path.join(root, folder), topdown=False):
                os.rmdir(parent)
        os.remove(os.path.join(root, MARKER_NAME))
    for entry in layout.values():
        path = os.path.join(root, entry["folder"])
        if os.path.exists(path):
            raise UserError(
                f"{path} exists and is not generated demo data; give an empty folder for the demo data "
                f"(DATASETS.ROOT_DIR, or --root of tools/make_demo_data.py)")


def _missing(root, layout, shot):
    entry = layout[shot.dataset]
    return not os.path.isdir(os.path.join(root, entry["folder"], entry[shot.split]))


def _render(seed, staging, shots, workers):
    """Write ``shots`` under ``staging``/<dataset>/<split>/ in ``workers`` processes (default: all cores)."""
    if os.path.isdir(staging):
        shutil.rmtree(staging)
    for shot in shots:
        os.makedirs(os.path.join(staging, shot.dataset, shot.split), exist_ok=True)
    workers = workers or os.cpu_count() or 1
    chunk = 64
    jobs = [(seed, staging, shots[k:k + chunk]) for k in range(0, len(shots), chunk)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_shots, jobs))
    else:
        for job in jobs:
            _write_shots(job)


def _move_into_place(root, layout, staging, shots, only_missing):
    """Move each rendered split folder from ``staging`` to its place in ``layout``; (folders, per-dataset
    split summary)."""
    folders, datasets = [], {}
    for dataset in DATASET_NAMES:
        entry = layout[dataset]
        target = os.path.join(root, entry["folder"])
        os.makedirs(target, exist_ok=only_missing)
        splits = {}
        for split in SPLIT_KEYS:
            picked = [shot for shot in shots if shot.dataset == dataset and shot.split == split]
            if not picked:
                continue
            os.replace(os.path.join(staging, dataset, split), os.path.join(target, entry[split]))
            splits[split] = {"dir": entry[split], "images": len(picked),
                             "ids": len({shot.pid for shot in picked}),
                             "cameras": len({shot.cam for shot in picked})}
        folders.append(entry["folder"])
        datasets[dataset] = splits
    return folders, datasets


def generate_demo_data(root, seed=0, scale=1.0, layout=None, workers=None, preset="demo", only_missing=False,
                       **counts):
    """Write the three demo datasets under ``root``; returns a summary dict.

    ``preset`` (PRESETS) and then ``counts`` override DEFAULT_COUNTS (after
    ``scale`` multiplies the identity counts); ``layout`` maps each dataset to its folder and split
    folders (DEFAULT_LAYOUT); ``workers`` processes render (default: all
    cores). An earlier generated tree under ``root`` is replaced, file by file
    (see _clear_previous); with ``only_missing`` it is kept and only its
    missing split folders are written, with the files the same seed gives.
    """
    started = time.perf_counter()
    layout = layout or DEFAULT_LAYOUT
    resolved = resolve_counts(scale, preset, **counts)
    shots = plan_shots(seed, resolved)
    os.makedirs(root, exist_ok=True)
    previous = read_marker(root) if only_missing else None
    if only_missing:
        shots = [shot for shot in shots if _missing(root, layout, shot)]
    else:
        _clear_previous(root, layout)
    staging = os.path.join(root, ".jifd_demo_staging")
    _render(seed, staging, shots, workers)
    written = {os.path.join(layout[shot.dataset]["folder"], layout[shot.dataset][shot.split], shot.name)
               for shot in shots}
    summary = {"root": os.path.abspath(root), "seed": seed, "version": GENERATOR_VERSION, "preset": preset,
               "counts": resolved, "files": sorted(set(previous.get("files", []) if previous else []) | written)}
    summary["folders"], summary["datasets"] = _move_into_place(root, layout, staging, shots, only_missing)
    shutil.rmtree(staging)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    marker = {key: summary[key] for key in ("seed", "version", "preset", "counts", "folders", "files")}
    with open(os.path.join(root, MARKER_NAME), "w") as handle:
        json.dump(marker, handle, indent=1, sort_keys=True)
    return summary


def _check_patterns(cfg):
    """The configured file-name patterns must read the generated names."""
    for dataset, name in EXAMPLE_NAMES.items():
        pattern = cfg.DATASETS[dataset.upper()].PATTERN
        if not re.match(pattern, name):
            raise ConfigError(
                f"DATASETS.{dataset.upper()}.PATTERN = {pattern!r} does not match the demo data's "
                f"file names (e.g. {name}), which follow the real dataset's naming")


def ensure_demo_data(cfg, scale=1.0, **counts):
    """Generate the demo datasets under cfg.DATASETS.ROOT_DIR unless they are there.

    Nothing happens when the folders exist and are either a generated tree of
    seed cfg.DATASETS.DEMO_SEED and preset cfg.DATASETS.DEMO_PRESET or a
    user's own data (no marker). A generated tree of that seed and preset
    with split folders missing gets only those back. A generated tree of
    another seed, preset or generator version is replaced, unless it holds
    files the generator did not write: then nothing is deleted and the run
    stops with a message. ``scale`` and ``counts`` size a new tree
    (generate_demo_data).
    """
    root = cfg.DATASETS.ROOT_DIR
    seed = int(cfg.DATASETS.DEMO_SEED)
    preset = cfg.DATASETS.DEMO_PRESET
    layout = layout_from_cfg(cfg)
    _check_patterns(cfg)
    needed = [os.path.join(root, entry["folder"], entry[split])
              for entry in layout.values() for split in SPLIT_KEYS if split in entry]
    complete = all(os.path.isdir(path) for path in needed)
    marker = read_marker(root)
    if complete and marker is None:
        logger.info("%s already holds the datasets; not generating demo data", root)
        return
    same_tree = (marker is not None and marker.get("seed") == seed and marker.get("version") == GENERATOR_VERSION
                 and marker.get("preset", "demo") == preset
                 and sorted(marker.get("folders", [])) == sorted(entry["folder"] for entry in layout.values()))
    if same_tree and complete:
        logger.info("demo data of seed %d found under %s", seed, root)
        return
    if same_tree and "files" in marker:
        missing = [path for path in needed if not os.path.isdir(path)]
        logger.info("regenerating the missing split folder(s) of the %s data (seed %d): %s", preset, seed,
                    ", ".join(missing))
        summary = generate_demo_data(root, seed=seed, layout=layout, preset=preset, only_missing=True,
                                     **marker["counts"])
        logger.info("demo data written in %.1f s: %s", summary["seconds"], describe_summary(summary))
        return
    logger.info("generating the %s datasets (seed %d) under %s", preset, seed, root)
    summary = generate_demo_data(root, seed=seed, scale=scale, layout=layout, preset=preset, **counts)
    logger.info("demo data written in %.1f s: %s", summary["seconds"], describe_summary(summary))


def describe_summary(summary):
    """One line per dataset: ids and images of each split."""
    parts = []
    for dataset, splits in summary["datasets"].items():
        sizes = ", ".join(f"{split} {info['ids']} ids / {info['images']} images" for split, info in splits.items())
        parts.append(f"{dataset}: {sizes}")
    return "; ".join(parts)
