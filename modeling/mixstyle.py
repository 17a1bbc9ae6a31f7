"""MixStyle (Zhou et al., ICLR 2021): mix the feature statistics of two images in training.

An early feature map's per-channel mean and standard deviation carry much of
an image's style (colour, texture, contrast). Replacing them, in training,
by a random blend of the image's own and another image's statistics
synthesises new styles at no cost and with no generator. With domain labels
the partner comes from another domain ('crossdomain'), so the blend moves
between the sources' styles. At test time the layer does nothing.
"""
import torch
from torch import nn

from .domain_pairing import pair_across_domains


class MixStyle(nn.Module):
    """``forward(x, domains=None)``: x unchanged in eval, or with probability 1 - p in training."""

    def __init__(self, p=0.5, alpha=0.1, mix="crossdomain", eps=1e-6):
        super().__init__()
        self.p = p
        self.beta = torch.distributions.Beta(alpha, alpha)
        self.mix = mix
        self.eps = eps

    def forward(self, x, domains=None):
        if not self.training or torch.rand(()) > self.p:
            return x
        count = x.shape[0]
        if self.mix == "crossdomain" and domains is not None:
            partner = pair_across_domains(domains)
        else:
            partner = torch.randperm(count, device=x.device)
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt()
        # The statistics are the style to mix, not a path for gradients (as in the paper).
        mean, std = mean.detach(), std.detach()
        normed = (x - mean) / std
        weight = self.beta.sample((count, 1, 1, 1)).to(x.device, x.dtype)
        mixed_mean = weight * mean + (1 - weight) * mean[partner]
        mixed_std = weight * std + (1 - weight) * std[partner]
        return normed * mixed_std + mixed_mean

    def extra_repr(self):
        return f"p={self.p}, mix={self.mix}"
