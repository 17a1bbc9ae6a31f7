"""Triplet loss with batch-hard mining (Hermans et al., 2017), as in BoT."""
import torch
import torch.nn.functional as F
from torch import nn


def euclidean_dist(x, y):
    """Pairwise Euclidean distances; the clamp keeps the sqrt's gradient finite at 0."""
    dist = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1, keepdim=True).t()
    dist.addmm_(x, y.t(), beta=1, alpha=-2)
    return dist.clamp(min=1e-12).sqrt()


def hard_example_mining(dist, labels):
    """Per anchor: the farthest positive (itself included) and the nearest negative."""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    dist_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
    dist_an = dist.masked_fill(same, float("inf")).min(dim=1).values
    return dist_ap, dist_an


class TripletLoss(nn.Module):
    """mean(max(0, d_ap - d_an + margin)), or mean(log(1 + exp(d_ap - d_an))) with a soft margin.

    An anchor without a negative in the batch (d_an = inf) adds 0.
    """

    def __init__(self, margin=0.3, soft_margin=False):
        super().__init__()
        self.margin = margin
        self.soft_margin = soft_margin

    def forward(self, features, labels):
        # Distances in float32 even under autocast: fp16 loses the small gaps the margin acts on.
        with torch.autocast(features.device.type, enabled=False):
            features = features.float()
            dist_ap, dist_an = hard_example_mining(euclidean_dist(features, features), labels)
        if self.soft_margin:
            return F.softplus(dist_ap - dist_an).mean()
        return F.relu(dist_ap - dist_an + self.margin).mean()
