"""BoT's schedule and optimiser groups."""
import warnings

import pytest
import torch
from torch import nn

from config import get_default_cfg
from solver import WarmupMultiStepLR, make_center_optimizer, make_optimizer

# BASE_LR 3.5e-4, warm-up from 0.1x over 10 epochs, x0.1 at 40 and 70.
EXPECTED_LR = {0: 3.5e-5, 5: 1.925e-4, 10: 3.5e-4, 39: 3.5e-4, 40: 3.5e-5, 69: 3.5e-5, 70: 3.5e-6}


def _small_model():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2, bias=False))
    model[1].bias.requires_grad_(False)
    return model


def test_warmup_multistep_values_per_epoch_without_warnings():
    cfg = get_default_cfg()
    model = _small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer = make_optimizer(cfg, model)
        scheduler = WarmupMultiStepLR(optimizer, cfg.SOLVER.STEPS, cfg.SOLVER.GAMMA, cfg.SOLVER.WARMUP_FACTOR,
                                      cfg.SOLVER.WARMUP_EPOCHS, cfg.SOLVER.WARMUP_METHOD)
        seen = {}
        for epoch in range(71):
            seen[epoch] = scheduler.get_last_lr()[0]
            assert optimizer.param_groups[0]["lr"] == seen[epoch]
            optimizer.step()
            scheduler.step()
    for epoch, lr in EXPECTED_LR.items():
        assert seen[epoch] == pytest.approx(lr, rel=1e-9), epoch


def test_constant_warmup():
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    scheduler = WarmupMultiStepLR(optimizer, [3], gamma=0.5, warmup_factor=0.2, warmup_iters=2,
                                  warmup_method="constant")
    seen = []
    for _ in range(5):
        seen.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.2, 0.2, 1.0, 0.5, 0.5])


def test_bias_groups_get_their_lr_factor_and_decay_and_frozen_params_are_left_out():
    cfg = get_default_cfg()
    cfg.SOLVER.BIAS_LR_FACTOR = 2.0
    cfg.SOLVER.WEIGHT_DECAY = 5e-4
    cfg.SOLVER.WEIGHT_DECAY_BIAS = 0.0
    model = _small_model()
    optimizer = make_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.Adam)
    weights, biases = optimizer.param_groups
    assert {id(p) for p in weights["params"]} == {id(model[0].weight), id(model[1].weight), id(model[2].weight)}
    assert {id(p) for p in biases["params"]} == {id(model[0].bias)}
    assert (weights["lr"], weights["weight_decay"]) == (3.5e-4, 5e-4)
    assert (biases["lr"], biases["weight_decay"]) == (pytest.approx(7e-4), 0.0)


def test_sgd_uses_momentum_and_centers_get_their_own_sgd():
    cfg = get_default_cfg()
    cfg.SOLVER.OPTIMIZER_NAME = "SGD"
    optimizer = make_optimizer(cfg, _small_model())
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.9
    centers = nn.Linear(2, 3, bias=False)
    center_optimizer = make_center_optimizer(cfg, centers)
    assert center_optimizer.param_groups[0]["lr"] == 0.5
    assert center_optimizer.param_groups[0]["params"][0] is centers.weight
