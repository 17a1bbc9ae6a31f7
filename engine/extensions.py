"""The JIFD training extensions: their contract with the trainer, and which ones a config switches on.

An extension adds named loss terms to the trainer's single backward pass and
steps its own optimisers (engine/train_step.py). With both levels off the
list is empty and training is exactly the Bag-of-Tricks baseline.
"""
from abc import ABC, abstractmethod
from collections import OrderedDict


class TrainingExtension(ABC):
    """What the trainer calls, and when.

    Each iteration (TrainStep): ``train()``, ``zero_grad()``, then, inside the
    step's autocast and after the re-ID forward pass, ``compute_losses``; its
    terms join the re-ID terms in one backward; then ``step(scaler)``.
    Before the first epoch of a fresh run: ``warm_up``. After each epoch, on
    the main process: ``on_epoch_end``. ``modules()`` are the networks it
    trains, whose gradients are averaged over processes (DDP does not see
    them); ``state_dict`` goes into every checkpoint under the extension's
    name and ``load_state_dict`` takes it back on resume.
    """

    @abstractmethod
    def modules(self):
        """The torch modules this extension trains."""

    @abstractmethod
    def compute_losses(self, batch, outputs, model, reid_loss):
        """{term name: weighted loss} for ``batch``; ``outputs``: the re-ID model's training outputs."""

    @abstractmethod
    def zero_grad(self):
        """Clear the gradients its optimisers step on."""

    @abstractmethod
    def step(self, scaler):
        """Its optimisers' steps after the main backward (through the GradScaler ``scaler``)."""

    @abstractmethod
    def state_dict(self):
        """Everything a resumed run needs: weights, optimiser states, counters."""

    @abstractmethod
    def load_state_dict(self, state_dict):
        """Restore what ``state_dict`` returned."""

    def warm_up(self, loader, device_setup):
        """Training before the first joint epoch of a fresh run; none by default."""

    def on_epoch_end(self, epoch, output_dir, batch):
        """Pictures or logs at the end of ``epoch`` (``batch``: its last batch); what it wrote, or None."""
        return None

    def train(self, mode=True):
        for module in self.modules():
            module.train(mode)
        return self


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
