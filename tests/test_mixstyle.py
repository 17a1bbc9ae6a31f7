"""MixStyle: identity at test time, mixed channel statistics in training, cross-domain partners."""
import pytest
import torch

from config import get_default_cfg
from modeling import build_model
from modeling.domain_pairing import pair_across_domains
from modeling.mixstyle import MixStyle


def _maps():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(6, 4, 5, 5, generator=generator) * torch.arange(1, 7).view(6, 1, 1, 1) + 3.0


def test_mixstyle_does_nothing_at_test_time_or_when_not_drawn():
    layer = MixStyle(p=1.0, alpha=0.1)
    x = _maps()
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    layer.p = 0.0
    assert torch.equal(layer(x), x)


def test_mixed_statistics_are_the_blend_of_the_image_and_its_other_domain_partner(monkeypatch):
    layer = MixStyle(p=1.0, alpha=0.1, mix="crossdomain").train()
    monkeypatch.setattr(layer.beta, "sample", lambda shape: torch.full(shape, 0.3))
    x = _maps()
    domains = torch.tensor([0, 0, 0, 1, 1, 1])
    torch.manual_seed(1)
    out = layer(x, domains)
    # The same draws: first whether to mix, then the partners.
    torch.manual_seed(1)
    torch.rand(())
    partner = pair_across_domains(domains)
    assert (domains[partner] != domains).all()
    mean, var = x.mean(dim=(2, 3)), x.var(dim=(2, 3))
    std = (var + layer.eps).sqrt()
    torch.testing.assert_close(out.mean(dim=(2, 3)), 0.3 * mean + 0.7 * mean[partner], atol=1e-4, rtol=1e-4)
    expected_std = (0.3 * std + 0.7 * std[partner]) * var.sqrt() / std
    torch.testing.assert_close(out.var(dim=(2, 3)).sqrt(), expected_std, atol=1e-4, rtol=1e-4)


def test_mixstyle_keeps_the_bot_state_dict_and_the_test_feature():
    cfg = get_default_cfg()
    cfg.MODEL.NAME, cfg.MODEL.PRETRAIN_CHOICE = "resnet18", "none"
    torch.manual_seed(0)
    plain = build_model(cfg, 5)
    cfg.MODEL.MIXSTYLE.ENABLED = True
    torch.manual_seed(0)
    mixed = build_model(cfg, 5)
    assert list(plain.state_dict()) == list(mixed.state_dict())
    assert set(mixed.base.mixstyle) == {"layer1", "layer2"}
    images = torch.randn(2, 3, 64, 64)
    plain.eval(), mixed.eval()
    torch.testing.assert_close(mixed(images), plain(images))
    mixed.train()
    out = mixed(torch.randn(4, 3, 64, 64), torch.tensor([0, 0, 1, 1]))
    assert out["feat"].shape == (4, 512)


def test_unknown_mixstyle_layer_is_a_config_error():
    from config import ConfigError

    cfg = get_default_cfg()
    cfg.MODEL.NAME, cfg.MODEL.PRETRAIN_CHOICE = "resnet18", "none"
    cfg.MODEL.MIXSTYLE.ENABLED = True
    cfg.MODEL.MIXSTYLE.LAYERS = ["layer9"]
    with pytest.raises(ConfigError, match="MODEL.MIXSTYLE.LAYERS"):
        build_model(cfg, 5)
