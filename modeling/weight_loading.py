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
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise UserError(f"{name} cannot be read: {error.strerror}") from None
    # torch.save writes a zip archive (or, before torch 1.6, a pickle stream):
    # anything else is refused before the unpickler reads it as a pickled object.
    if not (magic.startswith(b"PK\x03\x04") or magic.startswith(b"\x80")):
        raise UserError(f"{name} is not a PyTorch weights file (it starts with {magic!r}, not a zip archive "
                        f"or a pickle stream): give the .pth/.pt file that torch.save wrote")
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


def non_finite_tensors(obj, prefix=""):
    """Key paths ("model.base.conv1.weight") of the float tensors in ``obj`` (nested dicts and lists)
    that hold NaN or inf."""
    if isinstance(obj, torch.Tensor):
        return [prefix] if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    return [path for key, value in items
            for path in non_finite_tensors(value, f"{prefix}.{key}" if prefix else str(key))]


def check_finite(obj, name):
    """Refuse NaN or inf anywhere in ``obj`` (a state dict or a checkpoint): the run that wrote it had diverged."""
    bad = non_finite_tensors(obj)
    if bad:
        others = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
        raise UserError(f"{name} holds NaN or infinite values in {bad[0]}{others}: the run that wrote it had "
                        "diverged; use an earlier checkpoint")


def check_weight_values(state, expected, name):
    """Refuse tensors that would load as other numbers: integers where the model has floats (load_state_dict
    casts them), and NaN or inf."""
    for key, value in state.items():
        target = expected.get(key)
        if target is not None and target.is_floating_point() and not value.is_floating_point():
            raise UserError(
                f"{name}: {key} holds {str(value.dtype).replace('torch.', '')} values where the model has "
                f"{str(target.dtype).replace('torch.', '')}; loading would cast them to other weights. The file "
                "was not written by torch.save of a re-ID model's state dict (or was converted wrongly).")
    check_finite(state, name)


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


def _is_structural(key):
    """A key whose absence changes the test feature: not the classifier, not a BN step counter."""
    return not key.startswith("classifier.") and not key.endswith("num_batches_tracked")


def _classifier_of_another_size(state, expected, name, logger):
    """The classifier keys whose shape differs (another number of identities: skipped, and logged); any other
    shape mismatch is a checkpoint of another architecture, refused."""
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
    return skipped_shape


def load_reid_weights(model, path, logger=None, config_key=None, for_test=False):
    """Copy the weights in ``path`` into ``model``; returns {missing, unexpected, skipped_shape}.

    A classifier of another size (another training set) is skipped, since
    fine-tuning starts a new one, and with ``for_test`` the classifier is not
    loaded at all (testing does not use it); any other shape mismatch, and backbone layers
    present on one side only (another depth), mean a checkpoint of another
    architecture and are refused. With ``for_test`` every key that shapes the
    test feature (neck, feature-level module) must match too, since a module
    left at its initial values would silently give other features; when
    fine-tuning, such modules may start fresh. ``config_key`` (e.g.
    "TEST.WEIGHT") names the setting in error messages.
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
    if for_test:
        # The test network is built with a placeholder classifier; the file's is not needed, whatever its size.
        unused = sorted(key for key in state if key.startswith("classifier."))
        if unused:
            logger.info("not loaded from %s: %s (testing does not use the classifier)", path, ", ".join(unused))
        state = {key: value for key, value in state.items() if not key.startswith("classifier.")}
        expected = {key: value for key, value in expected.items() if not key.startswith("classifier.")}
    skipped_shape = _classifier_of_another_size(state, expected, name, logger)
    loadable = {key: value for key, value in state.items() if key in expected and key not in skipped_shape}
    missing = sorted(set(expected) - set(loadable) - set(skipped_shape))
    unexpected = sorted(set(state) - set(expected))
    _refuse_other_structure(name, missing, unexpected, for_test)
    check_weight_values(loadable, expected, name)
    model.load_state_dict(loadable, strict=False)
    if missing:
        logger.warning("%d keys of the model are not in %s and keep their initial values: %s",
                       len(missing), path, ", ".join(missing))
    if unexpected:
        logger.warning("%d keys of %s are not in the model and were ignored: %s",
                       len(unexpected), path, ", ".join(unexpected))
    logger.info("loaded %d tensors from %s", len(loadable), path)
    return {"missing": missing, "unexpected": unexpected, "skipped_shape": skipped_shape}


def _refuse_other_structure(name, missing, unexpected, for_test):
    if for_test:
        checked = _is_structural
    else:
        def checked(key):
            return key.startswith("base.") and not key.endswith("num_batches_tracked")
    only_model = [key for key in missing if checked(key)]
    only_file = [key for key in unexpected if checked(key)]
    if not (only_model or only_file):
        return
    if any(key.startswith("feature_disentangler.") for key in only_file):
        fix = "it was trained with the feature level: set DISENTANGLE.FEATURE.ENABLED True and its sizes"
    elif any(key.startswith("feature_disentangler.") for key in only_model):
        fix = "it was trained without the feature level: set DISENTANGLE.FEATURE.ENABLED False"
    else:
        fix = ("it was trained with another architecture: set MODEL.NAME, MODEL.NECK and the other MODEL "
               "keys to the ones it was trained with")
    parts = []
    if only_file:
        parts.append(f"{len(only_file)} of its keys are not in the model (first: {only_file[0]})")
    if only_model:
        parts.append(f"{len(only_model)} keys of the model are not in it (first: {only_model[0]})")
    raise UserError(f"{name} does not fit this model: {'; '.join(parts)}; {fix}.")
