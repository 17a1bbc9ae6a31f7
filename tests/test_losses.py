"""The baseline's losses against values computed by hand."""
import math

import pytest
import torch

from config import get_default_cfg
from layers import make_loss
from layers.center_loss import CenterLoss
from layers.cross_entropy_label_smooth import CrossEntropyLabelSmooth
from layers.triplet_loss import TripletLoss

# Two samples, three classes. Sample 0: logits (1, 2, 3), label 2; its
# log-softmax is (-2.4076, -1.4076, -0.4076). Sample 1: logits (0, 0, 0),
# label 0; every log-probability is -ln 3.
LOGITS = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
LABELS = torch.tensor([2, 0])
LOG_SUM_EXP_0 = 3.0 + math.log(1.0 + math.exp(-1.0) + math.exp(-2.0))


def test_cross_entropy_with_label_smoothing_matches_hand_value():
    # Smoothed target of sample 0: 0.9 + 0.1/3 on class 2, 0.1/3 on the others.
    log_probs = [x - LOG_SUM_EXP_0 for x in (1.0, 2.0, 3.0)]
    sample0 = -(0.9 + 0.1 / 3) * log_probs[2] - (0.1 / 3) * (log_probs[0] + log_probs[1])
    sample1 = math.log(3.0)  # a uniform prediction costs ln 3 against any target that sums to 1
    expected = (sample0 + sample1) / 2
    assert expected == pytest.approx(0.8031091265562451, abs=1e-12)
    assert CrossEntropyLabelSmooth(0.1)(LOGITS, LABELS).item() == pytest.approx(expected, abs=1e-6)


def test_cross_entropy_without_smoothing_is_plain_cross_entropy():
    expected = ((LOG_SUM_EXP_0 - 3.0) + math.log(3.0)) / 2
    assert expected == pytest.approx(0.7531091265562452, abs=1e-12)
    assert CrossEntropyLabelSmooth(0.0)(LOGITS, LABELS).item() == pytest.approx(expected, abs=1e-6)


# Four points in 2-D: 0 and 1 share identity 0, 2 and 3 share identity 1.
# Distances: d01 = 3, d02 = 4, d03 = sqrt(52) = 7.21, d12 = 5, d13 = 5, d23 = 6.
# Hardest positive / negative per anchor: 0: (3, 4), 1: (3, 5), 2: (6, 4), 3: (6, 5),
# so d_ap - d_an = -1, -2, 2, 1.
POINTS = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [6.0, 4.0]])
POINT_LABELS = torch.tensor([0, 0, 1, 1])


def test_batch_hard_triplet_with_margin():
    # max(0, gap + 0.3) = 0, 0, 2.3, 1.3 -> mean 0.9
    loss = TripletLoss(margin=0.3)(POINTS, POINT_LABELS)
    assert loss.item() == pytest.approx(0.9, abs=1e-5)


def test_batch_hard_triplet_with_soft_margin():
    expected = sum(math.log1p(math.exp(gap)) for gap in (-1.0, -2.0, 2.0, 1.0)) / 4
    assert expected == pytest.approx(0.9700948492805976, abs=1e-12)
    loss = TripletLoss(soft_margin=True)(POINTS, POINT_LABELS)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_triplet_gradient_is_finite_at_zero_self_distance():
    points = POINTS.clone().requires_grad_(True)
    TripletLoss(margin=0.3)(points, POINT_LABELS).backward()
    assert torch.isfinite(points.grad).all()
    # Anchors 2 and 3 violate the margin, so the loss moves points.
    assert points.grad.abs().sum() > 0


def test_triplet_anchor_without_negative_adds_nothing():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert TripletLoss(margin=0.3)(points, torch.tensor([5, 5])).item() == 0.0


def test_center_loss_on_known_centers():
    criterion = CenterLoss(num_classes=2, feat_dim=2)
    with torch.no_grad():
        criterion.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    features = torch.tensor([[1.0, 0.0], [1.0, 3.0], [2.0, 2.0]])
    # squared distances to own centers: 1, 4, 2 -> mean 7/3
    loss = criterion(features, torch.tensor([0, 1, 1]))
    assert loss.item() == pytest.approx(7.0 / 3.0, abs=1e-6)
    loss.backward()
    # d/dc0 of (1/3)||x0 - c0||^2 = -(2/3)(x0 - c0)
    assert torch.allclose(criterion.centers.grad[0], torch.tensor([-2.0 / 3.0, 0.0]))


def _cfg(**solver_and_model):
    cfg = get_default_cfg()
    cfg.MODEL.NAME = "resnet18"
    for key, value in solver_and_model.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return cfg


@pytest.mark.parametrize("loss_type, names", [
    ("triplet", ["id", "triplet"]),
    ("center", ["id", "center"]),
    ("triplet_center", ["id", "triplet", "center"]),
    ("none", ["id"]),
])
def test_reid_loss_terms_per_metric_loss_type(loss_type, names):
    torch.manual_seed(0)
    reid_loss = make_loss(_cfg(MODEL__METRIC_LOSS_TYPE=loss_type), num_classes=3)
    outputs = {"cls_score": LOGITS, "feat": torch.randn(2, 512), "global_feat": torch.randn(2, 512)}
    losses = reid_loss(outputs, LABELS)
    assert list(losses) == names
    assert losses["id"].item() == pytest.approx(0.8031091265562451, abs=1e-6)
    if "center" in names:
        assert reid_loss.center_criterion.centers.shape == (3, 512)
    else:
        assert reid_loss.center_criterion is None


def test_reid_loss_weights_the_center_term_and_follows_label_smoothing_switch():
    torch.manual_seed(0)
    reid_loss = make_loss(_cfg(MODEL__METRIC_LOSS_TYPE="center", MODEL__IF_LABELSMOOTH="off",
                               SOLVER__CENTER_LOSS_WEIGHT=0.25), num_classes=3)
    feat = torch.randn(2, 512)
    losses = reid_loss({"cls_score": LOGITS, "feat": feat}, LABELS)
    raw_center = reid_loss.center_criterion(feat, LABELS)
    assert losses["center"].item() == pytest.approx(0.25 * raw_center.item(), rel=1e-6)
    assert losses["id"].item() == pytest.approx(0.7531091265562452, abs=1e-6)


def test_zero_center_weight_removes_the_centers():
    reid_loss = make_loss(_cfg(SOLVER__CENTER_LOSS_WEIGHT=0.0), num_classes=3)
    assert reid_loss.center_criterion is None
