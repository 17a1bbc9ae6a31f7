"""Checkpoints that resume a run exactly: every state, RNGs included, written atomically."""
import os
import random
import re

import numpy as np
import torch
from ignite.handlers import Checkpoint, DiskSaver, global_step_from_engine

from modeling.weight_loading import read_weights_file
from utils.errors import UserError

CHECKPOINT_PREFIX = "checkpoint"
_CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)\.pt$")


class RNGState:
    """The random generators as a state dict of tensors and ints (loadable with weights_only)."""

    def state_dict(self):
        np_state = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state):
        torch.set_rng_state(state["torch"])
        random.setstate(_as_tuples(state["python"]))
        np_state = state["numpy"]
        np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                             np_state["has_gauss"], np_state["cached_gaussian"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def make_checkpoint_handler(output_dir, to_save, trainer, n_saved=3):
    """An ignite Checkpoint writing OUTPUT_DIR/checkpoint_{epoch}.pt atomically."""
    saver = DiskSaver(output_dir, require_empty=False, atomic=True, create_dir=True)
    return Checkpoint(to_save, saver, filename_prefix="", n_saved=n_saved, filename_pattern=
                      f"{CHECKPOINT_PREFIX}_{{global_step}}.{{ext}}",
                      global_step_transform=global_step_from_engine(trainer))


def find_checkpoint(path):
    """A checkpoint file, or the newest complete one in a run folder."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise UserError(f"--resume {path}: no such checkpoint file or run folder")
    found = []
    for name in os.listdir(path):
        match = _CHECKPOINT_NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(path, name)))
    if not found:
        raise UserError(f"--resume {path}: the folder holds no {CHECKPOINT_PREFIX}_<epoch>.pt to resume from")
    return max(found)[1]


def restore(to_load, path):
    """Load every object of a training checkpoint; say which file when something does not fit."""
    state = read_weights_file(path, "--resume")
    missing = [name for name in to_load if name not in state]
    if missing:
        raise UserError(f"{path}: not a training checkpoint of this configuration, it lacks {missing}")
    try:
        Checkpoint.load_objects(to_load=to_load, checkpoint=state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise UserError(f"{path}: does not fit this configuration ({str(err).splitlines()[0]})") from None
