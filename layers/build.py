"""make_loss(cfg, num_classes): the baseline's ReIDLoss per MODEL.METRIC_LOSS_TYPE."""
import logging

from config import ConfigError
from layers.center_loss import CenterLoss
from layers.cross_entropy_label_smooth import CrossEntropyLabelSmooth
from layers.reid_loss import ReIDLoss
from layers.triplet_loss import TripletLoss

logger = logging.getLogger("jifd.train")

# Width of the pooled feature of each MODEL.NAME: the centers' size.
FEATURE_DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}

LABEL_SMOOTHING = 0.1

METRIC_TERMS = {
    "triplet": ("triplet",),
    "center": ("center",),
    "triplet_center": ("triplet", "center"),
    "none": (),
}


def make_loss(cfg, num_classes, feat_dim=None):
    """``feat_dim`` defaults to the width of MODEL.NAME's feature."""
    loss_type = cfg.MODEL.METRIC_LOSS_TYPE
    if loss_type not in METRIC_TERMS:
        raise ConfigError(f"MODEL.METRIC_LOSS_TYPE = {loss_type!r} is not one of {', '.join(METRIC_TERMS)}")
    terms = METRIC_TERMS[loss_type]
    if cfg.DATALOADER.SAMPLER == "softmax" and terms:
        # As in reid-strong-baseline: random batches hold too few images per identity for the metric losses.
        logger.info("DATALOADER.SAMPLER softmax: the ID loss alone (MODEL.METRIC_LOSS_TYPE %s is not used)", loss_type)
        terms = ()
    epsilon = LABEL_SMOOTHING if cfg.MODEL.IF_LABELSMOOTH == "on" else 0.0
    triplet = TripletLoss(cfg.SOLVER.MARGIN, cfg.SOLVER.SOFT_MARGIN) if "triplet" in terms else None
    center = None
    # A weight of 0 removes the term, its centers and their optimiser.
    if "center" in terms and cfg.SOLVER.CENTER_LOSS_WEIGHT:
        center = CenterLoss(num_classes, feat_dim or FEATURE_DIMS[cfg.MODEL.NAME])
    return ReIDLoss(CrossEntropyLabelSmooth(epsilon), triplet, center, cfg.SOLVER.CENTER_LOSS_WEIGHT)
