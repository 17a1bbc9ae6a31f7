"""A run folder belongs to one run: its lock, where a resume writes, what a resume may change.

- The lock: OUTPUT_DIR/run.lock names the process holding the folder (pid,
  host, start time, command) and is flock-ed for the whole run, so the
  kernel releases it when that process dies, however it dies. A second run
  on a held folder is refused; a lock left by a process that is gone from
  this host is taken over with a warning; one written on another host is
  refused, since its process cannot be checked from here. On a file system
  without flock the pid alone says whether the holder lives.
- --resume writes only into the folder it resumes; an OUTPUT_DIR naming
  another one is refused.
- config.yaml describes the folder's checkpoints: a fresh run writes it at
  once, a resume only once its checkpoint has been accepted. Each key a
  resume changes is logged; the optimiser and schedule keys, which the
  checkpoint would otherwise override in silence, are applied over it, and
  those that cannot be (another optimiser, the JIFD modules' own rates) are
  refused.
"""
import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import sys

import ignite.distributed as idist
import yaml

from config.loader import flatten_keys
from config.renamed_keys import new_name
from solver import make_optimizer
from utils.atomic_io import atomic_write_text
from utils.errors import UserError
from utils.file_faults import make_folder

from .checkpointing import check_no_earlier_run, report_stray_temporary_files, restore, resumed_folder

logger = logging.getLogger("jifd.train")

LOCK_NAME = "run.lock"
CONFIG_NAME = "config.yaml"

# Keys whose values a checkpoint also holds (optimiser and scheduler state): a resume sets the
# configured values over the restored ones.
APPLIED_OVER_CHECKPOINT = ("SOLVER.BASE_LR", "SOLVER.BIAS_LR_FACTOR", "SOLVER.WEIGHT_DECAY", "SOLVER.WEIGHT_DECAY_BIAS",
                           "SOLVER.MOMENTUM", "SOLVER.STEPS", "SOLVER.GAMMA", "SOLVER.WARMUP_FACTOR",
                           "SOLVER.WARMUP_EPOCHS", "SOLVER.WARMUP_METHOD", "SOLVER.CENTER_LR")
# Keys a resume cannot change, and why.
FIXED_BY_CHECKPOINT = {
    "SOLVER.OPTIMIZER_NAME": "the checkpoint holds the state of the run's optimiser",
    "DISENTANGLE.IMAGE.LR": "the image level's optimisers in the checkpoint hold its learning rate",
    "DISENTANGLE.FEATURE.CLASSIFIER_LR": "C_red's optimiser in the checkpoint holds its learning rate",
    "DISENTANGLE.IMAGE.WARMUP_ITERATIONS": "the generator warm-up ran before the first epoch and is not repeated",
}
# Keys that say where a run is, not how it trains.
_NOT_COMPARED = ("OUTPUT_DIR",)


# -----------------------------------------------------------------------------
# The lock
# -----------------------------------------------------------------------------
_held = {}


def _describe_holder(holder):
    if not holder:
        return "a process that wrote nothing in it yet"
    return (f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')} "
            f"({holder.get('command', '?')})")


def _read_holder(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 65536).decode("utf-8", "replace")
    try:
        holder = json.loads(text) if text.strip() else None
    except ValueError:
        return {"pid": "?", "host": "?", "started": "?", "command": text.strip()[:200]}
    return holder if isinstance(holder, dict) else None


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _open_locked(path):
    """(fd of ``path`` holding its flock, whether the file system has flock, None), or (None, True, holder)
    when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            return None, True, holder
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            return fd, False, None
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd, True, None
        # The holder released and deleted the file between our open and our flock: lock the new one.
        os.close(fd)


class RunFolderLock:
    """OUTPUT_DIR/run.lock, held by this process until ``release()``."""

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_NAME)
        make_folder(folder, "OUTPUT_DIR")
        fd, flock_works, holder = _open_locked(self.path)
        if fd is None:
            self._refuse_busy(holder)
        previous = _read_holder(fd)
        host = socket.gethostname()
        if (not flock_works and previous and previous.get("host") == host and previous.get("pid") != os.getpid()
                and _pid_alive(previous.get("pid"))):
            os.close(fd)
            self._refuse_busy(previous)
        if previous and previous.get("host") != host:
            os.close(fd)
            raise UserError(f"OUTPUT_DIR {folder} is locked by {_describe_holder(previous)}, which cannot be checked "
                            f"from this host ({host}). If that run has ended, delete {self.path}")
        # Reported by RunFolder, once the tool's logging is set up.
        self.taken_over_from = previous
        self.fd = fd
        record = {"pid": os.getpid(), "host": host,
                  "started": datetime.datetime.now().isoformat(timespec="seconds"),
                  "command": " ".join([os.path.basename(sys.executable)] + sys.argv)}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode("utf-8", "backslashreplace"))
        os.fsync(fd)

    def _refuse_busy(self, holder):
        raise UserError(f"OUTPUT_DIR {self.folder} is in use by another run: {_describe_holder(holder)}. Wait for "
                        "it to end, or set OUTPUT_DIR to another folder")

    def release(self):
        # Deleted while still locked, so no other process can lock this file after we let it go.
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        os.close(self.fd)


@contextlib.contextmanager
def hold_run_folder(folder):
    """Hold ``folder``'s lock for the block (in the main process only; again inside it, a no-op)."""
    key = os.path.realpath(folder)
    if idist.get_rank() != 0 or key in _held:
        yield
        return
    _held[key] = RunFolderLock(folder)
    try:
        yield
    finally:
        _held.pop(key).release()


# -----------------------------------------------------------------------------
# Where a resumed run writes
# -----------------------------------------------------------------------------
def _same_folder(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def output_dir_for_resume(cfg, resume, output_dir_given):
    """``cfg`` writing into the folder --resume ``resume`` continues.

    ``output_dir_given``: OUTPUT_DIR was set on purpose (on the command line,
    or by a caller of do_train); when it names another folder the resume is
    refused. An OUTPUT_DIR that only comes from a config file gives way.
    """
    folder = resumed_folder(resume)
    if _same_folder(folder, cfg.OUTPUT_DIR):
        return cfg
    if output_dir_given:
        raise UserError(f"--resume {resume} continues the run in {folder}, but OUTPUT_DIR is {cfg.OUTPUT_DIR}: a "
                        f"resumed run writes only into its own folder. Leave OUTPUT_DIR out, or to start a new run "
                        f"from these weights use MODEL.PRETRAIN_CHOICE self with MODEL.PRETRAIN_PATH")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = folder
    cfg.freeze()
    return cfg


# -----------------------------------------------------------------------------
# What a resume changes
# -----------------------------------------------------------------------------
def _flatten(node):
    """{key: value}, keys under their current names (a run written before a key was renamed compares alike)."""
    return {new_name(key): value for key, value in flatten_keys(node) if key not in _NOT_COMPARED}


def config_changes(folder, cfg):
    """[(key, value in the folder's config.yaml, value now)] for every key that differs; None without config.yaml."""
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            before = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        logger.warning("cannot read %s (%s): the changes of this resume are not listed", path, err)
        return None
    if not isinstance(before, dict):
        return None
    old, new = _flatten(before), _flatten(yaml.safe_load(cfg.dump()))
    absent = "(absent)"
    return [(key, old.get(key, absent), new.get(key, absent)) for key in sorted(set(old) | set(new))
            if old.get(key, absent) != new.get(key, absent)]


def _refused(changes, cfg):
    """(key, reason) of the changes a resume cannot apply."""
    refused = [(key, FIXED_BY_CHECKPOINT[key]) for key, _, _ in changes if key in FIXED_BY_CHECKPOINT]
    changed = {key for key, _, _ in changes}
    if "SOLVER.BASE_LR" in changed and cfg.DISENTANGLE.FEATURE.ENABLED and not cfg.DISENTANGLE.FEATURE.CLASSIFIER_LR:
        refused.append(("SOLVER.BASE_LR", "C_red learns at SOLVER.BASE_LR (DISENTANGLE.FEATURE.CLASSIFIER_LR 0) and "
                                          "its optimiser in the checkpoint holds the old rate"))
    return refused


def _listed(changes):
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes)


class RunFolder:
    """OUTPUT_DIR as do_train uses it: opened before anything is built, and, for a resume, told what was restored."""

    def __init__(self, cfg, resume=""):
        self.cfg = cfg
        self.folder = cfg.OUTPUT_DIR
        self.resume = resume
        self.changes = []
        lock = _held.get(os.path.realpath(self.folder))
        if lock is not None and lock.taken_over_from:
            logger.warning("took over %s: the run that held it (%s) is gone", lock.path,
                           _describe_holder(lock.taken_over_from))
            lock.taken_over_from = None
        report_stray_temporary_files(self.folder)
        if not resume:
            check_no_earlier_run(self.folder)
            self._write_config()
            return
        changes = config_changes(self.folder, cfg)
        if changes is None:
            logger.warning("%s has no readable %s: the keys this resume changes cannot be listed", self.folder,
                           CONFIG_NAME)
            return
        self.changes = changes
        refused = _refused(changes, cfg)
        if refused:
            key, reason = refused[0]
            old, new = next((old, new) for name, old, new in changes if name == key)
            raise UserError(f"--resume {resume}: {key} changes from {old!r} to {new!r}, which a resume cannot apply: "
                            f"{reason}. Resume with the run's value (its {CONFIG_NAME}), or start a new run")
        if changes:
            logger.warning("resuming with %d changed key(s), applied from the resumed epoch on: %s", len(changes),
                           _listed(changes))

    def _write_config(self):
        if idist.get_rank() == 0:
            atomic_write_text(os.path.join(self.folder, CONFIG_NAME), self.cfg.dump())

    def restore(self, to_load):
        """Load the checkpoint to resume (checkpointing.restore); a checkpoint that does not fit the
        configuration is refused naming the keys changed since the run."""
        try:
            return restore(to_load, self.resume)
        except UserError as err:
            if not self.changes:
                raise
            raise UserError(f"{err}; changed since the run: {_listed(self.changes)}") from None

    def accept(self, to_load):
        """The restored run continues: the optimiser and schedule keys of the config are set over the
        checkpoint's, and config.yaml now describes the run.

        Set whether or not they changed (unchanged, they are the restored values exactly), so that every
        process of a multi-process run applies the same values, whenever it read config.yaml.
        """
        _apply_solver_config(self.cfg, to_load)
        changed = [change for change in self.changes if change[0] in APPLIED_OVER_CHECKPOINT]
        if changed:
            logger.info("applied over the checkpoint's optimiser and schedule: %s; learning rate now %.3g",
                        _listed(changed), to_load["optimizer"].param_groups[0]["lr"])
        self._write_config()


def _apply_solver_config(cfg, to_load):
    """Set the configured rates, decays and schedule over the restored optimisers and scheduler."""
    optimizer, scheduler = to_load["optimizer"], to_load["scheduler"]
    configured = make_optimizer(cfg, to_load["model"]).param_groups
    for group, fresh in zip(optimizer.param_groups, configured):
        group["initial_lr"] = fresh["lr"]
        group["weight_decay"] = fresh["weight_decay"]
        if "momentum" in fresh:
            group["momentum"] = fresh["momentum"]
    solver = cfg.SOLVER
    scheduler.base_lrs = [fresh["lr"] for fresh in configured]
    scheduler.milestones = list(solver.STEPS)
    scheduler.gamma = solver.GAMMA
    scheduler.warmup_factor = solver.WARMUP_FACTOR
    scheduler.warmup_iters = solver.WARMUP_EPOCHS
    scheduler.warmup_method = solver.WARMUP_METHOD
    for group, lr in zip(optimizer.param_groups, scheduler.lrs_at(scheduler.last_epoch)):
        group["lr"] = lr
    center_optimizer = to_load.get("center_optimizer")
    if center_optimizer is not None:
        for group in center_optimizer.param_groups:
            group["lr"] = solver.CENTER_LR
