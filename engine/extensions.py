"""The JIFD training extensions a config switches on, by name.

An extension adds named loss terms to the trainer's single backward pass and
steps its own optimisers (see engine/train_step.py): compute_losses,
zero_grad, step, train, modules (the networks it trains), state_dict /
load_state_dict, plus warm_up (before the first epoch of a fresh run) and
on_epoch_end (pictures, logs). With both switches off
the list is empty and training is exactly the Bag-of-Tricks baseline.
"""
from collections import OrderedDict


def _image_level(cfg, data, model, reid_loss, device, total_iters):
    from .image_level import ImageLevelExtension

    return ImageLevelExtension(cfg, data.num_domains, device, model, reid_loss, total_iters, data.train_records)


def _feature_level(cfg, data, model, reid_loss, device, total_iters):
    from .feature_level import FeatureLevelExtension

    return FeatureLevelExtension(cfg, data.num_classes, model.in_planes, device)


# name -> (is it switched on, builder); the name is also its key in checkpoints.
EXTENSIONS = OrderedDict(
    image_level=(lambda cfg: cfg.DISENTANGLE.IMAGE.ENABLED, _image_level),
    feature_level=(lambda cfg: cfg.DISENTANGLE.FEATURE.ENABLED, _feature_level),
)


def build_extensions(cfg, data, model, reid_loss, device, total_iters):
    """The switched-on extensions by name; ``total_iters``: the run's training iterations."""
    return OrderedDict((name, build(cfg, data, model, reid_loss, device, total_iters))
                       for name, (enabled, build) in EXTENSIONS.items() if enabled(cfg))
