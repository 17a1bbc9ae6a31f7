"""What the pictures of a model show: the worst queries' rank lists, t-SNE maps of its features, and swap
grids of the image level (during training, or from a checkpoint and two folders of images).

The engines of tools/visualize_ranks.py, visualize_features.py and
visualize_swaps.py, and of the swap grids the image level writes every
DISENTANGLE.IMAGE.VIS_PERIOD epochs. They pick the images and compute what is
shown; utils/visualization.py draws.
"""
import json
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F

from data import records_loader
from data.dataset_presets import display_name, get_preset, load_split, split_folder
from data.image_loading import BadImageError, read_image
from data.reid_folder import IMAGE_EXTENSIONS
from modeling.image_disentangler import ImageDisentangler
from modeling.weight_loading import read_weights_file
from utils.atomic_io import atomic_write_text
from utils.errors import UserError
from utils.file_faults import make_folder, reported_write_faults
from utils.ranking_statistics import rank_queries
from utils.visualization import draw_ranking, draw_swap_grid, save_feature_map, tsne_2d

from .evaluator import extract_features, normalises_features
from .tester import prepare_test

logger = logging.getLogger("jifd.visualize")


# -----------------------------------------------------------------------------
# Rank lists (tools/visualize_ranks.py)
# -----------------------------------------------------------------------------
TOP_K = 10
TILE_SIZE = (128, 128)


def _thumbnail(path):
    try:
        # Decoded reduced (JPEG draft) like the loader does: only a tile's worth of pixels is shown.
        return read_image(path, target_size=TILE_SIZE[::-1])
    except BadImageError as err:
        logger.warning("%s; drawn as a crossed-out tile", err)
        return None


def _label(record):
    return f"id {record.pid} cam {record.camid}"


def draw_query(ranking, query_index, query_records, gallery_records):
    """The PIL picture of one query's top TOP_K, with its AP in the header."""
    query = query_records[query_index]
    shown = [int(g) for g in ranking.top_index[query_index] if g >= 0]
    matches = [bool(m) for m in ranking.top_match[query_index][:len(shown)]]
    header = (f"AP {100.0 * ranking.ap[query_index]:.1f}%   query {os.path.basename(query.path)} "
              f"({_label(query)})   top {len(shown)}: green = same id, other camera; red = other id")
    captions = ["query"] + [f"{rank}. {_label(gallery_records[g])}" for rank, g in enumerate(shown, 1)]
    return draw_ranking(_thumbnail(query.path), [_thumbnail(gallery_records[g].path) for g in shown],
                        matches, header, captions, tile_size=TILE_SIZE)


def visualize_ranks(cfg, num_queries, out_dir):
    """Write ranks_NNN_*.png for the ``num_queries`` lowest-AP queries (NNN = 000 for the worst) and
    ranks.json listing them in that order; returns that list."""
    make_folder(out_dir, "--out")
    run = prepare_test(cfg)
    data = run.data
    extracted = extract_features(run.model, data.test_loader, run.device_setup, flip=cfg.TEST.FLIP)
    nq = data.num_query
    ranking = rank_queries(extracted.features[:nq], extracted.features[nq:], extracted.pids[:nq],
                           extracted.pids[nq:], extracted.camids[:nq], extracted.camids[nq:], top_k=TOP_K,
                           distance=cfg.TEST.DISTANCE, feat_norm=cfg.TEST.FEAT_NORM == "yes",
                           memory_mb=cfg.TEST.EVAL_MEMORY_MB)
    order = ranking.worst_first()
    if not len(order):
        raise UserError(f"none of the {nq} queries has a true match in the gallery (same identity, other "
                        "camera): there is no AP to rank them by")
    if len(order) < nq:
        logger.info("%d of %d queries have no true match in the gallery; they have no AP and are not drawn",
                    nq - len(order), nq)
    listing = []
    for position, query_index in enumerate(order[:num_queries]):
        query = data.query_records[query_index]
        name = f"ranks_{position:03d}_{os.path.splitext(os.path.basename(query.path))[0]}.png"
        with reported_write_faults(os.path.join(out_dir, name)):
            draw_query(ranking, query_index, data.query_records, data.gallery_records).save(
                os.path.join(out_dir, name))
        listing.append({
            "file": name,
            "query": query.path,
            "ap": float(ranking.ap[query_index]),
            "top": [data.gallery_records[g].path for g in ranking.top_index[query_index] if g >= 0],
            "matches": [bool(m) for m, g in zip(ranking.top_match[query_index], ranking.top_index[query_index])
                        if g >= 0],
        })
    atomic_write_text(os.path.join(out_dir, "ranks.json"), json.dumps(listing, indent=2))
    logger.info("wrote %d pictures, worst query first (AP %.1f%% .. %.1f%%), and ranks.json to %s", len(listing),
                100.0 * listing[0]["ap"], 100.0 * listing[-1]["ap"], out_dir)
    return listing


# -----------------------------------------------------------------------------
# Feature maps (tools/visualize_features.py): the points are the training
# images of each source and the target's query + gallery images, each a
# domain; from each, whole identities are taken in a seeded random order until
# ``per_domain`` images, so that every shown identity has its images together.
# Features are the evaluator's (TEST.FLIP, TEST.NECK_FEAT), L2-normalised when
# evaluation normalises them.
# -----------------------------------------------------------------------------
FEATURE_MAP_CHOICES = ("both", "source", "test")


def sample_identities(records, per_domain, seed=0):
    """Records of whole identities, taken in a seeded random order while they fit in ``per_domain`` images
    (at least one identity), in their original order."""
    by_pid = {}
    for record in records:
        by_pid.setdefault(record.pid, []).append(record)
    order = np.random.default_rng(seed).permutation(sorted(by_pid))
    taken, count = set(), 0
    for pid in order.tolist():
        if taken and count + len(by_pid[pid]) > per_domain:
            continue
        taken.add(pid)
        count += len(by_pid[pid])
    return [record for record in records if record.pid in taken]


def domain_records(cfg, what):
    """[(domain name, records)]: each source's training split and/or the target's query + gallery."""
    domains = []
    if what in ("both", "source"):
        domains += [(f"{display_name(cfg, name)} train", load_split(cfg, name, "train"))
                    for name in cfg.DATASETS.SOURCES]
    if what in ("both", "test"):
        target = cfg.DATASETS.TARGET
        domains.append((f"{display_name(cfg, target)} test",
                        load_split(cfg, target, "query") + load_split(cfg, target, "gallery")))
    return domains


def visualize_features(cfg, out, what="both", per_domain=300, num_ids=12, seed=0):
    """Write the two-panel t-SNE PNG to ``out``; returns (points N x 2, domain index per point, identities)."""
    if what not in FEATURE_MAP_CHOICES:
        raise UserError(f"--what {what}: choose one of {', '.join(FEATURE_MAP_CHOICES)}")
    run = prepare_test(cfg, with_data=False)
    names, records, domains = [], [], []
    for index, (name, found) in enumerate(domain_records(cfg, what)):
        picked = sample_identities(found, per_domain, seed)
        names.append(name)
        records += picked
        domains += [index] * len(picked)
    if len(records) < 5:
        raise UserError(f"only {len(records)} images to draw; t-SNE needs at least 5")
    logger.info("features of %d images (%s)", len(records), ", ".join(
        f"{name}: {domains.count(index)}" for index, name in enumerate(names)))
    feats = extract_features(run.model, records_loader(cfg, records), run.device_setup,
                             flip=cfg.TEST.FLIP).features
    if normalises_features(cfg):
        feats = F.normalize(feats, dim=1)
    points = tsne_2d(feats.numpy(), seed)
    identities = [(domain, record.pid) for domain, record in zip(domains, records)]
    rng = np.random.default_rng(seed)
    distinct = sorted(set(identities))
    highlighted = [distinct[i] for i in sorted(rng.choice(len(distinct), min(num_ids, len(distinct)),
                                                          replace=False))]
    title = f"t-SNE of the test features of {os.path.basename(cfg.TEST.WEIGHT)}: {len(records)} images"
    save_feature_map(out, points, domains, identities, names, highlighted, title)
    logger.info("wrote %s", out)
    return points, np.asarray(domains), identities


# -----------------------------------------------------------------------------
# Swap grids: from fixed training images (every VIS_PERIOD epochs) or from a
# checkpoint and two folders (tools/visualize_swaps.py)
# -----------------------------------------------------------------------------
# Small generator sizes are enlarged by a whole factor to at least this many
# pixels per cell, to be seen.
GRID_MIN_TILE = 96


def pick_grid_sources(pids, domains, count):
    """Indices of up to ``count`` images with distinct identities, taken from the domains in turn."""
    by_domain = {}
    for index, domain in enumerate(domains.tolist()):
        by_domain.setdefault(domain, []).append(index)
    queues = [by_domain[d] for d in sorted(by_domain)]
    picked, seen = [], set()
    pids = pids.tolist()
    while len(picked) < count and any(queues):
        for queue in queues:
            while queue and pids[queue[0]] in seen:
                queue.pop(0)
            if queue and len(picked) < count:
                index = queue.pop(0)
                picked.append(index)
                seen.add(pids[index])
    return picked


@torch.no_grad()
def render_swap_grid(disentangler, id_images, domain_images):
    """Generator images (N and M, in [-1, 1]) -> the PIL swap grid of Dec(c_r, s_c)."""
    was_training = disentangler.training
    disentangler.eval()
    rows, cols = len(id_images), len(domain_images)
    c = disentangler.encode_id(id_images)
    s = disentangler.encode_domain(domain_images)
    swaps = disentangler.decode(c.repeat_interleave(cols, dim=0), s.repeat(rows, 1))
    disentangler.train(was_training)
    as_pictures = disentangler.to_image_tensor
    swaps = as_pictures(swaps).view(rows, cols, *swaps.shape[1:])
    return draw_swap_grid(as_pictures(id_images), as_pictures(domain_images), swaps, min_tile=GRID_MIN_TILE)


def load_image_disentangler(cfg, checkpoint_path):
    """The image-level module saved under "image_level" in a training checkpoint (TEST.WEIGHT)."""
    if not checkpoint_path:
        raise UserError("TEST.WEIGHT is empty: name a training checkpoint of an image-level run")
    if not os.path.isfile(checkpoint_path):
        raise UserError(f"TEST.WEIGHT: checkpoint not found: {checkpoint_path}")
    checkpoint = read_weights_file(checkpoint_path, "TEST.WEIGHT")
    if not isinstance(checkpoint, dict) or "image_level" not in checkpoint:
        raise UserError(
            f"TEST.WEIGHT: {checkpoint_path} holds no image-level module (no 'image_level' entry); "
            "name a checkpoint of a run with DISENTANGLE.IMAGE.ENABLED True")
    state = checkpoint["image_level"]["disentangler"]
    disentangler = ImageDisentangler(cfg, num_domains=state["domain_classifier.weight"].shape[0])
    try:
        disentangler.load_state_dict(state)
    except RuntimeError as err:
        first_line = str(err).splitlines()[0]
        raise UserError(
            f"TEST.WEIGHT: the image-level module in {checkpoint_path} does not fit the config's "
            f"DISENTANGLE.IMAGE sizes (or was saved by an older layout of the module); use the run's "
            f"config file ({first_line})") from None
    return disentangler.eval()


def default_grid_folders(cfg):
    """ID sources from the first training source, domain sources from the second (or the first)."""
    folders = [split_folder(get_preset(cfg, name), "train") for name in cfg.DATASETS.SOURCES[:2]]
    return folders[0], folders[-1]


def folder_images(folder, count, size, offset=0.0):
    """``count`` images spread evenly over the sorted files of ``folder``, as image tensors (read_image_tensors).

    ``offset`` (0..1) shifts the picks by that share of their spacing, so
    two calls on one folder can take different images.
    """
    if not os.path.isdir(folder):
        raise UserError(f"image folder not found: {folder}")
    files = sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    count = min(count, len(files))
    picks = [files[int((index + offset) * len(files) / count) % len(files)] for index in range(count)]
    return read_image_tensors([os.path.join(folder, name) for name in picks], size)


def read_image_tensors(paths, size):
    """The images at ``paths``, resized to ``size`` (height, width), as image tensors (N x 3 x H x W, RGB in
    [0, 1], what torchvision's ToTensor gives)."""
    height, width = size
    images = []
    for path in paths:
        image = read_image(path, target_size=size).resize((width, height))
        images.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(images)


def training_grid_sources(records, count):
    """Paths of ``count`` training images of distinct identities, spread over the set, domains in turn.

    The trainer draws every epoch's grid from the same un-augmented images,
    so that successive grids compare and no random erasing hides the vehicle.
    """
    step = max(1, len(records) // (8 * count))
    spread = records[::step]
    picked = pick_grid_sources(torch.tensor([r.pid for r in spread]), torch.tensor([r.domain for r in spread]),
                               count)
    return [spread[index].path for index in picked]


def swap_grid_from_folders(disentangler, id_dir, domain_dir, count, device):
    """The swap grid of ``count`` ID sources from id_dir and ``count`` domain sources from domain_dir."""
    same = os.path.abspath(id_dir) == os.path.abspath(domain_dir)
    id_images = folder_images(id_dir, count, disentangler.size)
    domain_images = folder_images(domain_dir, count, disentangler.size, offset=0.5 if same else 0.0)
    disentangler.to(device)
    return render_swap_grid(disentangler, disentangler.from_image_tensor(id_images.to(device)),
                            disentangler.from_image_tensor(domain_images.to(device)))
