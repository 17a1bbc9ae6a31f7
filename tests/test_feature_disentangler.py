import functools
import math
from types import SimpleNamespace

import pytest
import torch
import torchvision

from config import ConfigError, get_default_cfg
from engine.extensions import build_extensions
from engine.feature_level import FeatureLevelExtension
from engine.runtime import DeviceSetup
from engine.train_step import TrainStep
from layers import make_loss
from layers.feature_disentangle_loss import (
    class_confusion_loss, feature_reconstruction_loss, kl_to_standard_normal)
from modeling import build_model
from modeling.feature_disentangler import FeatureDisentangler, RedundantClassifier
from modeling.weight_loading import load_reid_weights
from solver import make_center_optimizer, make_optimizer

IN_DIM, NUM_CLASSES, BATCH = 16, 5, 8


def _disentangler():
    torch.manual_seed(0)
    module = FeatureDisentangler(IN_DIM, hidden_dim=12, latent_dim=4)
    # The last layer starts at zero (r = f); give it weights so G(f) is not trivially 0.
    torch.nn.init.normal_(module.decoder[-1].weight, std=0.5)
    torch.nn.init.normal_(module.decoder[-1].bias, std=0.5)
    return module


def _extension(**weights):
    cfg = get_default_cfg()
    for key, value in weights.items():
        cfg.DISENTANGLE.FEATURE[key] = value
    return FeatureLevelExtension(cfg, NUM_CLASSES, IN_DIM, torch.device("cpu"))


def _outputs(module, f):
    redundant, mu, logvar = module(f)
    return {"global_feat": f, "feat": f - redundant, "redundant_feat": redundant,
            "mu": mu, "logvar": logvar}


def _batch():
    return {"pids": torch.arange(BATCH) % NUM_CLASSES}


def _scaler():
    return torch.amp.GradScaler("cpu", enabled=False)


def test_shapes_and_r_plus_redundant_is_f():
    module = _disentangler().train()
    f = torch.randn(BATCH, IN_DIM)
    redundant, mu, logvar = module(f)
    assert redundant.shape == (BATCH, IN_DIM)
    assert mu.shape == logvar.shape == (BATCH, 4)
    r = f - redundant
    assert redundant.abs().mean() > 0.1
    torch.testing.assert_close(r + redundant, f)


def test_fresh_disentangler_leaves_f_unchanged():
    torch.manual_seed(0)
    module = FeatureDisentangler(IN_DIM, hidden_dim=12, latent_dim=4).train()
    f = torch.randn(BATCH, IN_DIM)
    redundant, _, _ = module(f)
    assert torch.equal(redundant, torch.zeros_like(f))


def test_train_samples_latent_and_eval_uses_mu():
    module = _disentangler()
    f = torch.randn(BATCH, IN_DIM)
    module.train()
    first, _, _ = module(f)
    second, _, _ = module(f)
    assert (first - second).abs().max() > 1e-3
    module.eval()
    with torch.no_grad():
        first, mu, _ = module(f)
        second, _, _ = module(f)
        assert torch.equal(first, second)
        torch.testing.assert_close(first, module.decoder(mu))


def test_kl_matches_hand_computed_value():
    mu = torch.tensor([[1.0, 0.0], [0.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # Per unit 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2):
    # 0.5, 0.5 * (1 - ln 2), 0, 2; mean over the four units.
    expected = (0.5 + 0.5 * (1.0 - math.log(2.0)) + 0.0 + 2.0) / 4
    assert kl_to_standard_normal(mu, logvar).item() == pytest.approx(expected, rel=1e-6)
    assert kl_to_standard_normal(torch.zeros(3, 2), torch.zeros(3, 2)).item() == 0.0


def test_reconstruction_loss_value_and_fixed_target():
    redundant = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    feature = torch.tensor([[0.0, 0.0], [1.0, 3.0]], requires_grad=True)
    loss = feature_reconstruction_loss(redundant, feature)
    assert loss.item() == pytest.approx((1 + 4 + 1 + 9) / 4)
    loss.backward()
    assert feature.grad is None
    torch.testing.assert_close(redundant.grad, torch.tensor([[0.5, 1.0], [-0.5, -1.5]]))


def test_confusion_loss_is_log_classes_at_uniform_prediction():
    classifier = RedundantClassifier(IN_DIM, NUM_CLASSES)
    torch.nn.init.zeros_(classifier.weight)
    torch.nn.init.zeros_(classifier.bias)
    loss = class_confusion_loss(torch.randn(BATCH, IN_DIM), classifier)
    assert loss.item() == pytest.approx(math.log(NUM_CLASSES), rel=1e-6)


def test_main_step_moves_g_but_not_c_red():
    module = _disentangler().train()
    extension = _extension()
    f = torch.randn(BATCH, IN_DIM)
    losses = extension.compute_losses(_batch(), _outputs(module, f), None, None)
    assert list(losses) == ["feat_rec", "feat_kl", "feat_conf"]
    module.zero_grad()
    losses["feat_conf"].backward()
    assert module.encoder[0].weight.grad.abs().sum() > 0
    assert module.decoder[-1].weight.grad.abs().sum() > 0
    assert extension.classifier.weight.grad is None
    assert extension.classifier.bias.grad is None


def test_weights_scale_terms():
    module = _disentangler().train()
    outputs = _outputs(module, torch.randn(BATCH, IN_DIM))
    unit = _extension(W_FREC=1.0, W_KL=1.0, W_CONF=1.0)
    scaled = _extension(W_FREC=2.0, W_KL=0.5, W_CONF=3.0)
    scaled.classifier.load_state_dict(unit.classifier.state_dict())
    unit_losses = unit.compute_losses(_batch(), outputs, None, None)
    scaled_losses = scaled.compute_losses(_batch(), outputs, None, None)
    for name, weight in (("feat_rec", 2.0), ("feat_kl", 0.5), ("feat_conf", 3.0)):
        torch.testing.assert_close(scaled_losses[name], weight * unit_losses[name])


def test_c_red_step_changes_only_c_red_and_learns():
    # eval, with BN statistics of this batch: a fixed, spread-out G(f) per sample,
    # so that C_red has something to learn in 20 steps.
    module = _disentangler()
    f = torch.randn(BATCH, IN_DIM)
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm1d):
            layer.momentum = None
    with torch.no_grad():
        module(f)
    module.eval()
    extension = _extension(CLASSIFIER_LR=0.05)
    pids = _batch()["pids"]
    model_before = {k: v.clone() for k, v in module.state_dict().items()}
    c_red_before = {k: v.clone() for k, v in extension.classifier.state_dict().items()}
    ce_first = ce_last = None
    for _ in range(20):
        extension.zero_grad()
        module.zero_grad()
        outputs = _outputs(module, f)
        extension.compute_losses(_batch(), outputs, None, None)
        with torch.no_grad():
            ce = torch.nn.functional.cross_entropy(
                extension.classifier(outputs["redundant_feat"]), pids).item()
        ce_first = ce if ce_first is None else ce_first
        ce_last = ce
        extension.step(_scaler())
        for param in module.parameters():
            assert param.grad is None
    for key, value in module.state_dict().items():
        assert torch.equal(value, model_before[key]), key
    for key, value in extension.classifier.state_dict().items():
        assert not torch.equal(value, c_red_before[key]), key
    assert ce_last < 0.5 * ce_first
    accuracy = extension.on_epoch_end(1, "", None)
    assert 1.0 / NUM_CLASSES < accuracy <= 1.0
    assert extension.on_epoch_end(2, "", None) is None


def test_weight_zero_removes_term_and_its_cost():
    module = _disentangler().train()
    f = torch.randn(BATCH, IN_DIM)
    outputs = _outputs(module, f)
    for key, name in (("W_FREC", "feat_rec"), ("W_KL", "feat_kl"), ("W_CONF", "feat_conf")):
        losses = _extension(**{key: 0.0}).compute_losses(_batch(), outputs, None, None)
        assert name not in losses
        assert len(losses) == 2

    extension = _extension(W_CONF=0.0)
    calls = []
    extension.classifier.register_forward_hook(lambda *args: calls.append(1))
    before = {k: v.clone() for k, v in extension.classifier.state_dict().items()}
    extension.compute_losses(_batch(), outputs, None, None)
    extension.step(_scaler())
    assert calls == []
    assert extension.on_epoch_end(1, "", None) is None
    for key, value in extension.classifier.state_dict().items():
        assert torch.equal(value, before[key])


def test_state_dict_round_trip():
    module = _disentangler().train()
    extension = _extension()
    extension.compute_losses(_batch(), _outputs(module, torch.randn(BATCH, IN_DIM)), None, None)
    extension.step(_scaler())
    restored = _extension()
    restored.load_state_dict(extension.state_dict())
    for key, value in extension.classifier.state_dict().items():
        assert torch.equal(value, restored.classifier.state_dict()[key])
    assert restored.optimizer.state_dict()["state"].keys() == extension.optimizer.state_dict()["state"].keys()
    assert len(restored.optimizer.state_dict()["state"]) == 2


def test_classifier_lr_defaults_to_base_lr():
    assert _extension().optimizer.param_groups[0]["lr"] == get_default_cfg().SOLVER.BASE_LR
    assert _extension(CLASSIFIER_LR=0.01).optimizer.param_groups[0]["lr"] == 0.01


def test_negative_weight_is_a_config_error():
    with pytest.raises(ConfigError, match="DISENTANGLE.FEATURE.W_KL"):
        _extension(W_KL=-0.1)


# ---- through the model (modeling.build_model) and the trainer's step ----

MODEL_CLASSES = 4


def _model_cfg(feature=False):
    cfg = get_default_cfg()
    cfg.merge_from_list([
        "MODEL.NAME", "resnet18", "MODEL.PRETRAIN_CHOICE", "none", "MODEL.DEVICE", "cpu",
        "SOLVER.AMP", "off", "DISENTANGLE.IMAGE.ENABLED", False,
        "DISENTANGLE.FEATURE.ENABLED", feature,
        "DISENTANGLE.FEATURE.HIDDEN_DIM", 32, "DISENTANGLE.FEATURE.LATENT_DIM", 8,
    ])
    return cfg


def _train_batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    pids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    return {"images": torch.randn(8, 3, 32, 32, generator=generator), "pids": pids,
            "camids": torch.zeros(8, dtype=torch.long), "domains": torch.zeros(8, dtype=torch.long)}


class _BoTReference(torch.nn.Module):
    """reid-strong-baseline's Baseline written out independently: ResNet trunk with
    no stem ReLU and last stride 1 -> GAP -> BNNeck (frozen bias) -> bias-free
    classifier initialised N(0, 0.001^2)."""

    def __init__(self, num_classes):
        super().__init__()
        self.base = torchvision.models.resnet18(weights=None)
        del self.base.fc
        self.base.layer4[0].conv1.stride = (1, 1)
        self.base.layer4[0].downsample[0].stride = (1, 1)
        self.bottleneck = torch.nn.BatchNorm1d(512)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier = torch.nn.Linear(512, num_classes, bias=False)
        torch.nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x):
        base = self.base
        x = base.maxpool(base.bn1(base.conv1(x)))
        x = base.layer4(base.layer3(base.layer2(base.layer1(x))))
        global_feat = x.mean(dim=(2, 3))
        return self.classifier(self.bottleneck(global_feat)), global_feat


@functools.cache
def _bot_keys():
    """BoT's state-dict keys of a resnet18 model (a frozenset: built once)."""
    base = {f"base.{k}" for k in torchvision.models.resnet18(weights=None).state_dict() if not k.startswith("fc.")}
    neck = {f"bottleneck.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    return frozenset(base | neck | {"classifier.weight"})


def test_switches_off_gives_bot_state_dict_keys():
    model = build_model(_model_cfg(feature=False), MODEL_CLASSES)
    assert set(model.state_dict()) == _bot_keys()
    assert not any("feature_disentangler" in name for name, _ in model.named_modules())


def test_feature_level_adds_only_feature_disentangler_keys_and_keeps_bot_init():

    torch.manual_seed(3)
    plain = build_model(_model_cfg(feature=False), MODEL_CLASSES).state_dict()
    torch.manual_seed(3)
    model = build_model(_model_cfg(feature=True), MODEL_CLASSES)
    state = model.state_dict()
    extra = set(state) - _bot_keys()
    assert _bot_keys() <= set(state)
    assert extra == {f"feature_disentangler.{k}" for k in FeatureDisentangler(512, 32, 8).state_dict()}
    assert state["feature_disentangler.mu.weight"].shape == (8, 32)
    assert state["feature_disentangler.decoder.3.weight"].shape == (512, 32)
    for key in _bot_keys():
        assert torch.equal(state[key], plain[key]), key


def test_model_outputs_r_plus_redundant_equals_f_and_eval_feature_is_r():

    torch.manual_seed(0)
    cfg = _model_cfg(feature=True)
    cfg.TEST.NECK_FEAT = "before"
    model = build_model(cfg, MODEL_CLASSES)
    torch.nn.init.normal_(model.feature_disentangler.decoder[-1].weight, std=0.1)
    images = _train_batch()["images"]
    model.train()
    out = model(images)
    assert set(out) == {"cls_score", "feat", "global_feat", "redundant_feat", "mu", "logvar"}
    assert out["redundant_feat"].abs().mean() > 1e-2
    torch.testing.assert_close(out["feat"] + out["redundant_feat"], out["global_feat"])
    model.eval()
    with torch.no_grad():
        test_feat = model(images)
        f = model.base(images).mean(dim=(2, 3))
        redundant, _, _ = model.feature_disentangler(f)
        torch.testing.assert_close(test_feat, f - redundant)
        torch.testing.assert_close(model(images), test_feat)


def test_switches_off_trains_exactly_like_bot():

    cfg = _model_cfg(feature=False)
    weight = cfg.SOLVER.CENTER_LOSS_WEIGHT
    batches = [_train_batch(seed) for seed in range(3)]

    torch.manual_seed(0)
    model = build_model(cfg, MODEL_CLASSES)
    reid_loss = make_loss(cfg, MODEL_CLASSES)
    data = SimpleNamespace(num_classes=MODEL_CLASSES, num_domains=1)
    extensions = build_extensions(cfg, data, model, reid_loss, torch.device("cpu"), total_iters=10)
    assert len(extensions) == 0
    step = TrainStep(model, reid_loss, make_optimizer(cfg, model),
                     make_center_optimizer(cfg, reid_loss.center_criterion),
                     DeviceSetup(device=torch.device("cpu")), extensions.values(), center_loss_weight=weight)
    jifd_logs = [step(None, batch) for batch in batches]

    torch.manual_seed(0)
    reference = _BoTReference(MODEL_CLASSES)
    reference_loss = make_loss(cfg, MODEL_CLASSES)
    optimizer = make_optimizer(cfg, reference)
    center_optimizer = make_center_optimizer(cfg, reference_loss.center_criterion)
    reference.train()
    reference_logs = []
    for batch in batches:
        optimizer.zero_grad()
        center_optimizer.zero_grad()
        score, feat = reference(batch["images"])
        terms = reference_loss({"cls_score": score, "feat": feat}, batch["pids"])
        total = sum(terms.values())
        total.backward()
        optimizer.step()
        for param in reference_loss.center_criterion.parameters():
            param.grad.mul_(1.0 / weight)
        center_optimizer.step()
        reference_logs.append({**{k: v.item() for k, v in terms.items()}, "loss": total.item()})

    assert list(jifd_logs[0]) == ["id", "triplet", "center", "loss", "acc"]
    for ours, theirs in zip(jifd_logs, reference_logs):
        for name, value in theirs.items():
            assert ours[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert jifd_logs[2]["loss"] != jifd_logs[0]["loss"]


def test_feature_level_train_step_logs_its_terms_and_steps_c_red():

    torch.manual_seed(0)
    cfg = _model_cfg(feature=True)
    cfg.MODEL.METRIC_LOSS_TYPE = "triplet"
    model = build_model(cfg, MODEL_CLASSES)
    reid_loss = make_loss(cfg, MODEL_CLASSES)
    data = SimpleNamespace(num_classes=MODEL_CLASSES, num_domains=1)
    extensions = build_extensions(cfg, data, model, reid_loss, torch.device("cpu"), total_iters=10)
    extension = extensions["feature_level"]
    assert isinstance(extension, FeatureLevelExtension)
    assert extension.classifier.weight.shape == (MODEL_CLASSES, 512)
    # G(f) is 0 in the first step (zero-initialised decoder output), so only C_red's bias can move.
    c_red_before = extension.classifier.bias.clone()
    g_before = model.feature_disentangler.decoder[-1].weight.clone()
    step = TrainStep(model, reid_loss, make_optimizer(cfg, model), None,
                     DeviceSetup(device=torch.device("cpu")), extensions.values())
    logs = step(None, _train_batch())
    assert list(logs) == ["id", "triplet", "feat_rec", "feat_kl", "feat_conf", "loss", "acc"]
    assert logs["loss"] == pytest.approx(sum(logs[k] for k in list(logs)[:5]), rel=1e-5)
    assert not torch.equal(extension.classifier.bias, c_red_before)
    assert not torch.equal(model.feature_disentangler.decoder[-1].weight, g_before)
    # C_red lives in the extension: the model holds BoT's keys and G's, nothing else.
    assert all(key in _bot_keys() or key.startswith("feature_disentangler.") for key in model.state_dict())


def test_checkpoint_restores_feature_disentangler(tmp_path):

    torch.manual_seed(0)
    trained = build_model(_model_cfg(feature=True), MODEL_CLASSES)
    torch.nn.init.normal_(trained.feature_disentangler.decoder[-1].weight)
    path = tmp_path / "model_final.pth"
    torch.save(trained.state_dict(), path)
    torch.manual_seed(1)
    fresh = build_model(_model_cfg(feature=True), MODEL_CLASSES)
    report = load_reid_weights(fresh, str(path))
    assert report["missing"] == [] and report["unexpected"] == []
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
