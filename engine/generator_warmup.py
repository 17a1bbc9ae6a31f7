"""The generator warm-up: DISENTANGLE.IMAGE.WARMUP_ITERATIONS steps of the disentangler alone before joint
training, and the file that keeps it for runs that would repeat it.

From random weights Dec's swaps are noise for a few hundred iterations, and
L_gen would meanwhile train the re-ID model on noise; the warm-up trains the
disentangler alone on the training batches while the re-ID model waits. It
depends only on the seed and the configuration of the data and the generator,
so the +image and full ablation rows of one seed (or any runs that differ
only after the warm-up) can share it (DISENTANGLE.IMAGE.WARMUP_CACHE). The
file records a fingerprint of the configuration; a file of another
configuration is never used.
"""
import hashlib
import logging
import os
import time

import torch

from config import get_default_cfg
from modeling.weight_loading import read_weights_file
from utils.atomic_io import atomic_torch_save

from .distributed import all_processes_finite
from .runtime import seed_epoch
from .train_step import NonFiniteLossError

logger = logging.getLogger("jifd.train.image_level")

# Keys that cannot change a warm-up: where results go, how it is shown, and what only acts after it
# (the re-ID model, and how it learns from swaps).
_IGNORED = ("OUTPUT_DIR", "TEST", "DISENTANGLE.FEATURE", "MODEL.MIXSTYLE", "DATASETS.VALIDATION",
            "SOLVER.CHECKPOINT_PERIOD", "SOLVER.EVAL_PERIOD", "SOLVER.LOG_PERIOD", "SOLVER.PROGRESS_BAR",
            "SOLVER.LOG_EXACT_LOSSES",
            "SOLVER.DIAGNOSTICS", "DISENTANGLE.IMAGE.WARMUP_CACHE", "DISENTANGLE.IMAGE.VIS_PERIOD",
            "DISENTANGLE.IMAGE.W_GEN", "DISENTANGLE.IMAGE.W_GEN_ID", "DISENTANGLE.IMAGE.GEN_RAMP_ITERS",
            "DISENTANGLE.IMAGE.GEN_FRACTION", "DISENTANGLE.IMAGE.GEN_JOINT_TRIPLET",
            "DISENTANGLE.IMAGE.SWAP_BN_STATS", "DISENTANGLE.IMAGE.SWAP_IMAGE", "DISENTANGLE.IMAGE.TEACHER",
            "DISENTANGLE.IMAGE.TEACHER_MOMENTUM", "DISENTANGLE.IMAGE.TEACHER_WEIGHT",
            "DISENTANGLE.IMAGE.TEACHER_INPUT")


def warmup_fingerprint(cfg):
    """A digest of every key that can change the warm-up."""
    cfg = cfg.clone()
    cfg.defrost()
    defaults = get_default_cfg()
    for dotted in _IGNORED:
        *parents, leaf = dotted.split(".")
        node, default = cfg, defaults
        for part in parents:
            node, default = node[part], default[part]
        node[leaf] = default[leaf]
    return hashlib.sha256(cfg.dump().encode()).hexdigest()


def load_warmup(path, cfg, extension):
    """Load the warm-up at ``path`` into ``extension`` if it exists and fits ``cfg``; whether it did."""
    if not os.path.isfile(path):
        return False
    saved = read_weights_file(path, "DISENTANGLE.IMAGE.WARMUP_CACHE")
    if saved.get("fingerprint") != warmup_fingerprint(cfg):
        logger.info("%s holds the warm-up of another configuration; warming up anew", path)
        return False
    extension.load_generator_state(saved["state"])
    return True


def save_warmup(path, cfg, extension):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_torch_save({"fingerprint": warmup_fingerprint(cfg), "state": extension.generator_state()}, path)


def warm_up_generator(extension, loader, device_setup):
    """The warm-up of the image-level ``extension`` on ``loader``'s batches: read from WARMUP_CACHE when a
    warm-up of the same configuration is there, else run (and kept there).

    Seeded from SOLVER.SEED alone, so that two runs of one seed warm up alike.
    """
    if not extension.warmup_iters:
        return
    cache = extension.warmup_cache
    if cache and load_warmup(cache, extension.cfg, extension):
        logger.info("generator warm-up read from %s", cache)
        return
    if not extension.criterion.active():
        logger.warning("DISENTANGLE.IMAGE.WARMUP_ITERATIONS = %d, but no disentangler term has a "
                       "weight: nothing to warm up", extension.warmup_iters)
        return
    seed_epoch(extension.seed, 0)
    _run_warm_up(extension, loader, device_setup)
    if cache:
        save_warmup(cache, extension.cfg, extension)


def _run_warm_up(extension, loader, device_setup):
    started = time.time()
    scaler = device_setup.grad_scaler()
    extension.train()
    done, total = 0, extension.warmup_iters
    while done < total:
        for batch in loader:
            extension.zero_grad()
            with device_setup.autocast():
                losses, _ = extension.disentangle(device_setup.images(batch["images"]),
                                                  batch["domains"].to(device_setup.device), need_swapped=False)
            # As in the joint step: under DDP every process stops together.
            if not all_processes_finite(torch.stack([value.detach().float() for value in losses.values()])):
                raise NonFiniteLossError(
                    f"a loss term is not finite at generator warm-up iteration {done + 1}: "
                    + ", ".join(f"{name} {value.item():.4g}" for name, value in losses.items())
                    + "; lower DISENTANGLE.IMAGE.LR or try SOLVER.AMP off.")
            scaler.scale(sum(losses.values())).backward()
            extension.step(scaler, joint=False)
            scaler.update()
            done += 1
            if done % 100 == 0 or done == total:
                logger.info("generator warm-up %d/%d: %s (%.0f s)", done, total,
                            ", ".join(f"{name} {value.item():.4f}" for name, value in losses.items()),
                            time.time() - started)
            if done == total:
                return
