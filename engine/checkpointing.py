"""Checkpoints that resume a run exactly, written atomically.

A checkpoint holds every state a run needs (model, optimisers, scheduler, the
trainer's epoch and iteration, the center loss, the extensions, the fp16 grad
scaler); the random generators need no saving, because each epoch reseeds
them from (SOLVER.SEED, epoch, rank) (engine.runtime.seed_epoch).

ignite's DiskSaver(atomic=True) writes a checkpoint to a temporary file in the
same folder (tempfile's ``tmpXXXXXXXX``) and renames it over
``checkpoint_<epoch>.pt``, so a kill at any moment leaves either the previous
files or the new complete one, never a truncated ``checkpoint_<epoch>.pt``.
"""
import logging
import os
import re

from ignite.handlers import Checkpoint, DiskSaver, global_step_from_engine

from modeling.weight_loading import read_weights_file
from utils.errors import UserError

logger = logging.getLogger("jifd.train")

CHECKPOINT_PREFIX = "checkpoint"
_CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)\.pt$")
# tempfile.NamedTemporaryFile's names: what an interrupted atomic save leaves behind.
_TEMP_NAME = re.compile(r"^tmp[a-z0-9_]{8}$")


def list_checkpoints(folder):
    """(epoch, path) of every checkpoint_<epoch>.pt in ``folder``, oldest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(match.group(1)), os.path.join(folder, name))
             for name in os.listdir(folder) if (match := _CHECKPOINT_NAME.match(name))]
    return sorted(found)


def make_checkpoint_handler(output_dir, to_save, trainer, n_saved=3):
    """An ignite Checkpoint writing OUTPUT_DIR/checkpoint_{epoch}.pt atomically, on rank 0 only.

    The files already in OUTPUT_DIR (a resumed run's) are counted among the
    ``n_saved`` kept, so a run that is resumed again and again still keeps
    only the newest ones.
    """
    saver = DiskSaver(output_dir, require_empty=False, atomic=True, create_dir=True, save_on_rank=0)
    handler = Checkpoint(to_save, saver, filename_prefix="", n_saved=n_saved, save_on_rank=0,
                         filename_pattern=f"{CHECKPOINT_PREFIX}_{{global_step}}.{{ext}}",
                         global_step_transform=global_step_from_engine(trainer))
    existing = list_checkpoints(output_dir)[-n_saved:]
    handler.load_state_dict({"_saved": [(epoch, os.path.basename(path)) for epoch, path in existing]})
    return handler


def check_no_earlier_run(output_dir):
    """A new run must not mix its checkpoints with another run's (resume would pick the wrong one)."""
    existing = list_checkpoints(output_dir)
    if existing:
        raise UserError(
            f"OUTPUT_DIR {output_dir} already holds {os.path.basename(existing[-1][1])} of an earlier run: "
            f"continue that run with --resume {output_dir}, or set OUTPUT_DIR to a new folder")


def _candidates(path):
    """Checkpoint files to resume from, the preferred first."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise UserError(f"--resume {path}: no such checkpoint file or run folder")
    leftovers = sorted(name for name in os.listdir(path) if _TEMP_NAME.match(name))
    if leftovers:
        logger.warning("%s holds %s, left by a save that was interrupted; not a checkpoint, safe to delete",
                       path, ", ".join(leftovers))
    found = [file for _, file in reversed(list_checkpoints(path))]
    if not found:
        raise UserError(f"--resume {path}: the folder holds no {CHECKPOINT_PREFIX}_<epoch>.pt to resume from "
                        "(the run stopped before its first save); start it again without --resume")
    return found


def restore(to_load, path):
    """Load every object of ``to_load`` from the checkpoint ``path`` or the newest loadable one in a run folder.

    An unreadable file (truncated or corrupted by something other than this
    code, e.g. a copy that was cut short) is skipped with a warning when a
    run folder is given and an older checkpoint reads; a checkpoint that
    reads but does not fit the configuration is an error, never skipped.
    Returns the path loaded.
    """
    problems = []
    for candidate in _candidates(path):
        try:
            state = read_weights_file(candidate, "--resume")
        except UserError as err:
            problems.append(str(err))
            logger.warning("skipped %s: %s", candidate, err)
            continue
        _load(to_load, state, candidate)
        return candidate
    raise UserError(f"--resume {path}: no loadable checkpoint ({'; '.join(problems)})")


def _load(to_load, state, path):
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds a {type(state).__name__}, not a training checkpoint")
    missing = [name for name in to_load if name not in state]
    if missing:
        raise UserError(f"{path}: not a training checkpoint of this configuration, it lacks {missing}")
    try:
        Checkpoint.load_objects(to_load=to_load, checkpoint=state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise UserError(f"{path}: does not fit this configuration ({str(err).splitlines()[0]})") from None
