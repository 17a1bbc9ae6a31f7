"""Gradient reversal (Ganin and Lempitsky, 2015): identity forward, -lambda x gradient backward.

Placed between a feature and an adversarial classifier, it lets one backward
pass train the classifier to read a property (here: the domain) while pushing
the feature's encoder to hide it.
"""
import torch
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.neg() * ctx.scale, None


def reverse_gradient(x, scale=1.0):
    """x unchanged; its gradient multiplied by -scale."""
    return _ReverseGradient.apply(x, scale)


class GradientReversal(nn.Module):
    """Module form of ``reverse_gradient`` with a fixed scale (DISENTANGLE.IMAGE.GRL_LAMBDA)."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return reverse_gradient(x, self.scale)

    def extra_repr(self):
        return f"scale={self.scale}"
