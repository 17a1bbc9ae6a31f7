"""Bag-of-Tricks checkpoints, in every layout they circulate in, give BoT's features.

The reference is written here independently of modeling/: torchvision's
ResNet-50 with last stride 1, run without the stem ReLU as BoT's ResNet is,
then global average pooling and the BNNeck.
"""
import pytest
import torch
from torch import nn
from torchvision.models import resnet18 as tv_resnet18
from torchvision.models import resnet50 as tv_resnet50

from config import get_default_cfg
from modeling import build_model
from modeling.weight_loading import load_reid_weights
from utils.errors import UserError

FILE_CLASSES = 7
MODEL_CLASSES = 4


class ReferenceBoT(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.base = tv_resnet50()
        del self.base.fc
        self.base.layer4[0].conv2.stride = (1, 1)
        self.base.layer4[0].downsample[0].stride = (1, 1)
        self.bottleneck = nn.BatchNorm1d(2048)
        self.classifier = nn.Linear(2048, num_classes, bias=False)

    def forward(self, x):
        b = self.base
        x = b.maxpool(b.bn1(b.conv1(x)))
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        return self.bottleneck(x.mean(dim=(2, 3)))


def _randomise(model):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                size = module.num_features
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.num_batches_tracked.fill_(123)
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape, generator=generator))


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    model = ReferenceBoT(FILE_CLASSES)
    _randomise(model)
    model.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model(images)
    return model.state_dict(), images, features


@pytest.fixture(scope="module")
def target_model():
    cfg = get_default_cfg()
    cfg.MODEL.NAME = "resnet50"
    cfg.MODEL.PRETRAIN_CHOICE = "none"
    return build_model(cfg, MODEL_CLASSES)


LAYOUTS = {
    "plain": lambda sd: sd,
    "dataparallel": lambda sd: {f"module.{key}": value for key, value in sd.items()},
    "ignite_checkpoint": lambda sd: {"model": sd, "optimizer": {"state": {}, "param_groups": []},
                                     "trainer": {"epoch": 3, "epoch_length": 10}},
    "state_dict_entry": lambda sd: {"state_dict": sd, "epoch": 120},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_gives_the_reference_features(layout, reference, target_model, tmp_path):
    state_dict, images, features = reference
    path = tmp_path / f"{layout}.pth"
    torch.save(LAYOUTS[layout](state_dict), path)
    with torch.no_grad():
        for value in target_model.state_dict().values():
            value.zero_()  # nothing left over from a previous layout can pass for a load
    report = load_reid_weights(target_model, str(path))
    assert report == {"missing": [], "unexpected": [], "skipped_shape": ["classifier.weight"]}
    target_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(target_model(images), features, atol=1e-5, rtol=0)


def test_missing_and_unexpected_keys_are_reported(reference, target_model, tmp_path, caplog):
    state_dict = dict(reference[0])
    del state_dict["bottleneck.num_batches_tracked"]
    state_dict["classifier.bias"] = torch.zeros(FILE_CLASSES)
    path = tmp_path / "old_bot.pth"
    torch.save(state_dict, path)
    with caplog.at_level("INFO", logger="jifd.model"):
        report = load_reid_weights(target_model, str(path))
    assert report["missing"] == ["bottleneck.num_batches_tracked"]
    assert report["unexpected"] == ["classifier.bias"]
    assert "bottleneck.num_batches_tracked" in caplog.text and "classifier.bias" in caplog.text


def test_checkpoint_of_another_architecture_is_refused_clearly(target_model, tmp_path):
    backbone = tv_resnet18().state_dict()
    state_dict = {f"base.{key}": value for key, value in backbone.items() if not key.startswith("fc.")}
    state_dict["classifier.weight"] = torch.zeros(FILE_CLASSES, 512)
    path = tmp_path / "resnet18_bot.pth"
    torch.save(state_dict, path)
    with pytest.raises(UserError) as error:
        load_reid_weights(target_model, str(path), config_key="TEST.WEIGHT")
    message = str(error.value)
    assert "TEST.WEIGHT" in message and "MODEL.NAME" in message
    assert "base.layer1.0.conv1.weight" in message
    assert "(64, 64, 3, 3)" in message and "(64, 64, 1, 1)" in message


def test_file_without_backbone_keys_is_refused(target_model, tmp_path):
    path = tmp_path / "imagenet_like.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 2048)}, path)
    with pytest.raises(UserError, match=r"no backbone keys \(base\.\*\).*PRETRAIN_CHOICE imagenet"):
        load_reid_weights(target_model, str(path))


def test_pickled_whole_model_is_refused_with_conversion_advice(tmp_path, target_model):
    path = tmp_path / "whole_model.pth"
    torch.save(nn.Sequential(nn.Linear(2, 2)), path)
    with pytest.raises(UserError, match=r"pickled Python object.*refused.*state_dict\(\)"):
        load_reid_weights(target_model, str(path))


def test_missing_file_is_a_user_error(tmp_path, target_model):
    with pytest.raises(UserError, match="TEST.WEIGHT"):
        load_reid_weights(target_model, str(tmp_path / "absent.pth"), config_key="TEST.WEIGHT")


def test_pretrain_choice_self_loads_the_checkpoint(reference, tmp_path):
    state_dict, images, features = reference
    path = tmp_path / "bot.pth"
    torch.save(state_dict, path)
    cfg = get_default_cfg()
    cfg.MODEL.PRETRAIN_CHOICE = "self"
    cfg.MODEL.PRETRAIN_PATH = str(path)
    model = build_model(cfg, FILE_CLASSES).eval()
    assert torch.equal(model.classifier.weight, state_dict["classifier.weight"])
    with torch.no_grad():
        torch.testing.assert_close(model(images), features, atol=1e-5, rtol=0)


def _small_model(name, feature_level=False, num_classes=MODEL_CLASSES):
    cfg = get_default_cfg()
    cfg.MODEL.NAME = name
    cfg.MODEL.PRETRAIN_CHOICE = "none"
    cfg.DISENTANGLE.FEATURE.ENABLED = feature_level
    return build_model(cfg, num_classes)


def test_deeper_backbone_of_the_same_width_is_refused(tmp_path):
    # resnet34 and resnet18 share every shape; only the extra blocks tell them apart.
    path = tmp_path / "resnet34_bot.pth"
    torch.save(_small_model("resnet34").state_dict(), path)
    with pytest.raises(UserError, match=r"TEST.WEIGHT.*of its keys are not in the model \(first: base\.layer1\.2\..*"
                                        r"MODEL.NAME"):
        load_reid_weights(_small_model("resnet18"), str(path), config_key="TEST.WEIGHT")


def test_feature_level_mismatch_is_refused_at_test_time_but_fine_tuning_may_start_it(tmp_path):
    with_feature_level, without = tmp_path / "jifd.pth", tmp_path / "bot.pth"
    torch.save(_small_model("resnet18", feature_level=True).state_dict(), with_feature_level)
    torch.save(_small_model("resnet18").state_dict(), without)
    with pytest.raises(UserError, match="FEATURE.ENABLED True"):
        load_reid_weights(_small_model("resnet18"), str(with_feature_level), for_test=True)
    with pytest.raises(UserError, match="FEATURE.ENABLED False"):
        load_reid_weights(_small_model("resnet18", feature_level=True), str(without), for_test=True)
    report = load_reid_weights(_small_model("resnet18", feature_level=True), str(without))
    assert report["missing"] and all(key.startswith("feature_disentangler.") for key in report["missing"])


def test_a_text_file_is_not_called_a_pickled_object(tmp_path, target_model):
    path = tmp_path / "model.pth"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(UserError, match=r"not a PyTorch weights file \(it starts with b'<htm'"):
        load_reid_weights(target_model, str(path))


def test_testing_logs_the_unused_classifier_once_without_blaming_the_identities(tmp_path, caplog):
    path = tmp_path / "own_run.pth"
    torch.save(_small_model("resnet18").state_dict(), path)
    model = _small_model("resnet18", num_classes=1)  # as engine.tester builds it
    with caplog.at_level("DEBUG", logger="jifd.model"):
        report = load_reid_weights(model, str(path), for_test=True)
    about_classifier = [record for record in caplog.records if "classifier" in record.getMessage()]
    assert [(record.levelname, record.getMessage()) for record in about_classifier] == [
        ("INFO", f"not loaded from {path}: classifier.weight (testing does not use the classifier)")]
    assert "identities" not in caplog.text
    assert report == {"missing": [], "unexpected": [], "skipped_shape": []}
