"""Test features of any images: a dataset split or a plain folder, to memory or to a .npz file."""
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from data.dataset_presets import get_preset, load_split
from data.image_dataset import ImageDataset
from data.reid_folder import IMAGE_EXTENSIONS, ImageRecord, compile_pattern, label
from data.transforms import build_transforms, input_size
from utils.errors import UserError
from utils.file_faults import make_folder, reported_write_faults

from .evaluator import extract_batch_features
from .runtime import resolve_device

logger = logging.getLogger("jifd.features")

# Identity and camera of an image whose file name does not follow the dataset's pattern.
UNKNOWN_LABEL = -1
# A long extraction reports its progress about this many times.
_PROGRESS_REPORTS = 10


@dataclass
class ExtractedFeatures:
    """Features of N images in loader order, with their labels and paths."""

    features: torch.Tensor
    pids: np.ndarray
    camids: np.ndarray
    paths: list


def folder_records(folder, pattern, pattern_key):
    """Every image directly in ``folder``, sorted by name, labelled by ``pattern`` where it matches.

    Unlike a dataset split, nothing is dropped: names the pattern does not
    read, and junk images, keep their place with pid/camid -1 (UNKNOWN_LABEL)
    or the junk pid, so that the features cover the whole folder.
    """
    if not os.path.isdir(folder):
        raise UserError(f"--folder {folder}: no such directory")
    regex = compile_pattern(pattern, pattern_key)
    names = sorted(entry.name for entry in os.scandir(folder)
                   if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise UserError(f"--folder {folder}: no .jpg/.jpeg/.png images in it")
    records = []
    for position, name in enumerate(names):
        match = regex.fullmatch(name)
        pid, camid = label(match, position) if match else (UNKNOWN_LABEL, UNKNOWN_LABEL)
        records.append(ImageRecord(os.path.join(folder, name), pid, camid, source=-1, domain=-1))
    unlabelled = sum(r.pid == UNKNOWN_LABEL and r.camid == UNKNOWN_LABEL for r in records)
    if unlabelled:
        logger.info("%d of %d images in %s do not match %s; their pid and camid are %d",
                    unlabelled, len(records), folder, pattern_key, UNKNOWN_LABEL)
    return records


def split_records(cfg, split, dataset=""):
    """Records of one split of ``dataset``, with original labels, junk dropped.

    ``dataset`` defaults to DATASETS.TARGET for query and gallery, and to the
    first of DATASETS.SOURCES for train.
    """
    if not dataset:
        dataset = cfg.DATASETS.SOURCES[0] if split == "train" else cfg.DATASETS.TARGET
    return load_split(cfg, dataset, split)


def records_loader(cfg, records):
    """A loader of ``records`` in order, through the test transform (and JPEG draft decoding)."""
    dataset = ImageDataset(records, build_transforms(cfg, is_train=False),
                           target_size=input_size(cfg, is_train=False), draft=cfg.INPUT.JPEG_DRAFT,
                           is_train=False, strict=cfg.DATASETS.STRICT)
    return DataLoader(dataset, batch_size=cfg.TEST.IMS_PER_BATCH, shuffle=False,
                      num_workers=cfg.DATALOADER.NUM_WORKERS,
                      pin_memory=resolve_device(cfg.MODEL.DEVICE).type == "cuda")


def extract_features(model, loader, precision, flip=False):
    """ExtractedFeatures of every sample of ``loader`` (float32, on the CPU), in loader order.

    Each batch goes through engine.evaluator.extract_batch_features, so the
    features are the evaluator's, TEST.FLIP included.
    """
    model.eval()
    parts, pids, camids, paths = [], [], [], []
    report_every = max(1, len(loader) // _PROGRESS_REPORTS)
    start = time.perf_counter()
    for index, batch in enumerate(loader, 1):
        parts.append(extract_batch_features(model, batch["images"], precision, flip).cpu())
        pids.append(batch["pids"].numpy())
        camids.append(batch["camids"].numpy())
        paths.extend(batch["paths"])
        if index % report_every == 0 and index < len(loader):
            logger.info("features of %d / %d images (%.1f images/s)", len(paths), len(loader.dataset),
                        len(paths) / (time.perf_counter() - start))
    if not parts:
        raise UserError("no image to extract features from")
    return ExtractedFeatures(torch.cat(parts), np.concatenate(pids).astype(np.int64),
                             np.concatenate(camids).astype(np.int64), paths)


def check_output_file(path, what="--out"):
    """Refuse, before any work, an output file that could not be written: a folder, or under a file."""
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a folder: give the path of the file to write")
    make_folder(os.path.dirname(os.path.abspath(path)), f"the folder of {what}")


def save_features(path, extracted):
    """Write ``extracted`` as a .npz with arrays features (N x D), pids, camids, paths (N each)."""
    partial = f"{path}.partial"
    # Written aside then renamed, so that an interrupted run leaves no truncated file under the real name.
    with reported_write_faults(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(partial, "wb") as handle:
            np.savez(handle, features=extracted.features.numpy(), pids=extracted.pids, camids=extracted.camids,
                     paths=np.asarray(extracted.paths, dtype=str))
        os.replace(partial, path)
    return path


def extract_to_file(cfg, model, precision, out, folder="", split="", dataset=""):
    """Features of ``folder`` or of ``split`` (of ``dataset``) written to ``out``; returns the ExtractedFeatures."""
    check_output_file(out)
    if folder:
        preset = get_preset(cfg, dataset or cfg.DATASETS.TARGET)
        records = folder_records(folder, preset.pattern, preset.config_key("PATTERN"))
    else:
        records = split_records(cfg, split, dataset)
    logger.info("extracting features of %d images%s", len(records),
                " and their mirrors (TEST.FLIP)" if cfg.TEST.FLIP else "")
    extracted = extract_features(model, records_loader(cfg, records), precision, flip=cfg.TEST.FLIP)
    save_features(out, extracted)
    logger.info("wrote %s: %d x %d features", out, *extracted.features.shape)
    return extracted
