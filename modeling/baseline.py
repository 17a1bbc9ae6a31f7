"""The Bag-of-Tricks re-ID network, with JIFD's feature-level hook.

backbone -> global average pooling -> f. Without the feature level, the heads
see f; with it, G splits f and the heads see r = f - G(f). The BNNeck (a
BatchNorm1d with a frozen bias) feeds the ID classifier, while triplet and
center losses use the feature before it.
"""
from torch import nn


class Baseline(nn.Module):
    """Training: dict of outputs for the losses. Eval: the B x C test feature."""

    def __init__(self, backbone, num_classes, neck="bnneck", neck_feat="after", disentangler_dims=None):
        """``disentangler_dims`` = (hidden_dim, latent_dim) switches the feature level on."""
        super().__init__()
        self.base = backbone
        self.in_planes = backbone.out_channels
        self.neck_feat = neck_feat
        self.gap = nn.AdaptiveAvgPool2d(1)
        if neck == "bnneck":
            self.bottleneck = nn.BatchNorm1d(self.in_planes)
            # A BN shift is redundant in front of a bias-free classifier (BoT's BNNeck).
            self.bottleneck.bias.requires_grad_(False)
            nn.init.ones_(self.bottleneck.weight)
            nn.init.zeros_(self.bottleneck.bias)
        else:
            self.bottleneck = None
        self.classifier = nn.Linear(self.in_planes, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)
        # Built after the baseline's modules, so that with the same seed those
        # start from the same weights with or without the feature level.
        if disentangler_dims is not None:
            from modeling.feature_disentangler import FeatureDisentangler

            hidden_dim, latent_dim = disentangler_dims
            self.feature_disentangler = FeatureDisentangler(self.in_planes, hidden_dim, latent_dim)
        else:
            self.feature_disentangler = None

    def forward(self, x, domains=None):
        """``domains``: each training image's domain label, read by the backbone's MixStyle layers."""
        global_feat = self.gap(self.base(x, domains)).flatten(1)
        feat = global_feat
        extra = {}
        if self.feature_disentangler is not None:
            redundant, mu, logvar = self.feature_disentangler(global_feat)
            feat = global_feat - redundant
            extra = {"redundant_feat": redundant, "mu": mu, "logvar": logvar}
        neck_out = self.bottleneck(feat) if self.bottleneck is not None else feat
        if not self.training:
            return neck_out if self.neck_feat == "after" else feat
        return {"cls_score": self.classifier(neck_out), "feat": feat, "global_feat": global_feat, **extra}
