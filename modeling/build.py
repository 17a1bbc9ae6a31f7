"""build_model(cfg, num_classes): the configured network with its initial weights."""
from config import ConfigError
from modeling.backbones import ResNet, load_imagenet_weights, resnet18, resnet34, resnet50
from modeling.baseline import Baseline
from modeling.mixstyle import MixStyle
from modeling.weight_loading import load_reid_weights

BACKBONES = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
}

PRETRAIN_LOADERS = {
    "imagenet": lambda model, path: load_imagenet_weights(model.base, path),
    "self": lambda model, path: load_reid_weights(model, path, config_key="MODEL.PRETRAIN_PATH"),
    "none": lambda model, path: None,
}


def _mixstyle_layers(mixstyle_cfg):
    if not mixstyle_cfg.ENABLED:
        return None
    unknown = [name for name in mixstyle_cfg.LAYERS if name not in ResNet.STAGES]
    if unknown or not mixstyle_cfg.LAYERS:
        raise ConfigError(f"MODEL.MIXSTYLE.LAYERS = {list(mixstyle_cfg.LAYERS)}: name one or more of "
                          f"{', '.join(ResNet.STAGES)}")
    if not 0 <= mixstyle_cfg.P <= 1 or mixstyle_cfg.ALPHA <= 0:
        raise ConfigError(f"MODEL.MIXSTYLE: P = {mixstyle_cfg.P} must be in [0, 1] and ALPHA = "
                          f"{mixstyle_cfg.ALPHA} positive")
    return {name: MixStyle(mixstyle_cfg.P, mixstyle_cfg.ALPHA, mixstyle_cfg.MIX) for name in mixstyle_cfg.LAYERS}


def build_model(cfg, num_classes):
    """Baseline for ``num_classes`` training identities, initialised per MODEL.PRETRAIN_CHOICE."""
    model_cfg = cfg.MODEL
    if model_cfg.NAME not in BACKBONES:
        raise ConfigError(f"MODEL.NAME = {model_cfg.NAME!r} is not one of {', '.join(BACKBONES)}")
    if model_cfg.PRETRAIN_CHOICE not in PRETRAIN_LOADERS:
        raise ConfigError(f"MODEL.PRETRAIN_CHOICE = {model_cfg.PRETRAIN_CHOICE!r} is not one of "
                          f"{', '.join(PRETRAIN_LOADERS)}")
    backbone = BACKBONES[model_cfg.NAME](last_stride=model_cfg.LAST_STRIDE, stem_relu=model_cfg.STEM_RELU,
                                         mixstyle=_mixstyle_layers(model_cfg.MIXSTYLE))
    feature_cfg = cfg.DISENTANGLE.FEATURE
    disentangler_dims = (feature_cfg.HIDDEN_DIM, feature_cfg.LATENT_DIM) if feature_cfg.ENABLED else None
    model = Baseline(backbone, num_classes, neck=model_cfg.NECK, neck_feat=cfg.TEST.NECK_FEAT,
                     disentangler_dims=disentangler_dims)
    PRETRAIN_LOADERS[model_cfg.PRETRAIN_CHOICE](model, model_cfg.PRETRAIN_PATH)
    return model
