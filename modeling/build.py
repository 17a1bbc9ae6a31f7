"""build_model(cfg, num_classes): the configured network with its initial weights."""
from config import ConfigError
from modeling.backbones import load_imagenet_weights, resnet18, resnet34, resnet50
from modeling.baseline import Baseline
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


def build_model(cfg, num_classes):
    """Baseline for ``num_classes`` training identities, initialised per MODEL.PRETRAIN_CHOICE."""
    model_cfg = cfg.MODEL
    if model_cfg.NAME not in BACKBONES:
        raise ConfigError(f"MODEL.NAME = {model_cfg.NAME!r} is not one of {', '.join(BACKBONES)}")
    if model_cfg.PRETRAIN_CHOICE not in PRETRAIN_LOADERS:
        raise ConfigError(f"MODEL.PRETRAIN_CHOICE = {model_cfg.PRETRAIN_CHOICE!r} is not one of "
                          f"{', '.join(PRETRAIN_LOADERS)}")
    backbone = BACKBONES[model_cfg.NAME](last_stride=model_cfg.LAST_STRIDE, stem_relu=model_cfg.STEM_RELU)
    feature_cfg = cfg.DISENTANGLE.FEATURE
    disentangler_dims = (feature_cfg.HIDDEN_DIM, feature_cfg.LATENT_DIM) if feature_cfg.ENABLED else None
    model = Baseline(backbone, num_classes, neck=model_cfg.NECK, neck_feat=cfg.TEST.NECK_FEAT,
                     disentangler_dims=disentangler_dims)
    PRETRAIN_LOADERS[model_cfg.PRETRAIN_CHOICE](model, model_cfg.PRETRAIN_PATH)
    return model
