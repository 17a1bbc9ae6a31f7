"""SOLVER.SEED makes CPU training repeatable: the same losses, iteration by iteration."""
import os

import torch

from tool_runs import train_and_read_losses


def _run(run_cfg, tmp_path, name, seed, epochs, iterations):
    cfg = run_cfg("SOLVER.SEED", seed, "SOLVER.MAX_EPOCHS", epochs, "SOLVER.ITERS_PER_EPOCH", iterations,
                  "SOLVER.IMS_PER_BATCH", 8, "SOLVER.CHECKPOINT_PERIOD", 0, "SOLVER.STEPS", [1],
                  "DATALOADER.NUM_WORKERS", 2, "OUTPUT_DIR", str(tmp_path / name))
    cfg.freeze()
    losses, _ = train_and_read_losses(cfg)
    return losses, torch.load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), weights_only=True)


def test_same_seed_same_losses_for_20_iterations(run_cfg, tmp_path):
    # two epochs: the second one's sampler order, worker seeds and main-process reseeding matter too
    first, first_weights = _run(run_cfg, tmp_path, "a", seed=7, epochs=2, iterations=10)
    second, second_weights = _run(run_cfg, tmp_path, "b", seed=7, epochs=2, iterations=10)
    assert len(first) == 20 and first[0].startswith("iteration 1: id ")
    assert first == second
    for key in first_weights:
        assert torch.equal(first_weights[key], second_weights[key]), key

    other, _ = _run(run_cfg, tmp_path, "c", seed=8, epochs=1, iterations=1)
    assert other != first[:1]
