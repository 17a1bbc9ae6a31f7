"""D: a multi-scale, domain-conditional patch discriminator for the image level's swaps.

As in DG-Net and MUNIT, the same small patch network judges the image at
several scales (each an average-pooled half of the previous), so that both
texture and layout must look real. It is domain-conditional: each scale
outputs one realism map per domain, and an image is judged by the map of the
domain it claims (a swap x_ij claims domain j), so a swap must look like a
real image of its target domain, not just like some real image.
"""
import torch
import torch.nn.functional as F
from torch import nn


class _PatchDiscriminator(nn.Module):
    """Strided convs with leaky ReLU -> num_domains realism maps."""

    def __init__(self, channels, num_domains, layers):
        super().__init__()
        blocks, width = [], 3
        for index in range(layers):
            out = channels * 2 ** index
            blocks += [nn.Conv2d(width, out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            width = out
        blocks.append(nn.Conv2d(width, num_domains, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x):
        return self.net(x)


class MultiScaleDomainDiscriminator(nn.Module):
    """``forward(x, domains)`` -> one B x h x w realism map per scale, read at each image's domain."""

    def __init__(self, num_domains, channels=32, scales=3, layers=3):
        super().__init__()
        self.scales = nn.ModuleList(_PatchDiscriminator(channels, num_domains, layers) for _ in range(scales))

    def forward(self, x, domains):
        maps = []
        for index, scale in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out = scale(x)
            maps.append(out[torch.arange(len(domains), device=out.device), domains])
        return maps
