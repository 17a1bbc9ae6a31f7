"""kill -9 in the middle of an epoch, then --resume: the same final weights as a run never interrupted."""
import json
import os
import signal
import subprocess
import time

import pytest
import torch

from config import load_cfg
from engine.trainer import do_train
from tool_runs import finish, run_tool, start_tool, write_config
from utils.errors import UserError

pytestmark = pytest.mark.slow

EPOCHS, ITERATIONS = 3, 3


def _config(run_cfg, tmp_path, name):
    cfg = run_cfg("SOLVER.MAX_EPOCHS", EPOCHS, "SOLVER.ITERS_PER_EPOCH", ITERATIONS, "SOLVER.IMS_PER_BATCH", 16,
                  "SOLVER.STEPS", [2], "SOLVER.CHECKPOINT_PERIOD", 1, "SOLVER.EVAL_PERIOD", 0,
                  "SOLVER.LOG_PERIOD", 1, "OUTPUT_DIR", str(tmp_path / name))
    return write_config(cfg, tmp_path / f"{name}.yml"), cfg.OUTPUT_DIR


def _kill_in_epoch_2(config, out):
    """Start a run and kill -9 it once checkpoint_1.pt is written and epoch 2 has begun."""
    process = start_tool("train.py", "--config_file", config, stdout=subprocess.DEVNULL)
    log = os.path.join(out, "log.txt")
    deadline = time.time() + 600
    while time.time() < deadline:
        assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()}"
        if os.path.isfile(os.path.join(out, "checkpoint_1.pt")) and os.path.isfile(log):
            with open(log) as handle:
                if f"Epoch[2] Iteration[1/{ITERATIONS}]" in handle.read():
                    process.send_signal(signal.SIGKILL)
                    process.communicate()
                    return
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the run did not reach epoch 2 in time")


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(run_cfg, tmp_path):
    reference_config, reference_out = _config(run_cfg, tmp_path, "uninterrupted")
    reference = start_tool("train.py", "--config_file", reference_config)
    config, out = _config(run_cfg, tmp_path, "killed")
    _kill_in_epoch_2(config, out)
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    assert not os.path.exists(os.path.join(out, "checkpoint_2.pt"))

    # Faults a user may find after a crash: a checkpoint cut short by a copy, one saved by a run that
    # had diverged (NaN weights), and the temporary files an interrupted save leaves (ignite's and
    # atomic_io's, e.g. of model_final.pth). Resume must skip the checkpoints, loading checkpoint_1.pt,
    # and report the leftovers; the lock file of the killed run is taken over.
    with open(os.path.join(out, "checkpoint_1.pt"), "rb") as good, \
            open(os.path.join(out, "checkpoint_2.pt"), "wb") as cut:
        cut.write(good.read(1 << 20))
    diverged = torch.load(os.path.join(out, "checkpoint_1.pt"), weights_only=True)
    diverged["model"]["classifier.weight"][0, 0] = float("nan")
    torch.save(diverged, os.path.join(out, "checkpoint_3.pt"))
    for leftover in ("tmpab12cd_3", ".tmp_k2j4x9ab"):
        with open(os.path.join(out, leftover), "wb") as handle:
            handle.write(b"partial")
    assert os.path.isfile(os.path.join(out, "run.lock"))

    code, stdout, stderr = run_tool("train.py", "--config_file", config, "--resume", out)
    assert code == 0, stderr[-3000:]
    assert f"took over {os.path.join(out, 'run.lock')}: the run that held it (pid " in stdout
    assert (f"skipped {os.path.join(out, 'checkpoint_3.pt')}: {os.path.join(out, 'checkpoint_3.pt')} holds NaN or "
            "infinite values in model.classifier.weight: the run that wrote it had diverged") in stdout
    assert "skipped " + os.path.join(out, "checkpoint_2.pt") in stdout
    assert ".tmp_k2j4x9ab, tmpab12cd_3, left by a save that was interrupted" in stdout
    assert f"resumed from {os.path.join(out, 'checkpoint_1.pt')} at epoch 1" in stdout
    assert f"Epoch[2] Iteration[1/{ITERATIONS}]" in stdout and "Epoch[1]" not in stdout

    code, _, stderr = finish(reference)
    assert code == 0, stderr[-3000:]
    resumed = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    uninterrupted = torch.load(os.path.join(reference_out, "model_final.pth"), weights_only=True)
    assert resumed.keys() == uninterrupted.keys()
    for key in uninterrupted:
        torch.testing.assert_close(resumed[key], uninterrupted[key], rtol=1e-5, atol=1e-6, msg=key)
    # and the weights did change during the resumed epochs
    first = torch.load(os.path.join(out, "checkpoint_1.pt"), weights_only=True)["model"]
    assert not torch.equal(first["classifier.weight"], resumed["classifier.weight"])
    with open(os.path.join(out, "metrics.json")) as a, open(os.path.join(reference_out, "metrics.json")) as b:
        resumed_metrics, reference_metrics = json.load(a), json.load(b)
    for name in ("mAP", "rank1", "mINP"):
        assert abs(resumed_metrics[name] - reference_metrics[name]) < 1e-6
    # the cut checkpoint_2.pt was replaced by a complete one
    assert torch.load(os.path.join(out, "checkpoint_2.pt"), weights_only=True)["trainer"]["iteration"] == 2 * ITERATIONS

    reference_cfg = load_cfg(reference_config)
    with pytest.raises(UserError, match="nothing left to train; raise SOLVER.MAX_EPOCHS"):
        do_train(reference_cfg, resume=reference_out)
    with pytest.raises(UserError, match=f"already holds checkpoint_3.pt of an earlier run: continue that run "
                                        f"with --resume {reference_out}"):
        do_train(reference_cfg)
