"""Training extension of the image level: swaps, their losses, and the generator's own steps.

Per joint iteration:
- the re-ID batch is brought to the generator's range and size; every image i
  gets a partner j from another domain; the disentangler's terms
  (layers.image_disentangle_loss) join the main loss;
- the live re-ID model learns from the swaps (layers.swap_reid_loss), as
  SWAP_IMAGE says (by default painted onto the sharp real image), on
  GEN_FRACTION of each identity's swaps, detached from the generator and in a
  pass that leaves every BatchNorm running statistic as it was
  (modeling.frozen_statistics), with the teacher's soft labels; its weight
  ramps up from 0 over GEN_RAMP_ITERS;
- optionally (W_GEN_ID), the generator learns to keep the identity through
  the teacher, a copy of the re-ID model that no optimiser steps
  (modeling.reid_teacher);
- after the one backward: the disentangler's Adam, then the own steps of T,
  C_adv (confusion) and D, then the teacher's moving-average refresh.
The adversarial term on c (confusion of C_adv, or DAL's gradient reversal)
grows over the whole run by DANN's ramp.

DISENTANGLE.IMAGE.WARMUP_ITERATIONS first trains the disentangler alone: from
random weights Dec's swaps are noise for a few hundred iterations.
"""
import logging
import math
import os

import torch
import torch.nn.functional as F

from config import ConfigError
from layers.image_disentangle_loss import ImageDisentangleLoss, mine_lower_bound
from layers.lsgan_loss import discriminator_loss
from layers.swap_reid_loss import SwapReIDLoss
from modeling.domain_discriminator import MultiScaleDomainDiscriminator
from modeling.domain_pairing import pair_across_domains
from modeling.frozen_statistics import frozen_batchnorm_statistics
from modeling.image_disentangler import ImageDisentangler
from modeling.reid_teacher import ReIDTeacher
from modeling.weight_loading import load_reid_weights

from .extensions import TrainingExtension
from .generator_warmup import warm_up_generator
from .runtime import derived_seed
from .visualization import pick_grid_sources, read_image_tensors, render_swap_grid, training_grid_sources

logger = logging.getLogger("jifd.train.image_level")

_WEIGHT_KEYS = ("W_REC", "W_CYC", "W_CODE", "W_DOM", "W_ADV", "W_MI", "W_GAN", "W_GEN", "W_GEN_ID")
# Adam betas of image-to-image GANs (MUNIT, DG-Net): a short momentum memory.
_BETAS = (0.5, 0.999)
_GRID_SOURCES = 6


def _check_cfg(cfg):
    image_cfg = cfg.DISENTANGLE.IMAGE
    for key in _WEIGHT_KEYS + ("LR", "GRL_LAMBDA", "WARMUP_ITERATIONS", "GEN_RAMP_ITERS", "ADV_HIDDEN_DIM"):
        if image_cfg[key] < 0:
            raise ConfigError(f"DISENTANGLE.IMAGE.{key} = {image_cfg[key]} must be >= 0")
    if not 0 < image_cfg.GEN_FRACTION <= 1:
        raise ConfigError(f"DISENTANGLE.IMAGE.GEN_FRACTION = {image_cfg.GEN_FRACTION} must be in (0, 1]")
    if not 0 <= image_cfg.TEACHER_MOMENTUM < 1:
        raise ConfigError(f"DISENTANGLE.IMAGE.TEACHER_MOMENTUM = {image_cfg.TEACHER_MOMENTUM} must be in [0, 1)")
    for key in ("BASE_CHANNELS", "ID_DIM", "DOMAIN_DIM", "MLP_DIM", "MINE_DIM", "DIS_CHANNELS", "DIS_SCALES"):
        if image_cfg[key] < 1:
            raise ConfigError(f"DISENTANGLE.IMAGE.{key} = {image_cfg[key]} must be >= 1")
    if image_cfg.SIZE and len(image_cfg.SIZE) != 2:
        raise ConfigError(f"DISENTANGLE.IMAGE.SIZE = {list(image_cfg.SIZE)}: give [height, width], "
                          "or [] for the re-ID input size")
    height, width = image_cfg.SIZE or cfg.INPUT.SIZE_TRAIN
    if height % 16 or width % 16:
        raise ConfigError(
            f"DISENTANGLE.IMAGE.SIZE = {list(image_cfg.SIZE)} (or INPUT.SIZE_TRAIN when empty): height and "
            "width must be multiples of 16 (E_dom halves them 4 times, Dec doubles E_id's H/4 x W/4 code twice)")
    if image_cfg.W_GEN_ID and image_cfg.TEACHER == "none":
        raise ConfigError("DISENTANGLE.IMAGE.W_GEN_ID > 0 needs a teacher to judge the swaps: set "
                          "DISENTANGLE.IMAGE.TEACHER to 'ema' or 'checkpoint', or W_GEN_ID 0")
    if image_cfg.TEACHER == "checkpoint" and not image_cfg.TEACHER_WEIGHT:
        raise ConfigError("DISENTANGLE.IMAGE.TEACHER = 'checkpoint' needs DISENTANGLE.IMAGE.TEACHER_WEIGHT, "
                          "a re-ID checkpoint trained on the same sources")


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


def dann_ramp(progress, maximum=1.0):
    """DANN's schedule (Ganin et al., 2016): 0 at the start, towards ``maximum`` as progress goes to 1."""
    return maximum * (2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0)


def linear_ramp(step, length):
    """0 at step 0, 1 from step ``length`` on; 1 throughout when ``length`` is 0."""
    return 1.0 if length <= 0 else min(1.0, step / length)


def _build_teacher(cfg, model):
    image_cfg = cfg.DISENTANGLE.IMAGE
    if image_cfg.TEACHER == "none":
        return None
    if image_cfg.TEACHER == "checkpoint":
        teacher = ReIDTeacher(model, momentum=1.0)
        load_reid_weights(teacher.net, image_cfg.TEACHER_WEIGHT, logger=logger,
                          config_key="DISENTANGLE.IMAGE.TEACHER_WEIGHT")
        return teacher
    return ReIDTeacher(model, momentum=image_cfg.TEACHER_MOMENTUM)


class ImageLevelExtension(TrainingExtension):
    """Image-level terms ("img_rec", "img_cyc", "img_code", "img_dom", "img_adv", "img_mi", "img_gan",
    "img_id", "gen_id", "gen_triplet"), the disentangler's Adam, T's and D's steps, the teacher."""

    def __init__(self, cfg, num_domains, device, model, reid_loss, total_iters, train_records=()):
        _check_cfg(cfg)
        image_cfg = cfg.DISENTANGLE.IMAGE
        self.cfg, self.seed, self.model = cfg, cfg.SOLVER.SEED, model
        self._build_networks(cfg, num_domains, device)
        self.criterion = ImageDisentangleLoss(
            w_rec=image_cfg.W_REC, w_cyc=image_cfg.W_CYC, w_code=image_cfg.W_CODE, w_dom=image_cfg.W_DOM,
            w_adv=image_cfg.W_ADV, w_mi=image_cfg.W_MI, w_gan=image_cfg.W_GAN, adversary=image_cfg.ADVERSARY)
        self.swap_loss = SwapReIDLoss(reid_loss.id_criterion, reid_loss.triplet_criterion,
                                      joint_triplet=image_cfg.GEN_JOINT_TRIPLET)
        self.teacher = _build_teacher(cfg, model) if (image_cfg.W_GEN or image_cfg.W_GEN_ID) else None
        self._read_settings(image_cfg)
        self.total_steps = max(1, self.warmup_iters + total_iters)
        self.steps_done = 0
        self.joint_steps = 0
        self.grid_paths = training_grid_sources(train_records, _GRID_SOURCES) if self.vis_period else []
        # Read now, so that a broken file is found before training, not after an epoch.
        self.grid_images = read_image_tensors(self.grid_paths, self.disentangler.size) if self.grid_paths else None
        self._build_optimizers(image_cfg)
        self._has_terms = False
        self._kept_codes = None
        self._kept_images = None

    def _build_networks(self, cfg, num_domains, device):
        """The disentangler, and D when W_GAN is set, from a random stream of their own: they start from the
        same weights whatever was built before them, so that the +image and full ablation rows of one seed
        can share one generator warm-up."""
        image_cfg = cfg.DISENTANGLE.IMAGE
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(self.seed, "image_level"))
            self.disentangler = ImageDisentangler(cfg, num_domains).to(device)
            self.discriminator = (MultiScaleDomainDiscriminator(
                num_domains, image_cfg.DIS_CHANNELS, image_cfg.DIS_SCALES).to(device) if image_cfg.W_GAN else None)
        self.channels_last = device.type == "cuda" and bool(cfg.SOLVER.CHANNELS_LAST)
        if self.channels_last:
            self.disentangler.to(memory_format=torch.channels_last)

    def _read_settings(self, image_cfg):
        self.teacher_input = image_cfg.TEACHER_INPUT
        self.freeze_swap_statistics = image_cfg.SWAP_BN_STATS == "frozen"
        self.swap_onto_real = image_cfg.SWAP_IMAGE == "onto_real"
        self.w_gen, self.w_gen_id = image_cfg.W_GEN, image_cfg.W_GEN_ID
        self.gen_ramp_iters = image_cfg.GEN_RAMP_ITERS
        self.gen_fraction = image_cfg.GEN_FRACTION
        self.grl_lambda = image_cfg.GRL_LAMBDA
        self.adv_ramp = image_cfg.ADV_RAMP
        self.vis_period = image_cfg.VIS_PERIOD
        self.warmup_iters = image_cfg.WARMUP_ITERATIONS
        self.warmup_cache = image_cfg.WARMUP_CACHE

    def _build_optimizers(self, image_cfg):
        """The disentangler's Adam (all but T, and but C_adv in confusion mode), T's, C_adv's and D's."""
        def adam(parameters):
            return torch.optim.Adam(parameters, lr=image_cfg.LR, betas=_BETAS)

        confusion = image_cfg.ADVERSARY == "confusion"
        net = self.disentangler
        self.optimizer = adam(net.generator_parameters(with_adversary=not confusion))
        self.mine_optimizer = adam(net.statistics_net.parameters())
        self.adversary_optimizer = adam(net.adversarial_classifier.parameters()) if confusion else None
        self.discriminator_optimizer = adam(self.discriminator.parameters()) if self.discriminator else None

    # ------------------------------------------------------------------ per step
    def _set_adversary_scale(self):
        maximum = self.grl_lambda if self.criterion.adversary == "reversal" else 1.0
        progress = self.steps_done / self.total_steps
        self.criterion.adversary_scale = dann_ramp(progress, maximum) if self.adv_ramp else maximum

    def disentangle(self, images, domains, need_swapped):
        """The disentangler's own terms on a re-ID batch; keeps what T's and D's steps need."""
        self._has_terms = self.criterion.active(need_swapped=need_swapped)
        if not self._has_terms:
            return {}, None
        self._set_adversary_scale()
        x = self.disentangler.from_reid(images)
        partner = pair_across_domains(domains)
        shuffle = torch.randperm(len(domains), device=domains.device) if self.criterion.w_mi else None
        losses, result = self.criterion(self.disentangler, x, domains, partner, shuffle,
                                        need_swapped=need_swapped, discriminator=self.discriminator,
                                        need_reconstructed=need_swapped and self.swap_onto_real)
        if result.pooled_id is not None:
            self._kept_codes = (result.pooled_id, result.domain_code, domains)
        if self.discriminator is not None:
            self._kept_images = (x.detach(), domains, result.swapped.detach(), domains[partner])
        return losses, result

    def gen_weights(self):
        """(W_GEN, W_GEN_ID) at this joint step, after their ramp-up."""
        ramp = linear_ramp(self.joint_steps, self.gen_ramp_iters)
        return self.w_gen * ramp, self.w_gen_id * ramp

    def _ramped_off_terms(self, reid_loss):
        """The swap terms at weight 0, while their ramp has not started: every step reports the same
        term names, which is what the logs and the running averages expect."""
        names = (["gen_id"] + (["gen_triplet"] if reid_loss.triplet_criterion is not None else [])
                 if self.w_gen else [])
        names += ["img_id"] if self.w_gen_id else []
        zero = self.disentangler.pixel_mean.new_zeros(())
        return {name: zero for name in names}

    def compute_losses(self, batch, outputs, model, reid_loss):
        w_gen, w_gen_id = self.gen_weights()
        losses, result = self.disentangle(batch["images"], batch["domains"], need_swapped=bool(w_gen or w_gen_id))
        if not (w_gen or w_gen_id):
            losses.update(self._ramped_off_terms(reid_loss))
            return losses
        pids = batch["pids"]
        kept = select_per_identity(pids, self.gen_fraction)
        if self.swap_onto_real:
            swapped = self.disentangler.swap_onto(batch["images"][kept], result.swapped[kept],
                                                  result.reconstructed[kept])
        else:
            swapped = self.disentangler.to_reid(result.swapped[kept], batch["images"].shape[-2:])
        if self.channels_last:
            swapped = swapped.contiguous(memory_format=torch.channels_last)
        if w_gen:
            teacher_logits = None
            if self.teacher is not None:
                teacher_images = batch["images"][kept] if self.teacher_input == "real" else swapped.detach()
                with torch.no_grad(), frozen_batchnorm_statistics(self.teacher):
                    teacher_logits = self.teacher(teacher_images)["cls_score"]
            if self.freeze_swap_statistics:
                with frozen_batchnorm_statistics(self.model):
                    swap_outputs = model(swapped.detach())
            else:
                swap_outputs = model(swapped.detach())
            losses.update(self.swap_loss(swap_outputs, pids[kept], outputs, pids, teacher_logits, weight=w_gen))
        if w_gen_id:
            with frozen_batchnorm_statistics(self.teacher):
                judged = self.teacher(swapped)["cls_score"]
            losses["img_id"] = w_gen_id * F.cross_entropy(judged.float(), pids[kept])
        return losses

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)
        self.mine_optimizer.zero_grad(set_to_none=True)

    def step(self, scaler, joint=True):
        """After the main backward: the disentangler's step, then T's, C_adv's and D's own steps, then
        the teacher's refresh."""
        if self._has_terms:
            scaler.step(self.optimizer)
            self._has_terms = False
        self._step_statistics_net_and_adversary()
        self._step_discriminator()
        self.steps_done += 1
        if joint:
            self.joint_steps += 1
            if self.teacher is not None:
                self.teacher.update(self.model, self.joint_steps)

    def _step_statistics_net_and_adversary(self):
        """T ascends the MINE bound and, in confusion mode, C_adv learns the domain, on this step's codes."""
        if self._kept_codes is None:
            return
        pooled_id, domain_code, domains = self._kept_codes
        self._kept_codes = None
        pooled_id = pooled_id.float()
        if self.criterion.w_mi:
            domain_code = domain_code.float()
            self.mine_optimizer.zero_grad(set_to_none=True)
            shuffle = torch.randperm(len(domain_code), device=domain_code.device)
            bound = mine_lower_bound(self.disentangler.statistics_net, pooled_id, domain_code, shuffle)
            (-bound).backward()
            self.mine_optimizer.step()
        if self.criterion.w_adv and self.adversary_optimizer is not None:
            self.adversary_optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(self.disentangler.adversarial_classifier(pooled_id), domains).backward()
            self.adversary_optimizer.step()

    def _step_discriminator(self):
        if self._kept_images is None:
            return
        real, real_domains, swapped, swapped_domains = self._kept_images
        self._kept_images = None
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        loss = discriminator_loss(self.discriminator(real.float(), real_domains),
                                  self.discriminator(swapped.float(), swapped_domains))
        loss.backward()
        self.discriminator_optimizer.step()

    def warm_up(self, loader, device_setup):
        """WARMUP_ITERATIONS steps of the disentangler alone (engine.generator_warmup)."""
        warm_up_generator(self, loader, device_setup)

    # ------------------------------------------------------------------ state
    def modules(self):
        return [module for module in (self.disentangler, self.discriminator) if module is not None]

    def generator_state(self):
        """What a warm-up changes: the disentangler, D, their optimisers and the step count."""
        state = {"disentangler": self.disentangler.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "mine_optimizer": self.mine_optimizer.state_dict(), "steps_done": self.steps_done}
        if self.adversary_optimizer is not None:
            state["adversary_optimizer"] = self.adversary_optimizer.state_dict()
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
            state["discriminator_optimizer"] = self.discriminator_optimizer.state_dict()
        return state

    def load_generator_state(self, state):
        self.disentangler.load_state_dict(state["disentangler"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.mine_optimizer.load_state_dict(state["mine_optimizer"])
        self.steps_done = int(state["steps_done"])
        if self.adversary_optimizer is not None:
            self.adversary_optimizer.load_state_dict(state["adversary_optimizer"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])

    def state_dict(self):
        state = self.generator_state()
        state["joint_steps"] = self.joint_steps
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        return state

    def load_state_dict(self, state_dict):
        self.load_generator_state(state_dict)
        self.joint_steps = int(state_dict["joint_steps"])
        if self.teacher is not None:
            self.teacher.load_state_dict(state_dict["teacher"])

    def train(self, mode=True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.train(mode)
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
            x = self.disentangler.from_image_tensor(self.grid_images.to(device))
        else:
            picked = pick_grid_sources(batch["pids"], batch["domains"], _GRID_SOURCES)
            x = self.disentangler.from_reid(batch["images"][picked].to(device).float())
        grid = render_swap_grid(self.disentangler, x, x)
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, f"swaps_epoch{epoch}.png")
        grid.save(path)
        return path
