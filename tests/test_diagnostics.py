"""The disentanglement diagnostics on cases whose answers are known.

Synthetic images: an identity is a pattern of bright blocks, a domain is a
global brightness (domain 0 dark, domain 1 bright). A stand-in disentangler
whose ID code is the image minus its mean colour hides the domain from c; one
whose code is the image itself does not. Its swap either repaints the image
with the partner's mean colour (a true domain swap) or returns it unchanged.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import engine.diagnostics as diagnostics_module
from config import get_default_cfg
from data import ImageRecord
from engine.diagnostics import Diagnostics, _rank1, pick_diagnostic_records
from engine.runtime import DeviceSetup
from layers.image_disentangle_loss import ImageDisentangleLoss
from modeling.image_disentangler import ImageDisentangler
from utils.linear_probe import linear_probe_accuracy


# Small tensors: one torch thread for the whole module (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, IDS_PER_DOMAIN, IMAGES_PER_ID = 32, 8, 4


def test_linear_probe_reads_a_domain_channel_and_not_shuffled_labels():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(400, 16, generator=generator)
    domains = torch.arange(400) % 2
    # Shifted by 6 sd: the Bayes accuracy is Phi(3) = 0.9987.
    features[:, 3] += 6.0 * domains
    fit, test = slice(0, 200), slice(200, 400)
    assert linear_probe_accuracy(features[fit], domains[fit], features[test], domains[test], 2) >= 0.95
    shuffled = domains[torch.randperm(400, generator=generator)]
    chance = linear_probe_accuracy(features[fit], shuffled[fit], features[test], shuffled[test], 2)
    assert abs(chance - 0.5) <= 0.1


def test_rank1_leaves_each_query_out_of_its_gallery():
    gallery = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    pids = torch.tensor([0, 1, 2])
    # Each image's nearest other image: 0 -> 1 (wrong pid), 1 -> 0 (wrong), 2 -> 1 (wrong).
    assert _rank1(gallery, pids, gallery, pids, torch.arange(3)) == 0.0
    same = torch.tensor([0, 0, 2])
    assert _rank1(gallery, same, gallery, same, torch.arange(3)) == pytest.approx(2 / 3)


def _records(folder, num_ids=IDS_PER_DOMAIN):
    """Two domains x num_ids identities x IMAGES_PER_ID images, written as JPEG-free PNGs."""
    rng = np.random.default_rng(0)
    records = []
    for domain in (0, 1):
        for local in range(num_ids):
            pid = domain * num_ids + local
            pattern = np.kron(rng.random((4, 4)) > 0.5, np.ones((SIZE // 4, SIZE // 4)))
            for index in range(IMAGES_PER_ID):
                base = 0.15 + 0.5 * domain
                pixels = base + 0.3 * pattern[..., None] + rng.normal(0, 0.02, (SIZE, SIZE, 3))
                path = folder / f"{pid:04d}_c001_{index}_0.png"
                Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)
                records.append(ImageRecord(str(path), pid, 1, source=domain, domain=domain))
    return records


def test_picked_records_alternate_domains_and_split_identities_into_halves(tmp_path):
    records = [ImageRecord(f"{pid}_{k}.jpg", pid, 1, domain=pid // 10) for pid in range(20) for k in range(5)]
    records.append(ImageRecord("lonely.jpg", 99, 1, domain=0))
    picked, half = pick_diagnostic_records(records, seed=0, max_images=48, per_identity=4)
    assert len(picked) == 48 and 99 not in {r.pid for r in picked}
    # 12 identities of 4 images, domains in turn.
    assert [r.domain for r in picked[::4]] == [0, 1] * 6
    for pid in {r.pid for r in picked}:
        assert len({int(h) for r, h in zip(picked, half) if r.pid == pid}) == 1
    for domain in (0, 1):
        halves = {int(h) for r, h in zip(picked, half) if r.domain == domain}
        assert halves == {0, 1}


class _StandInDisentangler(nn.Module):
    """c: the image (``hides_domain`` False) or the image minus its mean colour; s: the mean colour.
    Dec(c, s): c recoloured to s (``swaps`` True), or c as it is."""

    def __init__(self, hides_domain, swaps):
        super().__init__()
        self.hides_domain, self.swaps = hides_domain, swaps
        self.size = (SIZE, SIZE)
        self.register_buffer("pixel_mean", torch.zeros(1, 3, 1, 1))

    def from_reid(self, images):
        return images

    def to_reid(self, generated, size):
        return generated

    @staticmethod
    def swap_onto(images, swapped, reconstructed):
        return images + swapped - reconstructed

    def encode_domain(self, x):
        return x.mean(dim=(2, 3))

    def encode_id(self, x):
        return x - x.mean(dim=(2, 3), keepdim=True) if self.hides_domain else x

    @staticmethod
    def pool_id(c):
        return torch.cat([c.mean(dim=(2, 3)), c.amax(dim=(2, 3))], dim=1)

    def decode(self, c, s):
        if not self.swaps:
            return c
        return c - c.mean(dim=(2, 3), keepdim=True) + s[:, :, None, None]


class _ColourBlindReID(nn.Module):
    """Test feature: the image minus its mean colour, so a swap looks like its source's other images."""

    def forward(self, x, domains=None):
        return (x - x.mean(dim=(2, 3), keepdim=True)).flatten(1)


def _cfg():
    cfg = get_default_cfg()
    cfg.INPUT.SIZE_TEST = [SIZE, SIZE]
    cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    cfg.TEST.IMS_PER_BATCH = 32
    return cfg


@pytest.fixture
def fast_judge(monkeypatch):
    monkeypatch.setattr(diagnostics_module, "JUDGE_STEPS", 80)


@pytest.mark.parametrize("hides_domain, swaps, onto_real", [(True, True, True), (True, True, False),
                                                             (False, False, False)])
def test_image_level_diagnostics_give_the_known_answers(tmp_path, fast_judge, hides_domain, swaps, onto_real):
    records = _records(tmp_path)
    data = SimpleNamespace(train_records=records, num_domains=2)
    image_level = SimpleNamespace(disentangler=_StandInDisentangler(hides_domain, swaps),
                                  criterion=ImageDisentangleLoss(w_rec=1.0), swap_onto_real=onto_real)
    torch.manual_seed(0)
    diagnostics = Diagnostics(_cfg(), data, DeviceSetup(device=torch.device("cpu")), image_level)
    result = diagnostics(_ColourBlindReID())
    assert result["domain_chance"] == 0.5
    assert result["judge_real_acc"] >= 0.95
    # The colour-blind feature hides the domain only up to what the patterns leak: none here.
    assert result["domain_probe_feature"] <= 0.75
    if hides_domain:
        assert result["domain_probe_c"] <= 0.75
    else:
        assert result["domain_probe_c"] >= 0.95
    if swaps:
        assert result["swap_domain_acc"] >= 0.95
    else:
        assert result["swap_domain_acc"] <= 0.05
    # Every image keeps its pattern in the swap: found among its identity's other images.
    assert result["swap_id_rank1"] >= 0.95
    assert result["real_id_rank1"] >= 0.95
    # Without a MINE term there is no ratio to report.
    assert math.isnan(result["mi_grad_ratio"])


def test_domain_probe_on_a_domain_reading_feature(tmp_path, fast_judge):
    class Brightness(nn.Module):
        def forward(self, x, domains=None):
            return torch.cat([x.mean(dim=(2, 3)), torch.randn(len(x), 5)], dim=1)

    data = SimpleNamespace(train_records=_records(tmp_path), num_domains=2)
    diagnostics = Diagnostics(_cfg(), data, DeviceSetup(device=torch.device("cpu")))
    result = diagnostics(Brightness())
    assert result["domain_probe_feature"] >= 0.95
    assert set(result) == {"domain_probe_feature", "domain_chance", "seconds"}


def test_mi_grad_ratio_scales_with_the_mine_weight(tmp_path, fast_judge):
    cfg = _cfg()
    cfg.DISENTANGLE.IMAGE.SIZE = [SIZE, SIZE]
    cfg.DISENTANGLE.IMAGE.BASE_CHANNELS, cfg.DISENTANGLE.IMAGE.ID_DIM = 4, 8
    torch.manual_seed(0)
    net = ImageDisentangler(cfg, 2)
    data = SimpleNamespace(train_records=_records(tmp_path, num_ids=4), num_domains=2)
    image_level = SimpleNamespace(disentangler=net, criterion=None)
    diagnostics = Diagnostics(cfg, data, DeviceSetup(device=torch.device("cpu")), image_level)
    x = net.from_reid(diagnostics.images[:16])
    ratios = []
    for w_mi in (0.1, 0.2):
        image_level.criterion = ImageDisentangleLoss(w_rec=5.0, w_mi=w_mi)
        ratios.append(diagnostics._mi_grad_ratio(net, x))
    assert ratios[0] > 0
    assert ratios[1] == pytest.approx(2 * ratios[0], rel=1e-4)
