"""Optimisers of the re-ID model and of the center-loss centers (BoT's recipe)."""
import torch

OPTIMIZERS = {
    "Adam": lambda groups, cfg: torch.optim.Adam(groups, lr=cfg.SOLVER.BASE_LR),
    "AdamW": lambda groups, cfg: torch.optim.AdamW(groups, lr=cfg.SOLVER.BASE_LR),
    "SGD": lambda groups, cfg: torch.optim.SGD(groups, lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM),
}


def make_optimizer(cfg, model):
    """SOLVER.OPTIMIZER_NAME over the trainable parameters.

    Weights get BASE_LR and WEIGHT_DECAY; biases BASE_LR x BIAS_LR_FACTOR and
    WEIGHT_DECAY_BIAS. BoT puts every parameter in its own group with these
    values; two groups give the same update with fewer groups to iterate.
    """
    solver = cfg.SOLVER
    weights, biases = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (biases if name.endswith("bias") else weights).append(param)
    groups = [
        {"params": weights, "lr": solver.BASE_LR, "weight_decay": solver.WEIGHT_DECAY},
        {"params": biases, "lr": solver.BASE_LR * solver.BIAS_LR_FACTOR,
         "weight_decay": solver.WEIGHT_DECAY_BIAS},
    ]
    return OPTIMIZERS[solver.OPTIMIZER_NAME]([group for group in groups if group["params"]], cfg)


def make_center_optimizer(cfg, center_criterion):
    """Plain SGD on the centers at SOLVER.CENTER_LR."""
    return torch.optim.SGD(center_criterion.parameters(), lr=cfg.SOLVER.CENTER_LR)
