"""Training extension of the image level: swaps, their losses, and the generator's own steps.

Per iteration: the re-ID batch is brought to the generator's range and size;
every image i gets a partner j from another domain; the disentangler's
terms (layers.image_disentangle_loss) join the main loss, and the re-ID model
runs once more, on swapped images x_ij, for L_gen: on GEN_FRACTION of each
identity's swaps, since that pass costs as much as the baseline's own per
image. By default the swaps are detached for L_gen
(GEN_UPDATES_GENERATOR False): L_gen then trains the re-ID model only, since a
re-ID model that still errs lowers its loss fastest when Dec ignores s, and
the demo's swaps lost their style within its 120 joint iterations.
The disentangler (all but T) is updated by its own Adam from the same
backward pass; T then maximises the MINE bound on the codes kept from this
batch, in float32.

DISENTANGLE.IMAGE.WARMUP_ITERS first trains the disentangler alone: from
random weights Dec's swaps are noise for a few hundred iterations, and L_gen
would meanwhile train the re-ID model on noise.
"""
import logging
import math
import os
import time

import torch

from config import ConfigError
from layers.image_disentangle_loss import (
    ImageDisentangleLoss, mine_lower_bound, swapped_reid_loss)
from modeling.image_disentangler import ImageDisentangler

from .distributed import all_processes_finite
from .swap_pictures import pick_grid_sources, render_swap_grid, training_grid_sources, unit_images
from .train_step import NonFiniteLossError

logger = logging.getLogger("jifd.train.image_level")

_WEIGHT_KEYS = ("W_REC", "W_CYC", "W_CODE", "W_DOM", "W_ADV", "W_MI", "W_GEN")
# Adam betas of image-to-image GANs (MUNIT, DG-Net): a short momentum memory.
_BETAS = (0.5, 0.999)
_GRID_SOURCES = 6


def _check_cfg(cfg):
    image_cfg = cfg.DISENTANGLE.IMAGE
    for key in _WEIGHT_KEYS + ("LR", "GRL_LAMBDA", "WARMUP_ITERS"):
        if image_cfg[key] < 0:
            raise ConfigError(f"DISENTANGLE.IMAGE.{key} = {image_cfg[key]} must be >= 0")
    if not 0 < image_cfg.GEN_FRACTION <= 1:
        raise ConfigError(f"DISENTANGLE.IMAGE.GEN_FRACTION = {image_cfg.GEN_FRACTION} must be in (0, 1]")
    for key in ("BASE_CHANNELS", "ID_DIM", "DOMAIN_DIM", "MLP_DIM", "MINE_DIM"):
        if image_cfg[key] < 1:
            raise ConfigError(f"DISENTANGLE.IMAGE.{key} = {image_cfg[key]} must be >= 1")
    height, width = image_cfg.SIZE
    if height % 16 or width % 16:
        raise ConfigError(
            f"DISENTANGLE.IMAGE.SIZE = {list(image_cfg.SIZE)}: height and width must be multiples "
            "of 16 (E_dom halves them 4 times, Dec doubles E_id's H/4 x W/4 code twice)")


def pair_across_domains(domains):
    """partner[i]: a random j with domains[j] != domains[i]; j != i when i's domain fills the batch.

    Draws from the torch RNG of ``domains``' device, so it repeats under a seed.
    """
    count = domains.numel()
    other_domain = domains[None, :] != domains[:, None]
    not_self = ~torch.eye(count, dtype=torch.bool, device=domains.device)
    allowed = torch.where(other_domain.any(dim=1, keepdim=True), other_domain, not_self)
    scores = torch.rand(count, count, device=domains.device).masked_fill(~allowed, -1.0)
    return scores.argmax(dim=1)


def select_per_identity(pids, fraction):
    """Indices of the first ceil(fraction x n) of each identity's n images, and at least 2 of them.

    Two images of an identity give the triplet term on the kept swaps a positive.
    """
    pid_list = pids.tolist()
    totals = {}
    for pid in pid_list:
        totals[pid] = totals.get(pid, 0) + 1
    seen, kept = {}, []
    for index, pid in enumerate(pid_list):
        if seen.get(pid, 0) < max(math.ceil(fraction * totals[pid]), min(totals[pid], 2)):
            kept.append(index)
        seen[pid] = seen.get(pid, 0) + 1
    return torch.tensor(kept, dtype=torch.long, device=pids.device)


class ImageLevelExtension:
    """Image-level terms ("img_rec", "img_cyc", "img_code", "img_dom", "img_adv", "img_mi",
    "gen_id", "gen_triplet"), the disentangler's Adam and T's maximisation step."""

    def __init__(self, cfg, num_domains, device, train_records=()):
        _check_cfg(cfg)
        image_cfg = cfg.DISENTANGLE.IMAGE
        self.disentangler = ImageDisentangler(cfg, num_domains).to(device)
        self.channels_last = device.type == "cuda" and bool(cfg.SOLVER.CHANNELS_LAST)
        if self.channels_last:
            self.disentangler.to(memory_format=torch.channels_last)
        self.criterion = ImageDisentangleLoss(
            w_rec=image_cfg.W_REC, w_cyc=image_cfg.W_CYC, w_code=image_cfg.W_CODE,
            w_dom=image_cfg.W_DOM, w_adv=image_cfg.W_ADV, w_mi=image_cfg.W_MI)
        self.w_gen = image_cfg.W_GEN
        self.gen_updates_generator = image_cfg.GEN_UPDATES_GENERATOR
        self.gen_fraction = image_cfg.GEN_FRACTION
        self.vis_period = image_cfg.VIS_PERIOD
        self.warmup_iters = image_cfg.WARMUP_ITERS
        self.grid_paths = training_grid_sources(train_records, _GRID_SOURCES) if self.vis_period else []
        # Read now, so that a broken file is found before training, not after an epoch.
        self.grid_images = unit_images(self.grid_paths, self.disentangler.size) if self.grid_paths else None
        self.optimizer = torch.optim.Adam(
            self.disentangler.generator_parameters(), lr=image_cfg.LR, betas=_BETAS)
        self.mine_optimizer = torch.optim.Adam(
            self.disentangler.statistics_net.parameters(), lr=image_cfg.LR, betas=_BETAS)
        self._has_terms = False
        self._kept_codes = None

    def _disentangle(self, images, domains, need_swapped):
        """The disentangler's own terms on a re-ID batch; keeps the codes for T's step."""
        self._has_terms = self.criterion.active(need_swapped=need_swapped)
        if not self._has_terms:
            return {}, None
        x = self.disentangler.from_reid(images)
        partner = pair_across_domains(domains)
        shuffle = torch.randperm(len(domains), device=domains.device) if self.criterion.w_mi else None
        losses, result = self.criterion(self.disentangler, x, domains, partner, shuffle, need_swapped=need_swapped)
        if result.pooled_id is not None:
            self._kept_codes = (result.pooled_id, result.domain_code)
        return losses, result

    def warm_up(self, loader, precision):
        """WARMUP_ITERS steps of the disentangler alone, on the training batches; the re-ID model waits."""
        if not self.warmup_iters:
            return
        started = time.time()
        scaler = precision.grad_scaler()
        self.train()
        done = 0
        while done < self.warmup_iters:
            for batch in loader:
                self.zero_grad()
                with precision.autocast():
                    losses, _ = self._disentangle(precision.images(batch["images"]),
                                                  batch["domains"].to(precision.device), need_swapped=False)
                if not losses:
                    logger.warning("DISENTANGLE.IMAGE.WARMUP_ITERS = %d, but no disentangler term has a "
                                   "weight: nothing to warm up", self.warmup_iters)
                    return
                # As in the joint step: under DDP every process stops together.
                if not all_processes_finite(torch.stack([value.detach().float() for value in losses.values()])):
                    raise NonFiniteLossError(
                        f"a loss term is not finite at generator warm-up iteration {done + 1}: "
                        + ", ".join(f"{name} {value.item():.4g}" for name, value in losses.items())
                        + "; lower DISENTANGLE.IMAGE.LR or try SOLVER.AMP off.")
                scaler.scale(sum(losses.values())).backward()
                self.step(scaler)
                scaler.update()
                done += 1
                if done % 100 == 0 or done == self.warmup_iters:
                    logger.info("generator warm-up %d/%d: %s (%.0f s)", done, self.warmup_iters,
                                ", ".join(f"{name} {value.item():.4f}" for name, value in losses.items()),
                                time.time() - started)
                if done == self.warmup_iters:
                    break

    def compute_losses(self, batch, outputs, model, reid_loss):
        losses, result = self._disentangle(batch["images"], batch["domains"], need_swapped=bool(self.w_gen))
        if self.w_gen:
            pids = batch["pids"]
            if self.gen_fraction < 1:
                kept = select_per_identity(pids, self.gen_fraction)
                swapped, pids = result.swapped[kept], pids[kept]
            else:
                swapped = result.swapped
            if not self.gen_updates_generator:
                swapped = swapped.detach()
            swapped = self.disentangler.to_reid(swapped, batch["images"].shape[-2:])
            if self.channels_last:
                swapped = swapped.contiguous(memory_format=torch.channels_last)
            losses.update(swapped_reid_loss(reid_loss, model(swapped), pids, self.w_gen))
        return losses

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)
        self.mine_optimizer.zero_grad(set_to_none=True)

    def step(self, scaler):
        """The disentangler's step on the main backward's gradients, then T's ascent step."""
        if self._has_terms:
            scaler.step(self.optimizer)
            self._has_terms = False
        if self._kept_codes is None:
            return
        pooled_id, domain_code = (code.float() for code in self._kept_codes)
        self._kept_codes = None
        self.mine_optimizer.zero_grad(set_to_none=True)
        shuffle = torch.randperm(len(domain_code), device=domain_code.device)
        bound = mine_lower_bound(self.disentangler.statistics_net, pooled_id, domain_code, shuffle)
        (-bound).backward()
        self.mine_optimizer.step()

    def state_dict(self):
        return {"disentangler": self.disentangler.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "mine_optimizer": self.mine_optimizer.state_dict()}

    def load_state_dict(self, state_dict):
        self.disentangler.load_state_dict(state_dict["disentangler"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self.mine_optimizer.load_state_dict(state_dict["mine_optimizer"])

    def train(self, mode=True):
        self.disentangler.train(mode)
        return self

    def on_epoch_end(self, epoch, output_dir, batch):
        """Every VIS_PERIOD epochs, write output_dir/swaps_epoch{epoch}.png; return its path.

        The grid's sources are fixed training images (training_grid_sources),
        or, without training records, images of the last ``batch``.
        """
        if not self.vis_period or epoch % self.vis_period:
            return None
        device = self.disentangler.pixel_mean.device
        if self.grid_images is not None:
            x = self.disentangler.from_unit(self.grid_images.to(device))
        else:
            picked = pick_grid_sources(batch["pids"], batch["domains"], _GRID_SOURCES)
            x = self.disentangler.from_reid(batch["images"][picked].to(device).float())
        grid = render_swap_grid(self.disentangler, x, x)
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, f"swaps_epoch{epoch}.png")
        grid.save(path)
        return path
