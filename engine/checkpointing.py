"""Checkpoints that resume a run exactly, written atomically.

A checkpoint holds every state a run needs (model, optimisers, scheduler, the
trainer's epoch and iteration, the center loss, the extensions, the fp16 grad
scaler); the random generators need no saving, because each epoch reseeds
them from (SOLVER.SEED, epoch, rank) (engine.runtime.seed_epoch).

ignite's DiskSaver(atomic=True) writes a checkpoint to a temporary file in the
same folder (tempfile's ``tmpXXXXXXXX``) and renames it over
``checkpoint_<epoch>.pt``, so a kill at any moment leaves either the previous
files or the new complete one, never a truncated ``checkpoint_<epoch>.pt``.
Weights that became NaN or inf are never saved, and a checkpoint that holds
them is never resumed from nor called good.
"""
import logging
import os
import re

from ignite.handlers import Checkpoint, DiskSaver, global_step_from_engine

from modeling.weight_loading import check_finite, check_weight_values, non_finite_tensors, read_weights_file
from utils.atomic_io import TEMP_PREFIX
from utils.errors import UserError
from utils.file_faults import reported_write_faults

from .train_step import NonFiniteLossError

logger = logging.getLogger("jifd.train")

CHECKPOINT_PREFIX = "checkpoint"
_CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)\.pt$")
# What an interrupted write leaves behind: tempfile.NamedTemporaryFile's names (ignite's atomic
# checkpoints), utils.atomic_io's temporary files, and the .partial files of extracted features.
_TEMP_NAME = re.compile(rf"^(tmp[a-z0-9_]{{8}}|{re.escape(TEMP_PREFIX)}.+|.+\.partial)$")


class NonFiniteWeightsError(NonFiniteLossError):
    """The weights became NaN or inf although every loss was finite; the checkpoint is not written."""


def list_checkpoints(folder):
    """(epoch, path) of every checkpoint_<epoch>.pt in ``folder``, oldest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(match.group(1)), os.path.join(folder, name))
             for name in os.listdir(folder) if (match := _CHECKPOINT_NAME.match(name))]
    return sorted(found)


class _CheckedSaver(DiskSaver):
    """ignite's atomic DiskSaver that refuses non-finite weights, names the file and the cause of a
    filesystem fault, and deletes the checkpoints a new one replaces only once that one is written."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._replaced = []

    def __call__(self, checkpoint, filename, metadata=None):
        replaced, self._replaced = self._replaced, []
        path = os.path.join(self.dirname, filename)
        bad = non_finite_tensors(checkpoint.get("model", {}))
        if bad:
            raise NonFiniteWeightsError(
                f"the weights became NaN or infinite ({bad[0]}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}) "
                f"although every loss term was finite; {filename} was not written. Lower SOLVER.BASE_LR, "
                "or try SOLVER.AMP off.")
        with reported_write_faults(path):
            super().__call__(checkpoint, filename, metadata)
        for name in replaced:
            if name != filename and os.path.exists(os.path.join(self.dirname, name)):
                super().remove(name)

    def remove(self, filename):
        self._replaced.append(filename)


class _RunCheckpoint(Checkpoint):
    @property
    def last_checkpoint(self):
        """The newest checkpoint on disk that reads and holds finite weights (None if there is none)."""
        return newest_good_checkpoint(self.save_handler.dirname)


def make_checkpoint_handler(output_dir, to_save, trainer, n_saved=3):
    """An ignite Checkpoint writing OUTPUT_DIR/checkpoint_{epoch}.pt atomically, on rank 0 only.

    The files already in OUTPUT_DIR (a resumed run's) are counted among the
    ``n_saved`` kept, so a run that is resumed again and again still keeps
    only the newest ones.
    """
    saver = _CheckedSaver(output_dir, require_empty=False, atomic=True, create_dir=True, save_on_rank=0)
    handler = _RunCheckpoint(to_save, saver, filename_prefix="", n_saved=n_saved, save_on_rank=0,
                             filename_pattern=f"{CHECKPOINT_PREFIX}_{{global_step}}.{{ext}}",
                             global_step_transform=global_step_from_engine(trainer))
    existing = list_checkpoints(output_dir)[-n_saved:]
    handler.load_state_dict({"_saved": [(epoch, os.path.basename(path)) for epoch, path in existing]})
    return handler


def stray_temporary_files(folder):
    """Names of the files in ``folder`` that an interrupted write left behind."""
    if not os.path.isdir(folder):
        return []
    return sorted(name for name in os.listdir(folder) if _TEMP_NAME.match(name))


def report_stray_temporary_files(folder):
    leftovers = stray_temporary_files(folder)
    if leftovers:
        logger.warning("%s holds %s, left by a save that was interrupted; not a checkpoint, safe to delete",
                       folder, ", ".join(leftovers))


def check_no_earlier_run(output_dir):
    """A new run must not mix its checkpoints with another run's (resume would pick the wrong one)."""
    existing = list_checkpoints(output_dir)
    if existing:
        raise UserError(
            f"OUTPUT_DIR {output_dir} already holds {os.path.basename(existing[-1][1])} of an earlier run: "
            f"continue that run with --resume {output_dir}, or set OUTPUT_DIR to a new folder")


def resumed_folder(path):
    """The run folder that --resume ``path`` (a run folder or a checkpoint file in one) continues."""
    if os.path.isfile(path):
        return os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(path):
        raise UserError(f"--resume {path}: no such checkpoint file or run folder")
    return path


def _candidates(path):
    """Checkpoint files to resume from, the preferred first."""
    if os.path.isfile(path):
        return [path]
    resumed_folder(path)
    found = [file for _, file in reversed(list_checkpoints(path))]
    if not found:
        raise UserError(f"--resume {path}: the folder holds no {CHECKPOINT_PREFIX}_<epoch>.pt to resume from "
                        "(the run stopped before its first save); start it again without --resume")
    return found


def restore(to_load, path):
    """Load every object of ``to_load`` from the checkpoint ``path`` or the newest loadable one in a run folder.

    An unreadable file (truncated or corrupted by something other than this
    code, e.g. a copy that was cut short) or one holding NaN or inf is skipped
    with a warning when a run folder is given and an older checkpoint reads; a
    checkpoint that reads but does not fit the configuration is an error,
    never skipped. Returns the path loaded.
    """
    problems = []
    for candidate in _candidates(path):
        try:
            state = _read_checkpoint(candidate, to_load.get("model"))
        except UserError as err:
            problems.append(str(err))
            logger.warning("skipped %s: %s", candidate, err)
            continue
        _load(to_load, state, candidate)
        return candidate
    raise UserError(f"--resume {path}: no loadable checkpoint ({'; '.join(problems)})")


def _read_checkpoint(path, model=None):
    """The checkpoint's dict, refused when it would load other numbers than it holds (NaN, inf, integers)."""
    state = read_weights_file(path, "--resume")
    if isinstance(state, dict):
        check_finite(state, path)
        if model is not None and isinstance(state.get("model"), dict):
            check_weight_values(state["model"], model.state_dict(), path)
    return state


def newest_good_checkpoint(folder):
    """The newest checkpoint_<epoch>.pt of ``folder`` that reads and holds only finite values, or None."""
    for _, path in reversed(list_checkpoints(folder)):
        try:
            _read_checkpoint(path)
        except UserError:
            continue
        return path
    return None


def _load(to_load, state, path):
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds a {type(state).__name__}, not a training checkpoint")
    missing = [name for name in to_load if name not in state]
    if missing:
        raise UserError(f"{path}: not a training checkpoint of this configuration, it lacks {missing}")
    try:
        Checkpoint.load_objects(to_load=to_load, checkpoint=state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise UserError(f"{path}: does not fit this configuration ({_first_problem(err)})") from None


def _first_problem(err):
    """load_state_dict's first specific complaint, not its header ("Error(s) in loading state_dict for X:")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    details = [line for line in lines if not line.startswith("Error(s) in loading state_dict")]
    if not details:
        return lines[0] if lines else type(err).__name__
    first = details[0].rstrip(". ")
    kind, _, keys = first.partition(": ")
    keys = keys.split(", ")
    if kind.endswith("key(s) in state_dict") and len(keys) > 1:
        first = f"{kind}: {keys[0]} and {len(keys) - 1} more"
    more = f"; and {len(details) - 1} more problem(s)" if len(details) > 1 else ""
    return first + more
