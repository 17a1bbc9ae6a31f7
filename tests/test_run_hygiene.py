"""Runs keep their files clean: a test never overwrites a training run's results, files are readable by
collaborators (0644 under the usual umask), redirected output has no progress-bar frames, TensorBoard gets
ignite's scalars."""
import io
import json
import os
import stat
import subprocess

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import small_run_cfg
from engine.train_logging import TensorBoardWriter, flatten_numbers, show_progress_bar
from tiny_datasets import make_tree
from tool_runs import ONE_THREAD_ENV, TIMEOUT, run_tool_in_process, tool_command, write_config
from utils.atomic_io import atomic_write_text


def _modes(folder):
    """{relative path: permission bits} of every file under ``folder``."""
    found = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, folder)] = stat.S_IMODE(os.stat(path).st_mode)
    return found


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run folder, config file, console output): one epoch of 2 iterations, run as a user runs it under
    nohup (stdout and stderr to one file), progress bar switched on, umask 022."""
    tmp = tmp_path_factory.mktemp("hygiene")
    cfg = small_run_cfg(make_tree(str(tmp / "data")), tmp / "run", "SOLVER.IMS_PER_BATCH", 16,
                        "SOLVER.MAX_EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 2, "SOLVER.WARMUP_EPOCHS", 0,
                        "SOLVER.EVAL_PERIOD", 1, "SOLVER.LOG_PERIOD", 1, "SOLVER.PROGRESS_BAR", True)
    config = write_config(cfg, tmp / "run.yml")
    console = tmp / "nohup.out"
    with open(console, "w") as handle:
        result = subprocess.run(tool_command("train.py", "--config_file", config), stdout=handle,
                                stderr=subprocess.STDOUT, env=ONE_THREAD_ENV, timeout=TIMEOUT, umask=0o022)
    output = console.read_bytes().decode()  # read_text() would turn a "\r" into "\n"
    assert result.returncode == 0, output[-3000:]
    return cfg.OUTPUT_DIR, config, output


@pytest.mark.slow
def test_redirected_output_has_no_progress_bar_frames_and_an_epoch_line(trained):
    _, _, output = trained
    assert "\r" not in output and "Iteration: [" not in output
    lines = [line for line in output.splitlines() if "Epoch 1 done in" in line]
    assert len(lines) == 1 and ": loss " in lines[0] and ", acc " in lines[0], lines


@pytest.mark.slow
def test_per_iteration_debug_lines_are_opt_in(trained):
    out, _, _ = trained
    with open(os.path.join(out, "log.txt")) as handle:
        log = handle.read()
    assert "Epoch[1] Iteration[2/2]" in log
    assert " DEBUG: iteration " not in log


@pytest.mark.slow
def test_tensorboard_gets_smoothed_terms_lr_and_evaluation(trained):
    out, _, _ = trained
    events = EventAccumulator(out)
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "train/id", "train/triplet", "train/lr/group_0", "target/mAP",
            "target/rank1", "target/mINP"} <= tags, tags
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2]


@pytest.mark.slow
def test_test_tool_writes_beside_the_run_never_over_it_and_files_are_0644(trained):
    out, config, _ = trained
    weight = os.path.join(out, "model_final.pth")
    with open(os.path.join(out, "metrics.json"), "rb") as handle:
        training_metrics = handle.read()
    before = os.stat(os.path.join(out, "metrics.json")).st_mtime_ns

    result = subprocess.run(tool_command("test.py", "--config_file", config, "TEST.WEIGHT", weight),
                            capture_output=True, text=True, env=ONE_THREAD_ENV, timeout=TIMEOUT, umask=0o022)
    assert result.returncode == 0, result.stderr[-3000:]
    tested = os.path.join(out, "test_model_final")
    assert json.load(open(os.path.join(tested, "metrics.json")))["weight"] == weight
    assert os.path.isfile(os.path.join(tested, "cmc.png"))
    with open(os.path.join(out, "metrics.json"), "rb") as handle:
        assert handle.read() == training_metrics
    assert os.stat(os.path.join(out, "metrics.json")).st_mtime_ns == before

    modes = _modes(out)
    for name in ("metrics.json", "model_final.pth", "checkpoint_1.pt", "config.yaml", "log.txt", "cmc.png",
                 "test_model_final/metrics.json", "test_model_final/cmc.png"):
        assert name in modes, sorted(modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o644} == {}

    # Pointing OUTPUT_DIR at the run itself is refused before anything is written.
    code, _, err = run_tool_in_process("test.py", "--config_file", config, "TEST.WEIGHT", weight, "OUTPUT_DIR", out)
    assert code == 2 and "is a training run's folder (it holds config.yaml)" in err, err[-2000:]
    with open(os.path.join(out, "metrics.json"), "rb") as handle:
        assert handle.read() == training_metrics


def test_atomic_writes_respect_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_write_text(str(tmp_path / "a.json"), "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o640


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_bar_only_on_a_terminal_and_when_asked():
    cfg = small_run_cfg("", "")
    for asked in (True, False):
        cfg.SOLVER.PROGRESS_BAR = asked
        assert show_progress_bar(cfg, _Stream(tty=True)) is asked
        assert show_progress_bar(cfg, _Stream(tty=False)) is False


def test_evaluation_numbers_are_flattened_into_tags():
    metrics = {"mAP": 0.5, "cmc": [0.1, 0.2], "dataset": "opri", "diagnostics": {"gap": 2, "per": {"x": 0.25}}}
    assert flatten_numbers(metrics, "target") == {"target/mAP": 0.5, "target/diagnostics/gap": 2.0,
                                                  "target/diagnostics/per/x": 0.25}


def test_validation_numbers_and_diagnostics_get_their_own_tags(tmp_path):
    writer = TensorBoardWriter(str(tmp_path))
    writer.log_evaluation(3, {"mAP": 0.5, "rank1": 0.6, "num_query": 9, "unreadable_query": 0,
                                "validation": {"mAP": 0.7, "rank1": 0.8, "num_query": 4},
                                "diagnostics": {"domain_probe": 0.25}})
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"target/mAP", "target/rank1", "validation/mAP", "validation/rank1",
                                             "diagnostics/domain_probe"}
    assert [(event.step, event.value) for event in events.Scalars("validation/mAP")] == [(3, pytest.approx(0.7))]
