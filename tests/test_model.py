"""Shapes, switches and state-dict keys of the BoT baseline network."""
import pytest
import torch
from torchvision.models import resnet18 as tv_resnet18
from torchvision.models import resnet50 as tv_resnet50

from config import get_default_cfg
from modeling import build_model
from modeling.backbones import load_imagenet_weights, resnet18
from utils.errors import UserError

NUM_CLASSES = 5


def _cfg(name="resnet18", **model_keys):
    cfg = get_default_cfg()
    cfg.MODEL.NAME = name
    cfg.MODEL.PRETRAIN_CHOICE = "none"
    for key, value in model_keys.items():
        cfg.MODEL[key] = value
    return cfg


@pytest.mark.parametrize("name, dim", [("resnet18", 512), ("resnet50", 2048)])
def test_train_dict_and_eval_feature_shapes(name, dim):
    torch.manual_seed(0)
    model = build_model(_cfg(name), NUM_CLASSES)
    images = torch.randn(2, 3, 64, 64)
    outputs = model.train()(images)
    assert set(outputs) == {"cls_score", "feat", "global_feat"}
    assert outputs["cls_score"].shape == (2, NUM_CLASSES)
    assert outputs["feat"].shape == outputs["global_feat"].shape == (2, dim)
    with torch.no_grad():
        feature = model.eval()(images)
    assert isinstance(feature, torch.Tensor) and feature.shape == (2, dim)


def test_last_stride_one_doubles_the_final_map():
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        stride2 = resnet18(last_stride=2).eval()(images)
        stride1 = resnet18(last_stride=1).eval()(images)
    assert stride2.shape == (1, 512, 2, 2)
    assert stride1.shape == (1, 512, 4, 4)


def test_stem_relu_switch_changes_the_output():
    images = torch.randn(2, 3, 64, 64)
    torch.manual_seed(0)
    without_relu = build_model(_cfg(STEM_RELU=False), NUM_CLASSES).eval()
    torch.manual_seed(0)
    with_relu = build_model(_cfg(STEM_RELU=True), NUM_CLASSES).eval()
    with torch.no_grad():
        assert torch.equal(without_relu.base.conv1.weight, with_relu.base.conv1.weight)
        assert not torch.allclose(without_relu(images), with_relu(images))


def test_state_dict_keys_are_bot_keys_when_feature_level_is_off():
    model = build_model(_cfg("resnet50"), NUM_CLASSES)
    backbone_keys = {f"base.{key}" for key in tv_resnet50().state_dict() if not key.startswith("fc.")}
    neck_keys = {f"bottleneck.{key}" for key in
                 ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert set(model.state_dict()) == backbone_keys | neck_keys | {"classifier.weight"}
    assert model.feature_disentangler is None


def test_bnneck_bias_is_frozen_and_classifier_has_no_bias():
    model = build_model(_cfg(), NUM_CLASSES)
    assert model.bottleneck.bias.requires_grad is False
    assert model.bottleneck.weight.requires_grad is True
    assert model.classifier.bias is None


def test_eval_feature_is_after_or_before_the_neck():
    torch.manual_seed(0)
    cfg = _cfg()
    model = build_model(cfg, NUM_CLASSES)
    with torch.no_grad():
        model.bottleneck.running_mean.fill_(0.5)
        model.bottleneck.running_var.fill_(4.0)
    images = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        after = model(images)
        model.neck_feat = "before"
        before = model(images)
    assert torch.allclose(after, (before - 0.5) / torch.sqrt(torch.tensor(4.0 + 1e-5)), atol=1e-6)


def test_neck_no_has_no_bottleneck():
    model = build_model(_cfg(NECK="no"), NUM_CLASSES)
    assert model.bottleneck is None
    assert not any(key.startswith("bottleneck.") for key in model.state_dict())
    outputs = model.train()(torch.randn(2, 3, 64, 64))
    assert outputs["cls_score"].shape == (2, NUM_CLASSES)


def test_feature_level_adds_the_disentangler_and_keeps_the_baseline_init():
    cfg = _cfg()
    torch.manual_seed(0)
    baseline = build_model(cfg, NUM_CLASSES)
    cfg.DISENTANGLE.FEATURE.ENABLED = True
    torch.manual_seed(0)
    model = build_model(cfg, NUM_CLASSES)
    extra = set(model.state_dict()) - set(baseline.state_dict())
    assert extra and all(key.startswith("feature_disentangler.") for key in extra)
    for key, value in baseline.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    images = torch.randn(4, 3, 64, 64)
    outputs = model.train()(images)
    assert set(outputs) == {"cls_score", "feat", "global_feat", "redundant_feat", "mu", "logvar"}
    assert outputs["mu"].shape == outputs["logvar"].shape == (4, cfg.DISENTANGLE.FEATURE.LATENT_DIM)
    assert torch.allclose(outputs["feat"], outputs["global_feat"] - outputs["redundant_feat"])
    model.eval()
    with torch.no_grad():
        global_feat = model.gap(model.base(images)).flatten(1)
        redundant, _, _ = model.feature_disentangler(global_feat)
        expected = model.bottleneck(global_feat - redundant)
        assert torch.allclose(model(images), expected, atol=1e-6)


def test_imagenet_weights_load_without_fc(tmp_path):
    torch.manual_seed(0)
    reference = tv_resnet18()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(reference.state_dict(), path)
    backbone = resnet18()
    load_imagenet_weights(backbone, str(path))
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key


def test_imagenet_weights_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(UserError) as error:
        load_imagenet_weights(resnet18(), str(tmp_path / "absent.pth"))
    message = str(error.value)
    assert "MODEL.PRETRAIN_PATH" in message
    assert "resnet18-f37072fd.pth" in message
    assert "MODEL.PRETRAIN_CHOICE none" in message


def test_imagenet_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(tv_resnet50().state_dict(), path)
    with pytest.raises(UserError, match=r"not torchvision's ImageNet resnet18.*layer1\.0\.conv1\.weight"):
        load_imagenet_weights(resnet18(), str(path))
