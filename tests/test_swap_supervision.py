"""How swaps are made and how they reach the re-ID model: value tests on hand-built cases.

- img_rec / img_cyc / img_code / img_dom with a disentangler whose codes are
  plain channels, so that every term has a known value and a swap must carry
  its partner's domain;
- the sign of img_mi;
- BatchNorm running statistics are untouched by the swap pass;
- the teacher: soft labels, what it labels, no gradient, its moving average.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from config import get_default_cfg
from engine.image_level import ImageLevelExtension, dann_ramp, linear_ramp
from layers import make_loss
from layers.image_disentangle_loss import ImageDisentangleLoss
from layers.swap_reid_loss import soft_label_loss
from modeling.frozen_statistics import frozen_batchnorm_statistics
from modeling.reid_teacher import ReIDTeacher


# Small tensors: one torch thread for the whole module (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _ChannelCodes(nn.Module):
    """A disentangler whose ID code is channel 0 and domain code channel 1 of a 2 x 1 x 1 image."""

    def __init__(self):
        super().__init__()
        self.domain_encoder = _SecondChannel()
        # Domain 1 when s > 0: logits (-2 s, 2 s).
        self.domain_classifier = nn.Linear(1, 2)
        with torch.no_grad():
            self.domain_classifier.weight.copy_(torch.tensor([[-2.0], [2.0]]))
            self.domain_classifier.bias.zero_()
        self.statistics_net = _ProductStatistics()

    def encode_id(self, x):
        return x[:, :1]

    def encode_domain(self, x):
        return self.domain_encoder(x)

    def decode(self, c, s):
        return torch.cat([c, s.view(-1, 1, 1, 1)], dim=1)

    @staticmethod
    def pool_id(c):
        return c.flatten(1)


class _SecondChannel(nn.Module):
    def forward(self, x):
        return x[:, 1:2].flatten(1)


class _ProductStatistics(nn.Module):
    def forward(self, c, s):
        return (c * s).sum(dim=1)


def _channel_batch():
    identity = torch.tensor([0.3, -0.7, 0.5, 0.9])
    domains = torch.tensor([0, 0, 1, 1])
    x = torch.stack([identity, 2.0 * domains - 1.0], dim=1).view(4, 2, 1, 1)
    return x, domains


def test_swaps_carry_the_partners_domain_and_every_term_has_its_value():
    x, domains = _channel_batch()
    partner = torch.tensor([2, 3, 1, 0])
    loss = ImageDisentangleLoss(w_rec=1.0, w_cyc=1.0, w_code=1.0, w_dom=1.0)
    losses, result = loss(_ChannelCodes(), x, domains, partner, shuffle=None)
    # x_ij = Dec(c_i, s_j): i's identity channel, j's domain channel.
    torch.testing.assert_close(result.swapped[:, 0], x[:, 0])
    torch.testing.assert_close(result.swapped[:, 1], x[partner, 1])
    assert losses["img_rec"].item() == pytest.approx(0.0, abs=1e-7)
    # Dec(E_id(x_ij), s_i) = x_i, and the swap's codes are (c_i, s_j): both exact.
    assert losses["img_cyc"].item() == pytest.approx(0.0, abs=1e-7)
    assert losses["img_code"].item() == pytest.approx(0.0, abs=1e-7)
    # C_dom reads d_i from s_i and d_j from the swap, with a logit gap of 4 each: 2 x log(1 + e^-4).
    assert losses["img_dom"].item() == pytest.approx(2 * math.log1p(math.exp(-4.0)), rel=1e-5)


def test_a_swap_judged_against_its_own_domain_would_cost_the_full_margin():
    """The same case with the partner's label replaced by the image's own: what img_dom must not be."""
    x, domains = _channel_batch()
    partner = torch.tensor([2, 3, 1, 0])
    net = _ChannelCodes()
    _, result = ImageDisentangleLoss(w_dom=1.0)(net, x, domains, partner, shuffle=None)
    wrong = F.cross_entropy(net.domain_classifier(net.encode_domain(result.swapped)), domains)
    right = F.cross_entropy(net.domain_classifier(net.encode_domain(result.swapped)), domains[partner])
    assert wrong.item() == pytest.approx(math.log1p(math.exp(4.0)), rel=1e-5)
    assert right.item() == pytest.approx(math.log1p(math.exp(-4.0)), rel=1e-5)


def test_img_mi_is_the_mine_bound_with_a_plus_sign():
    x, domains = _channel_batch()
    shuffle = torch.tensor([1, 0, 3, 2])
    losses, result = ImageDisentangleLoss(w_mi=0.5)(_ChannelCodes(), x, domains, torch.tensor([2, 3, 1, 0]),
                                                     shuffle=shuffle)
    c, s = x[:, 0, 0, 0], x[:, 1, 0, 0]
    joint = (c * s).mean()
    marginal = c * s[shuffle]
    bound = joint - (torch.logsumexp(marginal, dim=0) - math.log(4))
    # The encoders minimise the bound: it enters the loss as +w_mi x bound.
    assert losses["img_mi"].item() == pytest.approx(0.5 * bound.item(), abs=1e-6)
    torch.testing.assert_close(result.domain_code, s.view(4, 1))


# ---------------------------------------------------------------------------
# BatchNorm statistics
# ---------------------------------------------------------------------------

def test_frozen_statistics_keep_running_buffers_and_gradients():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2),
                        nn.BatchNorm1d(2, momentum=None))
    net.train()
    before = {name: value.clone() for name, value in net.state_dict().items()}
    x = torch.randn(5, 3, 8, 8, requires_grad=True)
    with frozen_batchnorm_statistics(net):
        out = net(x)
    out.pow(2).sum().backward()
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert x.grad.abs().sum() > 0
    # Outside the block the statistics move again.
    net(x)
    assert not torch.equal(net[1].running_mean, before["1.running_mean"])
    assert net[4].num_batches_tracked.item() == 1


class _BNReID(nn.Module):
    """A re-ID stand-in with BatchNorm: conv, BN, pooling; the Baseline's training dict."""

    def __init__(self, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(8, num_classes)

    def forward(self, x, domains=None):
        feat = self.body(x)
        return {"cls_score": self.classifier(feat), "feat": feat, "global_feat": feat}


NUM_IDS, SIZE = 4, 16


def _cfg(**image):
    cfg = get_default_cfg()
    cfg.INPUT.SIZE_TRAIN = [SIZE, SIZE]
    cfg.MODEL.METRIC_LOSS_TYPE = "triplet"
    image_cfg = cfg.DISENTANGLE.IMAGE
    image_cfg.SIZE = [SIZE, SIZE]
    image_cfg.BASE_CHANNELS, image_cfg.ID_DIM, image_cfg.DOMAIN_DIM = 4, 8, 4
    image_cfg.MLP_DIM = image_cfg.MINE_DIM = image_cfg.ADV_HIDDEN_DIM = 8
    for key, value in image.items():
        image_cfg[key] = value
    return cfg


def _extension(model, **image):
    torch.manual_seed(0)
    cfg = _cfg(**image)
    return ImageLevelExtension(cfg, 2, torch.device("cpu"), model, make_loss(cfg, NUM_IDS, feat_dim=8),
                               total_iters=10)


def _batch():
    generator = torch.Generator().manual_seed(3)
    pids = torch.arange(NUM_IDS).repeat_interleave(4)
    return {"images": torch.randn(len(pids), 3, SIZE, SIZE, generator=generator), "pids": pids,
            "domains": (pids >= NUM_IDS // 2).long()}


@pytest.mark.parametrize("swap_statistics", ["frozen", "update"])
def test_swap_pass_leaves_the_running_statistics_to_real_images(swap_statistics):
    torch.manual_seed(0)
    model = _BNReID(NUM_IDS)
    real_only = _BNReID(NUM_IDS)
    real_only.load_state_dict(model.state_dict())
    ext = _extension(model, SWAP_BN_STATS=swap_statistics)
    batch = _batch()
    reid_loss = make_loss(ext.cfg, NUM_IDS, feat_dim=8)
    losses = ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    assert "gen_id" in losses
    real_only(batch["images"])
    same = all(torch.equal(a, b) for a, b in zip(model.buffers(), real_only.buffers()))
    assert same == (swap_statistics == "frozen")


# ---------------------------------------------------------------------------
# The teacher
# ---------------------------------------------------------------------------

def test_soft_label_loss_by_hand():
    student = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    teacher = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    # KL(t || s) = 0.25 log(0.25 / 0.5) + 0.5 log(0.5 / 0.25) + 0.25 log(1) = 0.25 log 2
    assert soft_label_loss(student, teacher).item() == pytest.approx(0.25 * math.log(2), abs=1e-6)
    assert soft_label_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


class _FixedLogits(nn.Module):
    """A stand-in network: the same logits for every image; records what it was given."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.weight = nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, domains=None):
        self.seen.append(x.detach().clone())
        feat = x.flatten(1)[:, :8] + self.weight
        return {"cls_score": self.logits.expand(len(x), -1) + self.weight, "feat": feat, "global_feat": feat}


@pytest.mark.parametrize("teacher_input", ["real", "swap"])
def test_gen_id_is_the_kl_to_the_teachers_soft_labels_on_what_it_labels(teacher_input):
    student_logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]]))
    teacher_logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    model = _FixedLogits(student_logits)
    ext = _extension(model, W_GEN=2.0, GEN_FRACTION=0.5, TEACHER_INPUT=teacher_input, W_GEN_ID=0.0)
    ext.teacher.net = _FixedLogits(teacher_logits)
    batch = _batch()
    reid_loss = make_loss(ext.cfg, NUM_IDS, feat_dim=8)
    losses = ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    expected = sum(t * math.log(t / s) for t, s in zip((0.1, 0.2, 0.3, 0.4), (0.4, 0.3, 0.2, 0.1)))
    assert losses["gen_id"].item() == pytest.approx(2.0 * expected, rel=1e-5)
    labelled = ext.teacher.net.seen[-1]
    kept = torch.tensor([0, 1, 4, 5, 8, 9, 12, 13])
    if teacher_input == "real":
        torch.testing.assert_close(labelled, batch["images"][kept])
    else:
        # The swaps the live model sees.
        torch.testing.assert_close(labelled, model.seen[-1])


def test_without_a_teacher_gen_id_is_the_hard_label_id_loss():
    model = _FixedLogits(torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]])))
    ext = _extension(model, TEACHER="none", W_GEN=1.0, GEN_FRACTION=1.0)
    assert ext.teacher is None
    batch = _batch()
    reid_loss = make_loss(ext.cfg, NUM_IDS, feat_dim=8)
    losses = ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    expected = reid_loss.id_criterion(torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]])).expand(16, -1),
                                      batch["pids"])
    assert losses["gen_id"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_teacher_gets_no_gradient_and_follows_by_its_moving_average():
    torch.manual_seed(0)
    model = _BNReID(NUM_IDS)
    ext = _extension(model, W_GEN_ID=1.0, TEACHER_MOMENTUM=0.999)
    assert all(not p.requires_grad for p in ext.teacher.parameters())
    batch = _batch()
    reid_loss = make_loss(ext.cfg, NUM_IDS, feat_dim=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    teacher_before = [p.detach().clone() for p in ext.teacher.parameters()]
    outputs = model(batch["images"])
    losses = dict(reid_loss(outputs, batch["pids"]))
    losses.update(ext.compute_losses(batch, outputs, model, reid_loss))
    assert "img_id" in losses
    sum(losses.values()).backward()
    assert all(p.grad is None for p in ext.teacher.parameters())
    optimizer.step()
    ext.step(torch.amp.GradScaler("cpu", enabled=False))
    # First update: momentum min(0.999, (1 + 1) / (10 + 1)) = 2 / 11.
    momentum = 2.0 / 11.0
    for old, new, live in zip(teacher_before, ext.teacher.parameters(), model.parameters()):
        torch.testing.assert_close(new, momentum * old + (1 - momentum) * live.detach())
    for mine, live in zip(ext.teacher.buffers(), model.buffers()):
        assert torch.equal(mine, live)


def test_a_checkpoint_teacher_never_moves(tmp_path):
    torch.manual_seed(0)
    model = _BNReID(NUM_IDS)
    teacher = ReIDTeacher(model, momentum=1.0)
    before = [p.detach().clone() for p in teacher.parameters()]
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    teacher.update(model, step=5)
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_ramps():
    assert [linear_ramp(step, 4) for step in (0, 2, 4, 8)] == [0.0, 0.5, 1.0, 1.0]
    assert linear_ramp(0, 0) == 1.0
    assert dann_ramp(0.0) == 0.0
    # 2 / (1 + e^-10 x 0.5) - 1 at half-way.
    assert dann_ramp(0.5, 2.0) == pytest.approx(2.0 * (2 / (1 + math.exp(-5)) - 1))
    assert dann_ramp(1.0) == pytest.approx(1.0, abs=1e-4)


def test_swap_onto_real_adds_the_generators_domain_change_to_the_sharp_image():
    from modeling.image_disentangler import ImageDisentangler

    cfg = _cfg()
    net = ImageDisentangler(cfg, 2)
    mean = torch.tensor(cfg.INPUT.PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(cfg.INPUT.PIXEL_STD).view(1, 3, 1, 1)
    unit = torch.rand(2, 3, 2 * SIZE, 2 * SIZE) * 0.5 + 0.25
    images = (unit - mean) / std
    reconstructed = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    # No change of domain: the real image, every pixel.
    torch.testing.assert_close(net.swap_onto(images, reconstructed, reconstructed), images)
    # A swap 0.2 brighter in generator range ([-1, 1]) is 0.1 brighter in [0, 1], at the re-ID size.
    out = net.swap_onto(images, reconstructed + 0.2, reconstructed)
    torch.testing.assert_close(out * std + mean, unit + 0.1, atol=1e-5, rtol=0)
    # Clipped to the pixel range.
    bright = net.swap_onto(images, reconstructed + 2.0, reconstructed)
    torch.testing.assert_close(bright * std + mean, torch.ones_like(unit), atol=1e-5, rtol=0)


def test_swap_terms_are_reported_at_zero_before_their_ramp_starts():
    torch.manual_seed(0)
    model = _BNReID(NUM_IDS)
    ext = _extension(model, W_GEN_ID=1.0, GEN_RAMP_ITERS=4)
    batch = _batch()
    reid_loss = make_loss(ext.cfg, NUM_IDS, feat_dim=8)
    first = ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    # The same names as once the ramp has started, at 0, without a swap pass.
    assert {name: float(first[name]) for name in ("gen_id", "gen_triplet", "img_id")} == {
        "gen_id": 0.0, "gen_triplet": 0.0, "img_id": 0.0}
    ext.joint_steps = 2
    later = ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    assert set(later) == set(first) and later["gen_id"] > 0


class _ChannelCodesWithAdversary(_ChannelCodes):
    """The channel-code disentangler with a fixed linear C_adv on pooled c (one number)."""

    def __init__(self):
        super().__init__()
        self.adversarial_classifier = nn.Linear(1, 2)
        with torch.no_grad():
            self.adversarial_classifier.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.adversarial_classifier.bias.zero_()


def _adversary_gradient(adversary, scale):
    x, domains = _channel_batch()
    x.requires_grad_(True)
    loss = ImageDisentangleLoss(w_adv=1.0, adversary=adversary)
    loss.adversary_scale = scale
    net = _ChannelCodesWithAdversary()
    losses, _ = loss(net, x, domains, torch.tensor([2, 3, 1, 0]), shuffle=None)
    losses["img_adv"].backward()
    return losses["img_adv"], x.grad[:, 0, 0, 0], net


def test_reversal_hands_e_id_the_negative_of_c_advs_gradient():
    value, grad_c, net = _adversary_gradient("reversal", scale=0.5)
    x, domains = _channel_batch()
    c = x[:, 0, 0, 0].clone().requires_grad_(True)
    plain = F.cross_entropy(net.adversarial_classifier(c.view(4, 1)), domains)
    plain.backward()
    assert value.item() == pytest.approx(plain.item(), abs=1e-6)
    # E_id ascends what C_adv descends, scaled: remove the reversal and this sign flips.
    torch.testing.assert_close(grad_c, -0.5 * c.grad)
    assert all(p.grad is not None for p in net.adversarial_classifier.parameters())


def test_confusion_is_the_kl_from_uniform_and_leaves_c_adv_alone():
    value, grad_c, net = _adversary_gradient("confusion", scale=0.5)
    x, _ = _channel_batch()
    c = x[:, 0, 0, 0]
    # logits (c, -c): p = softmax; KL(uniform || p) = -mean(log p) - log 2, averaged over the batch.
    log_p = F.log_softmax(torch.stack([c, -c], dim=1), dim=1)
    expected = 0.5 * (-(log_p.mean(dim=1)) - math.log(2)).mean()
    assert value.item() == pytest.approx(expected.item(), abs=1e-6)
    # Pushing every prediction towards uniform pulls c towards 0, where logits (c, -c) tie.
    assert (torch.sign(grad_c) == torch.sign(c)).all()
    assert all(p.grad is None for p in net.adversarial_classifier.parameters())
