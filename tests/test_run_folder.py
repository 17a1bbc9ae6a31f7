"""A run folder belongs to one run: --resume writes only into its own folder, a second run on a held folder
is refused, a resume that changes the config says so, SIGTERM is logged, leftovers are reported.

Cases that stop before training run the tool in this process (tool_runs.run_tool_in_process); the two
that need a live run (the lock, SIGTERM) start it as a subprocess, both at once.
"""
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import torch

from conftest import small_run_cfg
from engine.checkpointing import NonFiniteWeightsError, _CheckedSaver, newest_good_checkpoint
import engine.run_folder as run_folder
from engine.run_folder import LOCK_NAME, RunFolderLock
from engine.trainer import do_train
from tiny_datasets import make_tree
from tool_runs import (assert_user_error, files_under, finish, one_thread, run_tool_in_process, start_tool,
                       write_config)
from utils.errors import UserError


def _cfg(root, out, *overrides):
    cfg = small_run_cfg(root, out, "SOLVER.IMS_PER_BATCH", 16, "SOLVER.MAX_EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 1,
                        "SOLVER.WARMUP_EPOCHS", 0, "SOLVER.STEPS", [5], "SOLVER.CHECKPOINT_PERIOD", 1,
                        "SOLVER.EVAL_PERIOD", 0, "SOLVER.LOG_PERIOD", 1, *overrides)
    return cfg


@pytest.fixture(scope="module")
def live_runs(tmp_path_factory):
    """Two training subprocesses started at once: one to hold its folder while another run asks for it,
    one to be stopped by SIGTERM. name -> (process, output folder, config file)."""
    tmp = tmp_path_factory.mktemp("live_runs")
    root = make_tree(str(tmp / "data"))
    runs = {}
    for name, epochs, iterations in (("held", 2, 2), ("terminated", 1, 200)):
        cfg = _cfg(root, tmp / name, "SOLVER.MAX_EPOCHS", epochs, "SOLVER.ITERS_PER_EPOCH", iterations,
                   "SOLVER.EVAL_PERIOD", epochs)
        config = write_config(cfg, tmp / f"{name}.yml")
        runs[name] = (start_tool("train.py", "--config_file", config), str(tmp / name), config)
    yield runs
    for process, _, _ in runs.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def _wait_for(condition, process, what):
    deadline = time.time() + 600
    while not condition():
        assert process.poll() is None, f"the run ended before {what}: {process.stderr.read()[-3000:]}"
        assert time.time() < deadline, f"no {what} in time"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_second_run_on_a_held_folder_is_refused_and_the_first_completes(live_runs):
    process, out, config = live_runs["held"]
    lock = os.path.join(out, LOCK_NAME)

    def holder_written():
        try:
            with open(lock) as handle:
                return json.load(handle)["pid"] == process.pid
        except (OSError, ValueError, KeyError):
            return False

    _wait_for(holder_written, process, "lock")
    before = files_under(out)
    line = assert_user_error(run_tool_in_process("train.py", "--config_file", config),
                             f"OUTPUT_DIR {out} is in use by another run: pid {process.pid} on host "
                             f"{socket.gethostname()}, started ", "set OUTPUT_DIR to another folder")
    assert "tools/train.py --config_file" in line
    after = files_under(out)
    # The refused run wrote nothing: files the first run had written then are as they were.
    assert all(after.get(name, data) == data or name in ("log.txt", LOCK_NAME) for name, data in before.items())
    code, stdout, stderr = finish(process)
    assert code == 0, stderr[-3000:]
    assert "metrics written to" in stdout
    assert os.path.isfile(os.path.join(out, "metrics.json")) and os.path.isfile(os.path.join(out, "model_final.pth"))
    assert not os.path.exists(lock)


@pytest.mark.slow
def test_sigterm_is_logged_as_an_interruption(live_runs):
    process, out, _ = live_runs["terminated"]
    log = os.path.join(out, "log.txt")

    def training():
        return os.path.isfile(log) and "Epoch[1] Iteration[2/200]" in open(log, encoding="utf-8").read()

    _wait_for(training, process, "training")
    process.send_signal(signal.SIGTERM)
    code, _, stderr = finish(process)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "interrupted (SIGTERM)"
    with open(log, encoding="utf-8") as handle:
        assert "WARNING: interrupted by SIGTERM: the run stopped" in handle.read()
    assert not os.path.exists(os.path.join(out, LOCK_NAME))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """(data root, run folder) of a finished 1-epoch run, and its config file."""
    tmp = tmp_path_factory.mktemp("trained_run")
    root = make_tree(str(tmp / "data"))
    cfg = _cfg(root, tmp / "A")
    cfg.freeze()
    with one_thread():
        do_train(cfg)
    return root, str(tmp / "A")


@pytest.mark.slow
def test_resume_into_another_runs_folder_is_refused_and_leaves_it_unchanged(trained_run, tmp_path):
    root, run_a = trained_run
    run_b = tmp_path / "B"
    run_b.mkdir()
    for name in ("checkpoint_1.pt", "checkpoint_2.pt", "checkpoint_3.pt", "model_final.pth", "metrics.json",
                 "config.yaml", "log.txt"):
        (run_b / name).write_bytes(os.urandom(64) + name.encode())
    before_a, before_b = files_under(run_a), files_under(run_b)
    config = os.path.join(run_a, "config.yaml")
    assert_user_error(run_tool_in_process("train.py", "--config_file", config, "--resume", run_a,
                                          "OUTPUT_DIR", str(run_b), "SOLVER.MAX_EPOCHS", 2),
                      f"--resume {run_a} continues the run in {run_a}, but OUTPUT_DIR is {run_b}",
                      "writes only into its own folder")
    assert files_under(run_b) == before_b
    assert files_under(run_a) == before_a


@pytest.mark.slow
def test_resume_writes_into_its_own_folder_and_applies_or_refuses_each_changed_key(trained_run, tmp_path):
    root, run_a = trained_run
    run = tmp_path / "run"
    shutil.copytree(run_a, run)
    run = str(run)
    config_yaml = os.path.join(run, "config.yaml")
    with open(config_yaml, "rb") as handle:
        config_before = handle.read()

    # Keys the checkpoint holds and a resume cannot change: refused, config.yaml untouched.
    assert_user_error(run_tool_in_process("train.py", "--config_file", config_yaml, "--resume", run,
                                          "SOLVER.MAX_EPOCHS", 2, "SOLVER.OPTIMIZER_NAME", "SGD"),
                      "SOLVER.OPTIMIZER_NAME changes from 'Adam' to 'SGD', which a resume cannot apply")
    # Another architecture: refused naming the checkpoint's first complaint and the changed key.
    line = assert_user_error(run_tool_in_process("train.py", "--config_file", config_yaml, "--resume", run,
                                                 "SOLVER.MAX_EPOCHS", 2, "MODEL.NAME", "resnet34"),
                             f"{os.path.join(run, 'checkpoint_1.pt')}: does not fit this configuration (Missing "
                             "key(s) in state_dict: \"base.layer1.2.conv1.weight\" and ",
                             "changed since the run: MODEL.NAME 'resnet18' -> 'resnet34'")
    assert "Error(s) in loading" not in line
    with open(config_yaml, "rb") as handle:
        assert handle.read() == config_before

    # A config file whose OUTPUT_DIR names another folder: the resume still writes into its own.
    elsewhere = tmp_path / "elsewhere"
    other_config = write_config(_cfg(root, elsewhere), tmp_path / "other.yml")
    code, out, err = run_tool_in_process("train.py", "--config_file", other_config, "--resume", run,
                                         "SOLVER.MAX_EPOCHS", 2, "SOLVER.BASE_LR", 1e-4, "SOLVER.STEPS", "[1]",
                                         "SOLVER.SEED", 7)
    assert code == 0, err[-3000:]
    assert not elsewhere.exists()
    assert ("resuming with 4 changed key(s), applied from the resumed epoch on: SOLVER.BASE_LR 0.00035 -> 0.0001, "
            "SOLVER.MAX_EPOCHS 1 -> 2, SOLVER.SEED 0 -> 7, SOLVER.STEPS [5] -> [1]") in out
    assert ("applied over the checkpoint's optimiser and schedule: SOLVER.BASE_LR 0.00035 -> 0.0001, SOLVER.STEPS "
            "[5] -> [1]; learning rate now 1e-05") in out
    checkpoint = torch.load(os.path.join(run, "checkpoint_2.pt"), weights_only=True)
    assert checkpoint["scheduler"]["milestones"] == [1]
    assert checkpoint["scheduler"]["base_lrs"] == pytest.approx([1e-4, 1e-4])
    assert [group["lr"] for group in checkpoint["optimizer"]["param_groups"]] == pytest.approx([1e-5, 1e-5])
    with open(config_yaml) as handle:
        written = handle.read()
    assert "BASE_LR: 0.0001" in written and "MAX_EPOCHS: 2" in written


def test_the_lock_is_exclusive_and_a_dead_holders_lock_is_taken_over(tmp_path, monkeypatch):
    held = RunFolderLock(str(tmp_path / "run"))
    try:
        with pytest.raises(UserError, match=rf"is in use by another run: pid {os.getpid()} on host"):
            RunFolderLock(str(tmp_path / "run"))
    finally:
        held.release()
    assert not os.path.exists(tmp_path / "run" / LOCK_NAME)

    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = {"pid": gone.pid, "host": socket.gethostname(), "started": "yesterday", "command": "python train.py"}
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(stale))
    lock = RunFolderLock(str(tmp_path / "run"))
    assert lock.taken_over_from == stale
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()

    other_host = dict(stale, host="another-host")
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(other_host))
    with pytest.raises(UserError, match="which cannot be checked from this host .* If that run has ended, delete"):
        RunFolderLock(str(tmp_path / "run"))

    # A file system without flock: the pid says whether the holder lives.
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(run_folder.fcntl, "flock", no_flock)
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(dict(stale, pid=os.getppid())))
    with pytest.raises(UserError, match=rf"is in use by another run: pid {os.getppid()} on host"):
        RunFolderLock(str(tmp_path / "run"))
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(stale))
    lock = RunFolderLock(str(tmp_path / "run"))
    assert lock.taken_over_from == stale
    lock.release()


def test_non_finite_weights_are_never_saved_nor_called_good(tmp_path):
    model = torch.nn.Linear(2, 2)
    torch.save({"model": model.state_dict()}, tmp_path / "checkpoint_1.pt")
    bad = model.state_dict()
    bad["weight"][0, 0] = float("nan")
    torch.save({"model": bad}, tmp_path / "checkpoint_2.pt")
    assert newest_good_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint_1.pt")

    saver = _CheckedSaver(str(tmp_path), require_empty=False, atomic=True)
    with pytest.raises(NonFiniteWeightsError, match=r"weights became NaN or infinite \(weight\).*checkpoint_3.pt "
                                                    "was not written"):
        saver({"model": bad}, "checkpoint_3.pt")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_1.pt", "checkpoint_2.pt"]
