"""ID loss: cross-entropy, optionally with label smoothing (Szegedy et al.)."""
import torch.nn.functional as F
from torch import nn


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against (1 - eps) * one_hot + eps / num_classes; eps 0 is plain CE.

    This is BoT's smoothed target, which equals PyTorch's ``label_smoothing``.
    """

    def __init__(self, epsilon=0.1):
        super().__init__()
        self.epsilon = epsilon

    def forward(self, logits, targets):
        # float32: the log-softmax of fp16 logits loses the small smoothed terms.
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.epsilon)
