"""Where and how a run computes: device, mixed precision, memory format, seeds."""
import contextlib
import random
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from utils.errors import UserError


def resolve_device(name):
    """'auto' picks cuda when present; anything else is checked, not guessed."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"MODEL.DEVICE = {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"MODEL.DEVICE = {name!r} but this machine has no CUDA device; use auto or cpu")
    return device


@dataclass(frozen=True)
class DeviceSetup:
    """Where and how a step computes: its device, the autocast dtype (None = fp32) and the memory format."""

    device: torch.device
    dtype: torch.dtype = None
    channels_last: bool = False

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self):
        # Only fp16 underflows; bf16 and fp32 keep a disabled scaler so the step code is one path.
        enabled = self.dtype == torch.float16
        return torch.amp.GradScaler(self.device.type, enabled=enabled)

    def images(self, images):
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def prepare_model(self, model):
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model


def resolve_device_setup(cfg, device):
    """SOLVER.AMP 'auto' means fp16 on CUDA and fp32 on CPU, where autocast only slows down."""
    amp = cfg.SOLVER.AMP
    if amp == "auto":
        amp = "fp16" if device.type == "cuda" else "off"
    dtype = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    if dtype is torch.float16 and device.type != "cuda":
        raise UserError("SOLVER.AMP = 'fp16' needs CUDA; on CPU use 'bf16' or 'off'")
    channels_last = bool(cfg.SOLVER.CHANNELS_LAST) and device.type == "cuda"
    return DeviceSetup(device=device, dtype=dtype, channels_last=channels_last)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(seed, tag):
    """A seed for the random stream named ``tag`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed % 2**32, zlib.crc32(tag.encode())]).generate_state(1, np.uint32)[0])


def seed_epoch(seed, epoch, rank=0):
    """Reseed every generator of this process from (seed, epoch, rank).

    Called as each training epoch starts, so that an epoch's randomness
    (augmentation in the main process, the JIFD pairings) depends on nothing
    that ran before it: a run resumed at an epoch boundary, or one that
    evaluates more often, trains exactly like an uninterrupted one, and each
    process of a multi-process run draws its own stream.
    """
    derived = np.random.SeedSequence([seed % 2**32, epoch, rank]).generate_state(1, np.uint32)[0]
    seed_everything(int(derived))
