"""Center loss (Wen et al., ECCV 2016): pulls each feature to its identity's center."""
import torch
from torch import nn


class CenterLoss(nn.Module):
    """mean over the batch of ||x_i - c_{y_i}||^2; the centers are this module's parameter."""

    def __init__(self, num_classes, feat_dim):
        super().__init__()
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features, labels):
        diff = features.float() - self.centers[labels]
        # BoT's clamp: bounds each distance, so one outlier cannot blow up the step.
        return diff.pow(2).sum(dim=1).clamp(min=1e-12, max=1e12).mean()
