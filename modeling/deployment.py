"""The test-time network as one graph, for export (tools/export.py).

Input: RGB images with values in [0, 1], N x 3 x H x W at INPUT.SIZE_TEST
(what torchvision's ToTensor gives after the resize). Inside: the pixel
normalisation of INPUT.PIXEL_MEAN / PIXEL_STD, the backbone, the feature
level's r = f - G(f) when it is on, the neck and TEST.NECK_FEAT's feature,
TEST.FLIP's mirror average, and the L2 normalisation that evaluation applies
(TEST.FEAT_NORM yes or TEST.DISTANCE cosine). Output: the feature the
evaluator ranks with, N x C. A user of the exported file normalises nothing.
"""
import torch
import torch.nn.functional as F
from torch import nn


class DeployedReID(nn.Module):
    """``model`` (a Baseline) wrapped with the test pipeline's pixel and feature normalisations."""

    def __init__(self, model, pixel_mean, pixel_std, flip=False, l2_normalise=True):
        super().__init__()
        self.model = model.eval()
        self.register_buffer("mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1))
        self.flip = flip
        self.l2_normalise = l2_normalise

    def forward(self, images):
        x = (images - self.mean) / self.std
        feats = self.model(x)
        if self.flip:
            feats = (feats + self.model(torch.flip(x, dims=[3]))) / 2
        if self.l2_normalise:
            feats = F.normalize(feats, dim=1)
        return feats
