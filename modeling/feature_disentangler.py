"""Feature-level class disentanglement (JIFD, after CD-VAE).

A small VAE G reconstructs the pooled backbone feature f from a narrow latent
code. What such a bottleneck can rebuild is the class-redundant part G(f); the
re-ID heads see the remainder r = f - G(f). ``RedundantClassifier`` is C_red,
the training-only adversary that tries to read the identity from G(f); it is
owned by the training extension, so that it never enters the model's weights.
"""
import torch
from torch import nn


class FeatureDisentangler(nn.Module):
    """G: f -> (G(f), mu, logvar); samples the latent in training, uses mu in eval."""

    def __init__(self, in_dim, hidden_dim=512, latent_dim=128):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
        )
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, in_dim),
        )
        # G(f) starts at 0, so r = f: training starts from the backbone's
        # (ImageNet or BoT) feature instead of f minus a random vector.
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)

    def forward(self, f):
        hidden = self.encoder(f)
        mu = self.mu(hidden)
        logvar = self.logvar(hidden)
        if self.training:
            latent = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        else:
            latent = mu
        return self.decoder(latent), mu, logvar


class RedundantClassifier(nn.Linear):
    """C_red: identity logits from the redundant part G(f)."""

    def __init__(self, in_dim, num_classes):
        super().__init__(in_dim, num_classes)
