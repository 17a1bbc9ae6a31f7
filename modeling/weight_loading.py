"""Loading re-ID weights: Bag-of-Tricks state dicts and this project's checkpoints.

Accepted layouts: a plain state dict (``base.*``, ``bottleneck.*``,
``classifier.weight``), the same with every key prefixed ``module.`` (saved
from DataParallel), or either under a ``model`` or ``state_dict`` entry (this
project's ignite checkpoints keep the model under ``model``). Files are read
with ``weights_only=True``: a downloaded file must not run code.
"""
import logging
import os
import pickle

import torch

from utils.errors import UserError

_WRAPPER_KEYS = ("model", "state_dict")
_PARALLEL_PREFIX = "module."


def _describe(path, config_key):
    return f"{config_key} = {path!r}" if config_key else f"weights file {path!r}"


def read_weights_file(path, config_key=None):
    """``torch.load`` without code execution; unreadable files become a UserError naming the file."""
    name = _describe(path, config_key)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[-1]
        raise UserError(
            f"{name} holds a pickled Python object (e.g. a whole model saved by an "
            f"old ignite), not a plain state dict of tensors; it is refused because unpickling "
            f"objects can run arbitrary code ({reason}). To convert it, in an environment where you "
            f"trust the file and the code that wrote it is importable, run: "
            f"model = torch.load(path, weights_only=False); torch.save(model.state_dict(), new_path); "
            f"then use new_path instead.") from None
    except (RuntimeError, KeyError, EOFError) as error:
        raise UserError(
            f"{name} is not a readable PyTorch weights file (truncated, corrupted "
            f"or another format): {error}") from None


def _extract_state_dict(loaded, name):
    state = loaded
    while isinstance(state, dict):
        wrapper = next((key for key in _WRAPPER_KEYS if isinstance(state.get(key), dict)), None)
        if wrapper is None:
            break
        state = state[wrapper]
    if not isinstance(state, dict):
        raise UserError(f"{name} holds a {type(state).__name__}, not a state dict")
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if tensors and all(key.startswith(_PARALLEL_PREFIX) for key in tensors):
        tensors = {key[len(_PARALLEL_PREFIX):]: value for key, value in tensors.items()}
    return tensors


def load_reid_weights(model, path, logger=None, config_key=None):
    """Copy the weights in ``path`` into ``model``; returns {missing, unexpected, skipped_shape}.

    A classifier of another size (another training set) is skipped, since
    testing does not use it; any other shape mismatch means a checkpoint of
    another architecture and is refused. ``config_key`` (e.g. "TEST.WEIGHT")
    names the setting in error messages.
    """
    logger = logger or logging.getLogger("jifd.model")
    name = _describe(path, config_key)
    if not path or not os.path.isfile(path):
        raise UserError(f"{name} is not a file: give the path of a re-ID checkpoint")
    state = _extract_state_dict(read_weights_file(path, config_key), name)
    if not any(key.startswith("base.") for key in state):
        hint = (" It looks like an ImageNet backbone file: use MODEL.PRETRAIN_CHOICE imagenet for it."
                if "conv1.weight" in state else "")
        raise UserError(
            f"{name} has no backbone keys (base.*): it is not a re-ID checkpoint of this project or "
            f"of Bag-of-Tricks.{hint}")

    expected = model.state_dict()
    skipped_shape, wrong_shape = [], []
    for key in sorted(set(state) & set(expected)):
        if state[key].shape == expected[key].shape:
            continue
        (skipped_shape if key.startswith("classifier.") else wrong_shape).append(key)
    if wrong_shape:
        key = wrong_shape[0]
        others = f" (and {len(wrong_shape) - 1} more keys)" if len(wrong_shape) > 1 else ""
        raise UserError(
            f"{name} does not fit this model: {key} has shape {tuple(state[key].shape)} in the file "
            f"but {tuple(expected[key].shape)} in the model{others}. The checkpoint was trained with "
            f"another architecture; set MODEL.NAME (and the other MODEL keys) to the one it was "
            f"trained with.")
    for key in skipped_shape:
        logger.info("skipped %s: shape %s in the file, %s in the model (another number of identities; "
                    "testing does not use the classifier)", key, tuple(state[key].shape),
                    tuple(expected[key].shape))

    loadable = {key: value for key, value in state.items() if key in expected and key not in skipped_shape}
    missing = sorted(set(expected) - set(loadable) - set(skipped_shape))
    unexpected = sorted(set(state) - set(expected))
    model.load_state_dict(loadable, strict=False)
    if missing:
        logger.warning("%d keys of the model are not in %s and keep their initial values: %s",
                       len(missing), path, ", ".join(missing))
    if unexpected:
        logger.warning("%d keys of %s are not in the model and were ignored: %s",
                       len(unexpected), path, ", ".join(unexpected))
    logger.info("loaded %d tensors from %s", len(loadable), path)
    return {"missing": missing, "unexpected": unexpected, "skipped_shape": skipped_shape}
