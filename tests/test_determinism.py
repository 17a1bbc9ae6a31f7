"""SOLVER.SEED makes CPU training repeatable: the same losses, iteration by iteration."""
import os

import pytest
import torch

from tool_runs import train_and_read_losses

pytestmark = pytest.mark.slow


def _run(run_cfg, tmp_path, name):
    cfg = run_cfg("SOLVER.SEED", 7, "SOLVER.MAX_EPOCHS", 2, "SOLVER.ITERS_PER_EPOCH", 5,
                  "SOLVER.IMS_PER_BATCH", 8, "SOLVER.CHECKPOINT_PERIOD", 0, "SOLVER.STEPS", [1],
                  "DATALOADER.NUM_WORKERS", 1, "OUTPUT_DIR", str(tmp_path / name))
    cfg.freeze()
    losses, _ = train_and_read_losses(cfg)
    return losses, torch.load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), weights_only=True)


def test_same_seed_same_losses_over_two_epochs(run_cfg, tmp_path):
    # two epochs: the second one's sampler order, worker seeds and main-process reseeding matter too
    first, first_weights = _run(run_cfg, tmp_path, "a")
    second, second_weights = _run(run_cfg, tmp_path, "b")
    assert len(first) == 10 and first[0].startswith("iteration 1: id ")
    assert first == second
    for key in first_weights:
        assert torch.equal(first_weights[key], second_weights[key]), key
