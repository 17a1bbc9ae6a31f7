"""torchrun with 2 CPU processes (gloo): one set of files, and the metrics of a single-process test."""
import json
import os
import subprocess
import sys

import pytest
import torch

from engine.tester import do_test
from tool_runs import ONE_THREAD_ENV, REPO, TIMEOUT, one_thread, write_config

pytestmark = pytest.mark.slow


def test_two_processes_train_and_evaluate_like_one(run_cfg, tmp_path):
    cfg = run_cfg("SOLVER.MAX_EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 2, "SOLVER.CHECKPOINT_PERIOD", 1,
                  "SOLVER.LOG_PERIOD", 1)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               os.path.join(REPO, "tools", "train.py"), "--config_file", write_config(cfg, tmp_path / "ddp.yml")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT, env=ONE_THREAD_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    out = cfg.OUTPUT_DIR
    files = sorted(os.listdir(out))
    events = [name for name in files if name.startswith("events.out.tfevents")]
    assert len(events) == 1, files
    assert set(files) - set(events) == {"checkpoint_1.pt", "cmc.png", "config.yaml", "log.txt", "metrics.json",
                                        "model_final.pth"}
    with open(os.path.join(out, "log.txt")) as handle:
        log = handle.read()
    assert "2 process(es)" in log
    # rank 1 logs nothing: each line once, in the file and on the console
    assert log.count("Epoch[1] Iteration[1/2]") == 1
    assert result.stdout.count("Epoch[1] Iteration[1/2]") == 1

    checkpoint = torch.load(os.path.join(out, "checkpoint_1.pt"), weights_only=True)
    final = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert not [key for key in list(checkpoint["model"]) + list(final) if key.startswith("module.")]
    with open(os.path.join(out, "metrics.json")) as handle:
        metrics = json.load(handle)
    assert (metrics["num_query"], metrics["num_gallery"]) == (40, 264)

    # Each process evaluated its shard of the test set; gathered, they give the metrics of
    # the saved weights evaluated in one process (no image lost or counted twice).
    test_cfg = run_cfg("TEST.WEIGHT", os.path.join(out, "model_final.pth"), "OUTPUT_DIR", str(tmp_path / "test"))
    test_cfg.freeze()
    with one_thread():
        single = do_test(test_cfg)
    for name in ("mAP", "rank1", "rank5", "rank10", "mINP"):
        assert abs(metrics[name] - single[name]) < 1e-6, (name, metrics[name], single[name])
