import importlib.util
import math
import pathlib
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from config import ConfigError, get_default_cfg
from data import ImageRecord
from engine.image_level import ImageLevelExtension, select_per_identity
from engine.runtime import DeviceSetup
from engine.train_step import NonFiniteLossError
from engine.visualization import pick_grid_sources
from layers import make_loss
from layers.image_disentangle_loss import (domain_confusion, domain_mmd, mine_lower_bound,
                                           mutual_information_penalty)
from modeling.gradient_reversal import GradientReversal, reverse_gradient
from modeling.domain_pairing import pair_across_domains
from modeling.image_disentangler import ImageDisentangler, MineStatistics
from utils.errors import UserError
from utils.linear_probe import linear_probe_accuracy
from utils.visualization import draw_swap_grid

SIZE, NUM_DOMAINS = 32, 2


# Small tensors: one torch thread for the whole module (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ALL_TERMS = {"img_rec", "img_cyc", "img_code", "img_dom", "img_adv", "img_mi", "gen_id", "gen_triplet"}


def _cfg(**image):
    cfg = get_default_cfg()
    cfg.INPUT.SIZE_TRAIN = [SIZE, SIZE]
    cfg.MODEL.METRIC_LOSS_TYPE = "triplet"
    image_cfg = cfg.DISENTANGLE.IMAGE
    image_cfg.SIZE = [SIZE, SIZE]
    image_cfg.BASE_CHANNELS = 8
    image_cfg.ID_DIM = 16
    image_cfg.DOMAIN_DIM = 8
    image_cfg.MLP_DIM = 32
    image_cfg.MINE_DIM = 32
    for key, value in image.items():
        image_cfg[key] = value
    return cfg


def _normalise(unit, cfg):
    mean = torch.tensor(cfg.INPUT.PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(cfg.INPUT.PIXEL_STD).view(1, 3, 1, 1)
    return (unit - mean) / std


class _TinyReID(nn.Module):
    """Stand-in for the Baseline: the same output dict, a few convolutions, counts its calls."""

    FEAT_DIM = 32

    def __init__(self, num_classes):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, self.FEAT_DIM, 3, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(self.FEAT_DIM, num_classes)
        self.calls = 0

    def forward(self, x, domains=None):
        self.calls += 1
        feat = self.body(x)
        return {"cls_score": self.classifier(feat), "feat": feat, "global_feat": feat}


# ---------------------------------------------------------------------------
# Synthetic two-domain data: an identity is a coloured box of its own shape and
# place; a domain is a style: a colour cast and a lower contrast.
# ---------------------------------------------------------------------------
NUM_IDS = 12  # ids 0-5 live in domain 0, ids 6-11 in domain 1, like two datasets


def _identity_palette():
    return torch.rand(NUM_IDS, 3, generator=torch.Generator().manual_seed(7)) * 0.8 + 0.1


def _draw(pids, palette, generator):
    domains = (pids >= NUM_IDS // 2).long()
    images = torch.empty(len(pids), 3, SIZE, SIZE)
    rows = torch.arange(SIZE).view(SIZE, 1)
    cols = torch.arange(SIZE).view(1, SIZE)
    for index, (pid, domain) in enumerate(zip(pids.tolist(), domains.tolist())):
        shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
        top = 6 + 3 * (pid % 3) + shift[0]
        left = 4 + 2 * (pid % 4) + shift[1]
        height, width = 10 + 4 * (pid % 2), 14 + 3 * (pid % 3)
        box = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
        image = torch.where(box, palette[pid].view(3, 1, 1), torch.full((3, 1, 1), 0.85))
        if domain == 1:
            # A per-channel affine map: a style that E_dom can read and AdaIN redraw.
            image = 0.6 * image + torch.tensor([0.25, 0.15, 0.0]).view(3, 1, 1)
        images[index] = image
    return images, domains


def _batch(cfg, pids, palette, generator):
    images, domains = _draw(pids, palette, generator)
    return {"images": _normalise(images, cfg), "pids": pids, "domains": domains}


def _pk_pids(generator, per_domain=2, instances=4):
    half = NUM_IDS // 2
    chosen = torch.cat([torch.randperm(half, generator=generator)[:per_domain],
                        half + torch.randperm(half, generator=generator)[:per_domain]])
    return chosen.repeat_interleave(instances)


def _scaler():
    return torch.amp.GradScaler("cpu", enabled=False)


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------

def test_output_shapes_and_the_id_code_keeps_colour():
    torch.manual_seed(0)
    net = ImageDisentangler(_cfg(), num_domains=3)
    x = torch.rand(4, 3, SIZE, SIZE) * 2 - 1
    c = net.encode_id(x)
    s = net.encode_domain(x)
    assert c.shape == (4, 16, SIZE // 4, SIZE // 4)
    assert s.shape == (4, 8)
    # A global tint is the body colour of a vehicle filling the image: an
    # instance-normalised E_id would map both to the same code.
    tinted = x + torch.tensor([0.4, -0.2, 0.0]).view(1, 3, 1, 1)
    assert (net.encode_id(tinted) - c).abs().mean() > 0.05 * c.abs().mean()
    y = net.decode(c, s)
    assert y.shape == (4, 3, SIZE, SIZE)
    assert y.abs().max() <= 1
    pooled = net.pool_id(c)
    # Each channel's mean and max.
    assert pooled.shape == (4, 32)
    torch.testing.assert_close(pooled[:, :16], c.mean(dim=(2, 3)))
    torch.testing.assert_close(pooled[:, 16:], c.amax(dim=(2, 3)))
    assert net.domain_classifier(s).shape == (4, 3)
    assert net.adversarial_classifier(pooled).shape == (4, 3)
    assert net.statistics_net(pooled, s).shape == (4,)


def test_pixel_range_conversions():
    cfg = _cfg()
    net = ImageDisentangler(cfg, NUM_DOMAINS)
    unit = torch.rand(2, 3, 64, 48)
    reid = _normalise(unit, cfg)
    x = net.from_reid(reid)
    assert x.shape == (2, 3, SIZE, SIZE)
    assert x.min() >= -1 and x.max() <= 1
    back = net.to_reid(x, (64, 48))
    assert back.shape == (2, 3, 64, 48)
    # Same size both ways: the conversions are exact inverses.
    same = _normalise(torch.rand(2, 3, SIZE, SIZE), cfg)
    torch.testing.assert_close(net.to_reid(net.from_reid(same), (SIZE, SIZE)), same, atol=1e-5, rtol=0)
    torch.testing.assert_close(net.to_image_tensor(torch.tensor([-1.0, 0.0, 1.0])), torch.tensor([0.0, 0.5, 1.0]))


def test_decoder_depends_on_both_codes():
    torch.manual_seed(0)
    net = ImageDisentangler(_cfg(), NUM_DOMAINS)
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    # Two unrelated domain codes: an untrained E_dom maps both noise images to nearly one code.
    c, s = net.encode_id(x), torch.randn(2, 8)
    base = net.decode(c[:1], s[:1])
    other_id = net.decode(c[1:], s[:1])
    other_domain = net.decode(c[:1], s[1:])
    assert (base - other_id).abs().mean() > 0.05
    assert (base - other_domain).abs().mean() > 0.005
    # ... and only on them: the same codes give the same image.
    torch.testing.assert_close(net.decode(c[:1], s[:1]), base)


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    weights = torch.tensor([0.5, -1.0, 2.0])
    y = reverse_gradient(x, 0.5)
    torch.testing.assert_close(y, x.detach())
    (y * weights).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([-0.25, 0.5, -1.0]))


def test_adversarial_classifier_reverses_into_the_id_code_only():
    torch.manual_seed(0)
    linear = nn.Linear(4, 2)
    reversed_head = nn.Sequential(GradientReversal(2.0), linear)
    features = torch.randn(5, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 1])
    nn.functional.cross_entropy(reversed_head(features), labels).backward()
    reversed_grad, head_grad = features.grad.clone(), linear.weight.grad.clone()
    features.grad, linear.weight.grad = None, None
    nn.functional.cross_entropy(linear(features), labels).backward()
    torch.testing.assert_close(reversed_grad, -2.0 * features.grad)
    # The classifier itself still descends: its own gradient is not reversed.
    torch.testing.assert_close(head_grad, linear.weight.grad)


# ---------------------------------------------------------------------------
# MINE
# ---------------------------------------------------------------------------

def test_mine_bound_by_hand():
    class Table(nn.Module):
        def forward(self, c, s):
            return (c * s).sum(dim=1)

    c = torch.tensor([[1.0], [2.0]])
    s = torch.tensor([[1.0], [0.0]])
    shuffle = torch.tensor([1, 0])
    # joint T = [1, 0]; marginal T = [1*0, 2*1] = [0, 2]; bound = 0.5 - log((e^0 + e^2) / 2)
    expected = 0.5 - math.log((1 + math.e ** 2) / 2)
    assert mine_lower_bound(Table(), c, s, shuffle).item() == pytest.approx(expected, abs=1e-6)


def test_mine_estimate_higher_for_dependent_pairs():
    torch.manual_seed(0)
    statistics_net = MineStatistics(4, 2, 32)
    optimizer = torch.optim.Adam(statistics_net.parameters(), lr=3e-3)

    def sample(n):
        c = torch.randn(n, 4)
        return c, c[:, :2] + 0.3 * torch.randn(n, 2)

    # 100 steps bring the bound within a nat of the truth (300 add a few tenths); the bound's value itself
    # is checked by hand in test_mine_bound_by_hand.
    for _ in range(100):
        c, s = sample(256)
        optimizer.zero_grad()
        (-mine_lower_bound(statistics_net, c, s, torch.randperm(256))).backward()
        optimizer.step()
    with torch.no_grad():
        c, s = sample(2048)
        dependent = mine_lower_bound(statistics_net, c, s, torch.randperm(2048)).item()
        unrelated = s[torch.randperm(2048)]
        shuffled = mine_lower_bound(statistics_net, c, unrelated, torch.randperm(2048)).item()
    # True I(c; s) = 2 x 0.5 log(1 + 1 / 0.09) = 2.5 nats, which a lower bound does not pass.
    assert 1.5 < dependent < 2.7
    assert shuffled < 0.2
    assert dependent > shuffled + 0.8


def test_mutual_information_penalty_moves_the_codes_not_t():
    torch.manual_seed(0)
    statistics_net = MineStatistics(3, 2, 8)
    c = torch.randn(6, 3, requires_grad=True)
    s = torch.randn(6, 2, requires_grad=True)
    shuffle = torch.randperm(6)
    penalty = mutual_information_penalty(statistics_net, c, s, shuffle)
    penalty.backward()
    assert all(p.grad is None for p in statistics_net.parameters())
    assert c.grad.abs().sum() > 0 and s.grad.abs().sum() > 0
    assert penalty.item() == pytest.approx(mine_lower_bound(statistics_net, c, s, shuffle).item())


# ---------------------------------------------------------------------------
# Pairing and subsets
# ---------------------------------------------------------------------------

def test_pairs_cross_domains_and_repeat_under_a_seed():
    domains = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    torch.manual_seed(3)
    partner = pair_across_domains(domains)
    assert (domains[partner] != domains).all()
    torch.manual_seed(3)
    assert torch.equal(pair_across_domains(domains), partner)


def test_single_domain_batch_pairs_with_another_image():
    torch.manual_seed(0)
    partner = pair_across_domains(torch.zeros(5, dtype=torch.long))
    assert (partner != torch.arange(5)).all()
    assert pair_across_domains(torch.zeros(1, dtype=torch.long)).tolist() == [0]


def test_select_per_identity_keeps_a_share_and_two_per_identity():
    pids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    assert select_per_identity(pids, 0.5).tolist() == [0, 1, 4, 5, 8, 9]
    assert select_per_identity(pids, 0.75).tolist() == [0, 1, 2, 4, 5, 6, 8, 9]
    assert select_per_identity(pids, 1.0).tolist() == list(range(10))
    assert select_per_identity(torch.tensor([3, 4, 4]), 0.1).tolist() == [0, 1, 2]


def test_grid_sources_alternate_domains_with_distinct_ids():
    pids = torch.tensor([0, 0, 1, 1, 5, 5, 6, 6])
    domains = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert pick_grid_sources(pids, domains, 3) == [0, 4, 2]
    assert pick_grid_sources(pids, domains, 10) == [0, 4, 2, 6]


# ---------------------------------------------------------------------------
# The extension: terms, skipped compute, optimisers, state, pictures
# ---------------------------------------------------------------------------

def _extension(records=(), **image):
    """The extension with its live re-ID model (a _TinyReID) as ``ext.model``."""
    torch.manual_seed(0)
    cfg = _cfg(**image)
    model = _TinyReID(NUM_IDS)
    reid_loss = make_loss(cfg, NUM_IDS, feat_dim=_TinyReID.FEAT_DIM)
    return ImageLevelExtension(cfg, NUM_DOMAINS, torch.device("cpu"), model, reid_loss, total_iters=100,
                               train_records=records)


def _record_passes(ext, batch):
    """Forward hooks that name each pass the disentangler's networks make: E_id / E_dom on the real images
    or on swaps, Dec on the real images' codes or on a swap's (the cycle), T."""
    net = ext.disentangler
    real = net.from_reid(batch["images"])
    real_codes = []
    passes = set()

    def on_real(tensor):
        return tensor.shape == real.shape and torch.equal(tensor, real)

    def id_encoder(module, args, output):
        passes.add("E_id(x)" if on_real(args[0]) else "E_id(swap)")
        if on_real(args[0]):
            real_codes.append(output.detach())

    def decoder(module, args, output):
        of_real = all(torch.equal(part, real_codes[0]) for part in args[0].detach().split(len(real)))
        passes.add("Dec(c)" if of_real else "Dec(cycle)")

    net.id_encoder.register_forward_hook(id_encoder)
    net.domain_encoder.register_forward_hook(
        lambda module, args, output: passes.add("E_dom(x)" if on_real(args[0]) else "E_dom(swap)"))
    net.decoder.register_forward_hook(decoder)
    net.statistics_net.register_forward_hook(lambda module, args, output: passes.add("T"))
    return passes


def _run(ext, batch):
    model = ext.model
    reid_loss = make_loss(_cfg(), NUM_IDS, feat_dim=_TinyReID.FEAT_DIM)
    calls = model.calls
    losses = ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    return losses, model.calls - calls - 1


B = 16
ALL_PASSES = {"E_id(x)", "E_dom(x)", "Dec(c)", "E_id(swap)", "E_dom(swap)", "Dec(cycle)", "T"}
# (weights set to 0, terms left, passes of the disentangler's networks left, extra re-ID passes).
SKIP_CASES = [
    ((), ALL_TERMS, ALL_PASSES, 1),
    (("W_CYC",), ALL_TERMS - {"img_cyc"}, ALL_PASSES - {"Dec(cycle)"}, 1),
    # C_dom still judges the swaps through E_dom.
    (("W_CYC", "W_CODE"), ALL_TERMS - {"img_cyc", "img_code"}, {"E_id(x)", "E_dom(x)", "Dec(c)", "E_dom(swap)", "T"},
     1),
    (("W_CYC", "W_CODE", "W_DOM"), {"img_rec", "img_adv", "img_mi", "gen_id", "gen_triplet"},
     {"E_id(x)", "E_dom(x)", "Dec(c)", "T"}, 1),
    # x_ii is still decoded: the swaps are painted onto the real images (SWAP_IMAGE onto_real).
    (("W_REC",), ALL_TERMS - {"img_rec"}, ALL_PASSES, 1),
    (("W_GEN",), ALL_TERMS - {"gen_id", "gen_triplet"}, ALL_PASSES, 0),
    (("W_CYC", "W_CODE", "W_DOM", "W_GEN"), {"img_rec", "img_adv", "img_mi"}, {"E_id(x)", "E_dom(x)", "Dec(c)", "T"},
     0),
    (("W_REC", "W_CYC", "W_CODE", "W_DOM", "W_GEN", "W_MI"), {"img_adv"}, {"E_id(x)"}, 0),
    (("W_REC", "W_CYC", "W_CODE", "W_DOM", "W_ADV", "W_MI", "W_GEN"), set(), set(), 0),
]


@pytest.mark.parametrize("zeroed, terms, passes, reid_passes", SKIP_CASES)
def test_zero_weights_remove_terms_and_their_compute(zeroed, terms, passes, reid_passes):
    ext = _extension(**{key: 0.0 for key in zeroed})
    batch = _batch(_cfg(), _pk_pids(torch.Generator().manual_seed(0)), _identity_palette(),
                   torch.Generator().manual_seed(1))
    seen = _record_passes(ext, batch)
    losses, passes_of_the_model = _run(ext, batch)
    assert set(losses) == terms
    assert seen == passes
    assert passes_of_the_model == reid_passes
    assert all(torch.isfinite(value) for value in losses.values())


def test_gen_loss_sees_the_kept_share_of_swaps():
    ext = _extension(GEN_FRACTION=0.5)
    batch = _batch(_cfg(), _pk_pids(torch.Generator().manual_seed(0)), _identity_palette(),
                   torch.Generator().manual_seed(1))
    model = ext.model
    seen = []
    model.register_forward_hook(lambda module, args, output: seen.append(args[0].shape))
    reid_loss = make_loss(_cfg(), NUM_IDS, feat_dim=_TinyReID.FEAT_DIM)
    ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    assert seen == [(B, 3, SIZE, SIZE), (B // 2, 3, SIZE, SIZE)]


@pytest.mark.parametrize("w_gen_id", [0.0, 1.0])
def test_only_the_teacher_judged_identity_loss_reaches_the_generator(w_gen_id):
    ext = _extension(W_GEN_ID=w_gen_id)
    batch = _batch(_cfg(), _pk_pids(torch.Generator().manual_seed(0)), _identity_palette(),
                   torch.Generator().manual_seed(1))
    model = ext.model
    reid_loss = make_loss(_cfg(), NUM_IDS, feat_dim=_TinyReID.FEAT_DIM)
    losses = ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    # What the live model learns from swaps never trains the generator.
    (losses["gen_id"] + losses["gen_triplet"]).backward(retain_graph=True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert all(p.grad is None for p in ext.disentangler.decoder.parameters())
    assert ("img_id" in losses) == bool(w_gen_id)
    if w_gen_id:
        model.zero_grad()
        losses["img_id"].backward()
        # The teacher's judgement trains the decoder, not the live model, and never the teacher.
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ext.disentangler.decoder.parameters())
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.parameters())
        assert all(p.grad is None for p in ext.teacher.parameters())


def test_bad_image_config_is_a_config_error():
    with pytest.raises(ConfigError, match="DISENTANGLE.IMAGE.W_CYC"):
        _extension(W_CYC=-1.0)
    with pytest.raises(ConfigError, match="DISENTANGLE.IMAGE.SIZE"):
        _extension(SIZE=[40, 32])
    with pytest.raises(ConfigError, match="DISENTANGLE.IMAGE.GEN_FRACTION"):
        _extension(GEN_FRACTION=0.0)
    with pytest.raises(ConfigError, match="W_GEN_ID > 0 needs a teacher"):
        _extension(W_GEN_ID=1.0, TEACHER="none")


def _one_step(ext, batch):
    model = ext.model
    reid_loss = make_loss(_cfg(), NUM_IDS, feat_dim=_TinyReID.FEAT_DIM)
    ext.zero_grad()
    outputs = model(batch["images"])
    losses = dict(reid_loss(outputs, batch["pids"]))
    losses.update(ext.compute_losses(batch, outputs, model, reid_loss))
    sum(losses.values()).backward()
    ext.step(_scaler())
    return losses


@pytest.mark.parametrize("w_mi", [1e-4, 0.0])
def test_t_has_its_own_optimiser_and_steps_only_for_l_mi(w_mi):
    ext = _extension(W_MI=w_mi)
    t_params = set(map(id, ext.disentangler.statistics_net.parameters()))
    adversary_params = set(map(id, ext.disentangler.adversarial_classifier.parameters()))
    generator_params = {id(p) for group in ext.optimizer.param_groups for p in group["params"]}
    assert not t_params & generator_params
    # The default confusion adversary learns in its own step too.
    assert not adversary_params & generator_params
    assert generator_params | t_params | adversary_params == set(map(id, ext.disentangler.parameters()))
    before = [p.detach().clone() for p in ext.disentangler.statistics_net.parameters()]
    encoder_before = next(ext.disentangler.id_encoder.parameters()).detach().clone()
    batch = _batch(_cfg(), _pk_pids(torch.Generator().manual_seed(0)), _identity_palette(),
                   torch.Generator().manual_seed(1))
    _one_step(ext, batch)
    moved = [not torch.equal(a, b) for a, b in zip(before, ext.disentangler.statistics_net.parameters())]
    # (T's last bias never moves: the bound is blind to a constant added to T.)
    assert any(moved) if w_mi else not any(moved)
    assert not torch.equal(encoder_before, next(ext.disentangler.id_encoder.parameters()))


def test_t_step_raises_the_bound_on_the_kept_codes():
    ext = _extension(LR=3e-3)
    torch.manual_seed(0)
    pooled = torch.randn(B, 32)
    s = pooled[:, :8] + 0.1 * torch.randn(B, 8)
    shuffle = torch.randperm(B)
    statistics_net = ext.disentangler.statistics_net
    with torch.no_grad():
        before = mine_lower_bound(statistics_net, pooled, s, shuffle).item()
    for _ in range(20):
        ext._kept_codes = (pooled, s, torch.arange(B) % 2)
        ext.step(_scaler())
    with torch.no_grad():
        after = mine_lower_bound(statistics_net, pooled, s, shuffle).item()
    assert after > before + 0.2


def test_state_dict_round_trip():
    ext = _extension()
    batch = _batch(_cfg(), _pk_pids(torch.Generator().manual_seed(0)), _identity_palette(),
                   torch.Generator().manual_seed(1))
    _one_step(ext, batch)
    state = ext.state_dict()
    assert set(state) == {"disentangler", "optimizer", "mine_optimizer", "adversary_optimizer", "steps_done",
                          "joint_steps", "teacher"}
    assert state["steps_done"] == state["joint_steps"] == 1
    assert not any("pixel" in key for key in state["disentangler"])
    restored = _extension()
    restored.load_state_dict(state)
    assert restored.joint_steps == 1
    for mine, saved in zip(restored.teacher.parameters(), ext.teacher.parameters()):
        torch.testing.assert_close(mine, saved)
    x = ext.disentangler.from_reid(batch["images"])
    with torch.no_grad():
        torch.testing.assert_close(restored.disentangler.encode_id(x), ext.disentangler.encode_id(x))
    assert restored.optimizer.state_dict()["state"][0]["step"] == 1


def test_bf16_autocast_step_is_finite():
    ext = _extension()
    batch = _batch(_cfg(), _pk_pids(torch.Generator().manual_seed(0)), _identity_palette(),
                   torch.Generator().manual_seed(1))
    model = ext.model
    reid_loss = make_loss(_cfg(), NUM_IDS, feat_dim=_TinyReID.FEAT_DIM)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = ext.compute_losses(batch, model(batch["images"]), model, reid_loss)
    assert set(losses) == ALL_TERMS
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    ext.step(_scaler())


def test_swap_grid_layout_by_hand():
    red, green, blue = (torch.tensor(c, dtype=torch.float).view(3, 1, 1).expand(3, 4, 4)
                        for c in ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    id_images = torch.stack([red, green])
    domain_images = torch.stack([blue, blue, green])
    swaps = torch.zeros(2, 3, 3, 4, 4)
    swaps[1, 2] = 1.0
    grid = draw_swap_grid(id_images, domain_images, swaps)
    # width: 4 + 6 (margin gap) + 3 x (4 + 2) - 2; height: 4 + 6 + 2 x 6 - 2
    assert grid.size == (26, 20)
    assert grid.getpixel((0, 0)) == (255, 255, 255)
    assert grid.getpixel((10, 0)) == (0, 0, 255)
    assert grid.getpixel((22, 3)) == (0, 255, 0)
    assert grid.getpixel((0, 10)) == (255, 0, 0)
    assert grid.getpixel((0, 16)) == (0, 255, 0)
    assert grid.getpixel((10, 10)) == (0, 0, 0)
    assert grid.getpixel((22, 16)) == (255, 255, 255)
    enlarged = draw_swap_grid(id_images, domain_images, swaps, min_tile=10)
    # 4-px images x 3 = 12 px: width 12 + 6 + 3 x 14 - 2, height 12 + 6 + 2 x 14 - 2
    assert enlarged.size == (58, 44)
    assert enlarged.getpixel((18 + 2 * 14 + 11, 18 + 14 + 11)) == (255, 255, 255)
    assert enlarged.getpixel((0, 18 + 11)) == (255, 0, 0)


def test_epoch_end_writes_the_grid_every_vis_period(tmp_path):
    ext = _extension(VIS_PERIOD=2)
    batch = _batch(_cfg(), _pk_pids(torch.Generator().manual_seed(0)), _identity_palette(),
                   torch.Generator().manual_seed(1))
    assert ext.on_epoch_end(1, str(tmp_path), batch) is None
    assert not list(tmp_path.iterdir())
    path = ext.on_epoch_end(2, str(tmp_path), batch)
    assert path == str(tmp_path / "swaps_epoch2.png")
    with Image.open(path) as picture:
        # 4 identities in the batch: 4 ID sources x 4 domain sources plus the margins,
        # each 32-px image enlarged 3x to reach GRID_MIN_TILE (96).
        tile = 3 * SIZE
        side = tile + 6 + 4 * (tile + 2) - 2
        assert picture.size == (side, side)
    assert ext.disentangler.training


def test_training_grid_uses_the_same_unaugmented_images_every_epoch(tmp_path):
    palette = _identity_palette()
    _write_folder(tmp_path / "train", torch.arange(NUM_IDS), palette)
    records = [ImageRecord(str(path), pid=index, camid=1, domain=int(index >= NUM_IDS // 2))
               for index, path in enumerate(sorted((tmp_path / "train").iterdir()))]
    ext = _extension(records, VIS_PERIOD=1)
    chosen = [records[[r.path for r in records].index(path)] for path in ext.grid_paths]
    assert len(chosen) == 6 and len({r.pid for r in chosen}) == 6
    assert [r.domain for r in chosen] == [0, 1, 0, 1, 0, 1]
    first = ext.on_epoch_end(1, str(tmp_path / "out"), batch=None)
    second = ext.on_epoch_end(2, str(tmp_path / "out"), batch=None)
    with Image.open(first) as a, Image.open(second) as b:
        # Same sources, same weights: the same picture.
        assert a.size == b.size and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------
# A short training on two-domain data
# ---------------------------------------------------------------------------

def _probe_and_domain_accuracy(ext, cfg, palette):
    """(fresh linear probe on pooled c, C_dom on s): fitted on ids 0-2 and 6-8, tested on the others."""
    net = ext.disentangler
    draws = torch.Generator().manual_seed(5)
    fit_pids = torch.tensor([0, 1, 2, 6, 7, 8]).repeat_interleave(8)
    test_pids = torch.tensor([3, 4, 5, 9, 10, 11]).repeat_interleave(8)
    codes, domains = [], []
    with torch.no_grad():
        for pids in (fit_pids, test_pids):
            batch = _batch(cfg, pids, palette, draws)
            x = net.from_reid(batch["images"])
            codes.append(net.pool_id(net.encode_id(x)))
            domains.append(batch["domains"])
        dom = (net.domain_classifier(net.encode_domain(x)).argmax(1) == batch["domains"]).float().mean().item()
    return linear_probe_accuracy(codes[0], domains[0], codes[1], domains[1], NUM_DOMAINS), dom


@pytest.mark.slow
def test_short_training_disentangles_two_domains():
    ext = _extension(LR=2e-3)
    cfg, model = ext.cfg, ext.model
    reid_loss = make_loss(cfg, NUM_IDS, feat_dim=_TinyReID.FEAT_DIM)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    palette, draws = _identity_palette(), torch.Generator().manual_seed(1)
    iterations, window = 100, 20
    history = {"img_rec": [], "img_cyc": [], "id": []}
    for iteration in range(iterations):
        batch = _batch(cfg, _pk_pids(draws), palette, draws)
        optimizer.zero_grad()
        ext.zero_grad()
        outputs = model(batch["images"])
        losses = dict(reid_loss(outputs, batch["pids"]))
        losses.update(ext.compute_losses(batch, outputs, model, reid_loss))
        sum(losses.values()).backward()
        optimizer.step()
        ext.step(_scaler())
        for name in ("img_rec", "img_cyc", "id"):
            history[name].append(losses[name].item())

    def mean(values):
        return sum(values) / len(values)

    for name in ("img_rec", "img_cyc"):
        assert mean(history[name][-window:]) < 0.5 * mean(history[name][:window])
    # The stand-in re-ID model learns although swapped images share its batch.
    assert mean(history["id"][-window:]) < 0.9 * mean(history["id"][:window])
    _, dom = _probe_and_domain_accuracy(ext, cfg, palette)
    assert dom >= 0.95


def test_domain_confusion_by_hand():
    # Uniform predictions: 0. Logits (log 3, 0) over 2 domains: p = (0.75, 0.25);
    # KL(uniform || p) = -0.5 (log 0.75 + log 0.25) - log 2.
    assert domain_confusion(torch.zeros(3, 2)).item() == pytest.approx(0.0, abs=1e-7)
    expected = -0.5 * (math.log(0.75) + math.log(0.25)) - math.log(2)
    assert domain_confusion(torch.tensor([[math.log(3.0), 0.0]])).item() == pytest.approx(expected, abs=1e-6)


def test_domain_mmd_is_zero_for_one_distribution_and_falls_when_followed():
    torch.manual_seed(0)
    shared = torch.randn(8, 4)
    domains = torch.tensor([0] * 8 + [1] * 8)
    assert domain_mmd(torch.cat([shared, shared]), domains).item() == pytest.approx(0.0, abs=1e-5)
    apart = torch.cat([shared, shared + 3.0]).requires_grad_(True)
    before = domain_mmd(apart, domains)
    assert before.item() > 0.5
    before.backward()
    moved = apart - 0.5 * apart.grad
    assert domain_mmd(moved.detach(), domains).item() < before.item()
    # A domain with a single image in the batch is skipped, not divided by zero.
    assert torch.isfinite(domain_mmd(torch.randn(5, 4), torch.tensor([0, 1, 1, 1, 1])))


@pytest.mark.parametrize("adversary", ["confusion", "reversal", "mmd"])
def test_adversary_term_trains_e_id_and_c_adv_as_its_mode_says(adversary):
    ext = _extension(ADVERSARY=adversary, W_ADV=1.0, ADV_RAMP=False,
                     **{key: 0.0 for key in ("W_REC", "W_CYC", "W_CODE", "W_DOM", "W_MI", "W_GEN")})
    batch = _batch(ext.cfg, _pk_pids(torch.Generator().manual_seed(0)), _identity_palette(),
                   torch.Generator().manual_seed(1))
    ext.zero_grad()
    losses = ext.compute_losses(batch, None, None, None)
    assert set(losses) == {"img_adv"}
    losses["img_adv"].backward()
    net = ext.disentangler
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.id_encoder.parameters())
    adversary_grads = [p.grad for p in net.adversarial_classifier.parameters()]
    if adversary == "reversal":
        # C_adv descends its cross-entropy in the main pass (E_id gets the reversed gradient).
        assert all(g is not None and g.abs().sum() > 0 for g in adversary_grads)
    else:
        # Confusion holds C_adv fixed; MMD does not use it.
        assert all(g is None for g in adversary_grads)
    before = [p.detach().clone() for p in net.adversarial_classifier.parameters()]
    ext.step(_scaler())
    moved = any(not torch.equal(a, b) for a, b in zip(before, net.adversarial_classifier.parameters()))
    # C_adv learns in its own step (confusion) or in the disentangler's (reversal); MMD leaves it alone.
    assert moved == (adversary != "mmd")


def test_warm_up_trains_the_disentangler_alone_for_its_iterations():
    ext = _extension(LR=2e-3, WARMUP_ITERATIONS=30)
    cfg = ext.cfg
    palette, draws = _identity_palette(), torch.Generator().manual_seed(1)
    # A loader shorter than the warm-up: it is iterated again until the count is reached.
    loader = [_batch(cfg, _pk_pids(draws), palette, draws) for _ in range(25)]
    probe = loader[0]

    def reconstruction_error():
        with torch.no_grad():
            x = ext.disentangler.from_reid(probe["images"])
            c, s = ext.disentangler.encode_id(x), ext.disentangler.encode_domain(x)
            return (ext.disentangler.decode(c, s) - x).abs().mean().item()

    before = reconstruction_error()
    steps = []
    original_step = ext.optimizer.step
    ext.optimizer.step = lambda *args, **kwargs: (steps.append(1), original_step(*args, **kwargs))[1]
    ext.warm_up(loader, DeviceSetup(device=torch.device("cpu")))
    assert len(steps) == 30
    assert reconstruction_error() < 0.6 * before

    ext.warmup_iters = 0
    ext.warm_up(loader, DeviceSetup(device=torch.device("cpu")))
    assert len(steps) == 30


def test_warm_up_stops_at_a_non_finite_loss_before_updating():
    ext = _extension(WARMUP_ITERATIONS=5)
    batch = _batch(_cfg(), _pk_pids(torch.Generator().manual_seed(1)), _identity_palette(),
                   torch.Generator().manual_seed(2))
    batch["images"][0, 0, 0, 0] = float("nan")
    before = {name: value.clone() for name, value in ext.disentangler.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="warm-up iteration 1: img_rec nan"):
        ext.warm_up([batch], DeviceSetup(device=torch.device("cpu")))
    after = ext.disentangler.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


# ---------------------------------------------------------------------------
# tools/visualize_swaps.py
# ---------------------------------------------------------------------------

def _load_tool():
    path = pathlib.Path(__file__).resolve().parents[1] / "tools" / "visualize_swaps.py"
    spec = importlib.util.spec_from_file_location("visualize_swaps", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_folder(folder, pids, palette):
    folder.mkdir()
    images, _ = _draw(pids, palette, torch.Generator().manual_seed(0))
    for index, image in enumerate(images):
        array = (image.permute(1, 2, 0) * 255).round().byte().numpy()
        Image.fromarray(array).resize((48, 48)).save(folder / f"{index:04d}_c001_0_0.jpg")


def _tool_cfg_opts():
    cfg = _cfg()
    return ["INPUT.SIZE_TRAIN", str(cfg.INPUT.SIZE_TRAIN)] + [
        item for key in ("SIZE", "BASE_CHANNELS", "ID_DIM", "DOMAIN_DIM", "MLP_DIM", "MINE_DIM")
        for item in (f"DISENTANGLE.IMAGE.{key}", str(cfg.DISENTANGLE.IMAGE[key]))]


def test_visualize_swaps_tool_draws_the_grid_from_a_checkpoint(tmp_path, monkeypatch):
    ext = _extension()
    checkpoint = tmp_path / "checkpoint_3.pt"
    torch.save({"model": {}, "image_level": ext.state_dict()}, checkpoint)
    palette = _identity_palette()
    _write_folder(tmp_path / "ids", torch.arange(5), palette)
    _write_folder(tmp_path / "styles", torch.arange(6, 12), palette)
    output = tmp_path / "grid.png"
    monkeypatch.setattr(sys, "argv", [
        "visualize_swaps.py", "--id_dir", str(tmp_path / "ids"), "--domain_dir", str(tmp_path / "styles"),
        "--num", "3", "--output", str(output), "MODEL.DEVICE", "cpu", "TEST.WEIGHT", str(checkpoint),
        *_tool_cfg_opts()])
    _load_tool().main()
    with Image.open(output) as picture:
        tile = 3 * SIZE
        side = tile + 6 + 3 * (tile + 2) - 2
        assert picture.size == (side, side)
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    # The margins are the folders' images: a corner of each is its background, plain grey in the ID
    # sources (domain 0), the colour cast of domain 1 in the domain sources; the top-left cell is blank.
    grey, cast = np.full(3, 0.85 * 255), (0.6 * 0.85 + np.array([0.25, 0.15, 0.0])) * 255
    assert (pixels[:tile, :tile] == 255).all()
    for index in range(3):
        start = tile + 6 + index * (tile + 2)
        assert np.abs(pixels[start + 2, 2] - grey).max() < 12, index
        assert np.abs(pixels[2, start + 2] - cast).max() < 12, index


def test_visualize_swaps_tool_names_a_checkpoint_without_the_module(tmp_path, monkeypatch):
    checkpoint = tmp_path / "baseline.pt"
    torch.save({"model": {}}, checkpoint)
    monkeypatch.setattr(sys, "argv", ["visualize_swaps.py", "--id_dir", str(tmp_path), "--domain_dir",
                                      str(tmp_path), "TEST.WEIGHT", str(checkpoint), *_tool_cfg_opts()])
    with pytest.raises(UserError, match="no image-level module"):
        _load_tool().main()


def test_warm_up_depends_on_the_seed_alone_and_its_cache_is_reused_only_for_its_config(tmp_path):
    cache = str(tmp_path / "warm.pt")
    palette, draws = _identity_palette(), torch.Generator().manual_seed(1)
    loader = [_batch(_cfg(), _pk_pids(draws), palette, draws) for _ in range(4)]
    device_setup = DeviceSetup(device=torch.device("cpu"))

    def warmed(consumed, **image):
        torch.manual_seed(0)
        torch.randn(consumed)  # whatever ran before the extension was built (e.g. the feature level)
        ext = _extension(LR=2e-3, WARMUP_ITERATIONS=6, **image)
        ext.warm_up(loader, device_setup)
        return ext

    fresh = warmed(0)
    other_history = warmed(123)
    for a, b in zip(fresh.disentangler.state_dict().values(), other_history.disentangler.state_dict().values()):
        assert torch.equal(a, b)
    saved = warmed(7, WARMUP_CACHE=cache)
    # Mark the file, to see whether a later run reads it or warms up anew.
    payload = torch.load(cache, weights_only=True)
    first = next(iter(payload["state"]["disentangler"]))
    payload["state"]["disentangler"][first] += 1.0
    torch.save(payload, cache)
    reused = warmed(9, WARMUP_CACHE=cache)
    assert torch.equal(reused.disentangler.state_dict()[first], saved.disentangler.state_dict()[first] + 1.0)
    assert reused.steps_done == 6
    changed = warmed(0, WARMUP_CACHE=cache, W_REC=4.0)
    assert not torch.equal(changed.disentangler.state_dict()[first], reused.disentangler.state_dict()[first])
