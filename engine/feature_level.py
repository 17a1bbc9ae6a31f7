"""Training extension of the feature level: its losses and C_red's own step.

The model holds G (modeling.feature_disentangler.FeatureDisentangler) and
returns G(f), mu and logvar; this extension adds L_frec, L_kl and L_conf to
the main step and owns C_red, the adversary that tries to read the identity
from G(f). C_red is trained here, with cross-entropy on the detached G(f) of
the same batch and its own Adam, after the main step; keeping it out of the
model keeps the model's state dict free of training-only weights.

At each epoch's end the log says how often C_red named the identity from
G(f) during the epoch, each batch judged before C_red learns from it: near
chance means G(f) holds little identity, which is what L_conf aims at.
"""
import logging

import torch
import torch.nn.functional as F

from config import ConfigError
from layers.feature_disentangle_loss import FeatureDisentangleLoss
from modeling.feature_disentangler import RedundantClassifier

from .extensions import TrainingExtension

logger = logging.getLogger("jifd.train.feature_level")


def _check_cfg(cfg):
    feature_cfg = cfg.DISENTANGLE.FEATURE
    for key in ("W_FREC", "W_KL", "W_CONF", "CLASSIFIER_LR"):
        value = feature_cfg[key]
        if value < 0:
            raise ConfigError(f"DISENTANGLE.FEATURE.{key} = {value} must be >= 0")


class FeatureLevelExtension(TrainingExtension):
    """L_frec ("feat_rec"), L_kl ("feat_kl"), L_conf ("feat_conf") and C_red's step."""

    def __init__(self, cfg, num_classes, feat_dim, device):
        _check_cfg(cfg)
        feature_cfg = cfg.DISENTANGLE.FEATURE
        self.criterion = FeatureDisentangleLoss(
            feature_cfg.W_FREC, feature_cfg.W_KL, feature_cfg.W_CONF)
        self.classifier = RedundantClassifier(feat_dim, num_classes).to(device)
        lr = feature_cfg.CLASSIFIER_LR or cfg.SOLVER.BASE_LR
        self.optimizer = torch.optim.Adam(self.classifier.parameters(), lr=lr)
        self.num_classes = num_classes
        self._redundant = None
        self._pids = None
        self._correct = 0
        self._seen = 0

    def compute_losses(self, batch, outputs, model, reid_loss):
        losses = self.criterion(
            outputs["global_feat"], outputs["redundant_feat"],
            outputs["mu"], outputs["logvar"], self.classifier)
        if self.criterion.w_conf:
            self._redundant = outputs["redundant_feat"].detach()
            self._pids = batch["pids"]
        return losses

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, scaler):
        """C_red's own cross-entropy step on the G(f) kept by compute_losses."""
        if self._redundant is None:
            return
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.classifier(self._redundant.float())
        loss = F.cross_entropy(logits, self._pids)
        scaler.scale(loss).backward()
        scaler.step(self.optimizer)
        # A tensor sum, read once per epoch, so that CUDA is not synchronised every step.
        self._correct = self._correct + (logits.detach().argmax(dim=1) == self._pids).sum()
        self._seen += self._pids.numel()
        self._redundant = None
        self._pids = None

    def on_epoch_end(self, epoch, output_dir, batch):
        """Log and return C_red's training accuracy on G(f) over the epoch (None without L_conf)."""
        if not self._seen:
            return None
        accuracy = float(self._correct) / self._seen
        logger.info("epoch %d: C_red named the identity from G(f) in %.1f%% of %d images (chance %.1f%%)",
                    epoch, 100 * accuracy, self._seen, 100 / self.num_classes)
        self._correct = 0
        self._seen = 0
        return accuracy

    def modules(self):
        return [self.classifier]

    def state_dict(self):
        return {"classifier": self.classifier.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict):
        self.classifier.load_state_dict(state_dict["classifier"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
