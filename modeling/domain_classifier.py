"""An independent judge of the domain an image looks like, for the image level's diagnostics.

It is trained on real source images only, never on swaps, and shares
nothing with the disentangler: unlike C_dom, which reads E_dom's code and
learns alongside the decoder, it cannot be taught to read a code that the
decoder plants. A swap x_ij that it calls domain j shows domain j's look.
"""
from torch import nn


class DomainClassifier(nn.Module):
    """Three strided conv blocks, global average pooling, a linear layer: image -> domain logits."""

    def __init__(self, num_domains, channels=32):
        super().__init__()
        layers, width = [], 3
        for index in range(3):
            out = channels * 2 ** index
            layers += [nn.Conv2d(width, out, 3, 2, 1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            width = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, num_domains)

    def forward(self, x):
        return self.fc(self.features(x))
