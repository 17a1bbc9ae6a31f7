"""The re-ID objective of the baseline as named, weighted terms."""
from collections import OrderedDict

from torch import nn


class ReIDLoss(nn.Module):
    """``(outputs, pids) -> OrderedDict`` of weighted terms: "id", and "triplet" / "center" when set.

    The ID loss reads ``outputs["cls_score"]``; triplet and center losses read
    ``outputs["feat"]``, the feature before the BNNeck. The center loss is
    multiplied by ``center_weight`` here; ``center_criterion`` holds the
    centers, which the trainer steps with their own optimiser.
    """

    def __init__(self, id_criterion, triplet_criterion=None, center_criterion=None, center_weight=0.0):
        super().__init__()
        self.id_criterion = id_criterion
        self.triplet_criterion = triplet_criterion
        self.center_criterion = center_criterion
        self.center_weight = center_weight

    def forward(self, outputs, pids):
        losses = OrderedDict(id=self.id_criterion(outputs["cls_score"], pids))
        if self.triplet_criterion is not None:
            losses["triplet"] = self.triplet_criterion(outputs["feat"], pids)
        if self.center_criterion is not None:
            losses["center"] = self.center_weight * self.center_criterion(outputs["feat"], pids)
        return losses
