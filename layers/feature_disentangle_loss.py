"""Losses of the feature-level disentanglement: L_frec, L_kl and L_conf.

All three are computed in float32, so that mixed precision cannot overflow
exp(logvar) or lose the small squared errors.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def feature_reconstruction_loss(redundant, feature):
    """L_frec: mean squared error of G(f) against f, with f a fixed target."""
    return F.mse_loss(redundant.float(), feature.detach().float())


def kl_to_standard_normal(mu, logvar):
    """L_kl: KL(N(mu, exp(logvar)) || N(0, I)), averaged over batch and latent units."""
    mu = mu.float()
    logvar = logvar.float()
    return 0.5 * torch.mean(mu.pow(2) + logvar.exp() - 1.0 - logvar)


def class_confusion_loss(redundant, classifier):
    """L_conf: -mean log-softmax of C_red(G(f)) over batch and classes.

    Its minimum is the uniform prediction: G(f) must not tell the identity.
    C_red is applied with detached parameters, so this loss moves G (and what
    feeds it) but never C_red, which is trained by its own step instead.
    """
    frozen = {name: param.detach() for name, param in classifier.named_parameters()}
    logits = functional_call(classifier, frozen, (redundant.float(),))
    return -F.log_softmax(logits.float(), dim=1).mean()


class FeatureDisentangleLoss(nn.Module):
    """The weighted feature-level terms by name; a weight of 0 skips its term."""

    def __init__(self, w_frec, w_kl, w_conf):
        super().__init__()
        self.w_frec = w_frec
        self.w_kl = w_kl
        self.w_conf = w_conf

    def forward(self, feature, redundant, mu, logvar, classifier):
        losses = {}
        if self.w_frec:
            losses["feat_rec"] = self.w_frec * feature_reconstruction_loss(redundant, feature)
        if self.w_kl:
            losses["feat_kl"] = self.w_kl * kl_to_standard_normal(mu, logvar)
        if self.w_conf:
            losses["feat_conf"] = self.w_conf * class_confusion_loss(redundant, classifier)
        return losses
