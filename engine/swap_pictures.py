"""Swap grids: from fixed training images (each VIS_PERIOD epochs) or from a checkpoint and two folders."""
import os

import numpy as np
import torch

from data.image_loading import read_image
from data.dataset_presets import get_preset, split_folder
from modeling.image_disentangler import ImageDisentangler
from modeling.weight_loading import read_weights_file
from utils.errors import UserError
from utils.swap_grid import draw_swap_grid

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# Small generator sizes (the demo's 32 px) are enlarged by a whole factor to at least this many
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
    swaps = disentangler.to_unit(swaps).view(rows, cols, *swaps.shape[1:])
    return draw_swap_grid(disentangler.to_unit(id_images), disentangler.to_unit(domain_images), swaps,
                          min_tile=GRID_MIN_TILE)


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
    """``count`` images spread evenly over the sorted files of ``folder``: count x 3 x H x W in [0, 1].

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
    return unit_images([os.path.join(folder, name) for name in picks], size)


def unit_images(paths, size):
    """The images at ``paths``, resized to ``size`` (height, width): N x 3 x H x W in [0, 1]."""
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
    return render_swap_grid(disentangler, disentangler.from_unit(id_images.to(device)),
                            disentangler.from_unit(domain_images.to(device)))
