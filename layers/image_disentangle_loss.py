"""Losses of the image-level disentanglement: L_rec, L_cyc, L_code, L_dom, L_adv, L_mi, L_gan.

``ImageDisentangleLoss`` runs only the encoder and decoder passes that its
active terms need: a weight of 0 removes the term and whatever only it used
(W_CYC 0: no decoding of E_id(x_ij); W_CODE and W_CYC 0: no re-encoding of
x_ij by E_id; and so on). Image losses compare generator images, in [-1, 1]
at the generator's size. Reductions run in float32 for mixed precision.

Judges never learn from the images they judge: the swap's domain is read by
E_dom and C_dom with their parameters held fixed (they learn on real images
only), the MI term holds T fixed, the GAN term D, and the confusion term
C_adv; each of T, D and C_adv learns in its own step.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from modeling.gradient_reversal import reverse_gradient

from .lsgan_loss import generator_loss


def l1_distance(a, b):
    """Mean absolute difference."""
    return F.l1_loss(a.float(), b.float())


def domain_cross_entropy(logits, domains):
    return F.cross_entropy(logits.float(), domains)


def domain_confusion(logits):
    """KL(uniform || softmax(logits)), averaged: 0 when every prediction is uniform over the domains."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    return -(log_probs.mean(dim=1) + math.log(logits.shape[1])).mean()


def domain_mmd(features, domains, bandwidths=(0.25, 1.0, 4.0)):
    """Squared MMD between each domain's features and the others', summed over domains with both.

    Features are standardised over the batch first (as a linear probe would
    see them); RBF kernels with variances ``bandwidths`` x the feature
    dimension catch differences in mean and in spread.
    """
    features = features.float()
    features = (features - features.mean(dim=0)) / features.std(dim=0, unbiased=False).clamp(min=1e-6)
    distances = torch.cdist(features, features).pow(2)
    kernel = sum(torch.exp(-distances / (scale * features.shape[1])) for scale in bandwidths)
    total = features.new_zeros(())
    for domain in domains.unique():
        inside = domains == domain
        if inside.all() or inside.sum() < 2 or (~inside).sum() < 2:
            continue
        total = total + (kernel[inside][:, inside].mean() + kernel[~inside][:, ~inside].mean()
                         - 2 * kernel[inside][:, ~inside].mean())
    return total


def frozen_call(module, *inputs):
    """``module(*inputs)`` with its parameters detached: gradients reach the inputs only."""
    params = {name: param.detach() for name, param in module.named_parameters()}
    return functional_call(module, params, inputs)


def mine_lower_bound(statistics_net, pooled_id, domain_code, shuffle):
    """Donsker-Varadhan bound of I(c; s): E_joint[T] - log E_marginal[exp T].

    Pairs (c_i, s_i) sample the joint; (c_i, s_shuffle[i]) the product of the
    marginals. The log-mean-exp is taken as logsumexp - log n for stability.
    """
    joint = statistics_net(pooled_id, domain_code).float()
    marginal = statistics_net(pooled_id, domain_code[shuffle]).float()
    return joint.mean() - (torch.logsumexp(marginal, dim=0) - math.log(marginal.numel()))


def mutual_information_penalty(statistics_net, pooled_id, domain_code, shuffle):
    """L_mi for the encoders: the MINE bound with T's parameters held fixed (the encoders minimise it)."""
    return mine_lower_bound(lambda c, s: frozen_call(statistics_net, c, s), pooled_id, domain_code, shuffle)


@dataclass
class SwapResult:
    """What the caller needs beyond the losses.

    swapped: x_ij = Dec(c_i, s_partner[i]) in generator range (None if no term needed it).
    reconstructed: x_ii = Dec(c_i, s_i) (None if no term needed it).
    pooled_id, domain_code: detached codes for T's and C_adv's own steps (None when no term used them).
    """

    swapped: torch.Tensor = None
    reconstructed: torch.Tensor = None
    pooled_id: torch.Tensor = None
    domain_code: torch.Tensor = None


class ImageDisentangleLoss(nn.Module):
    """The weighted image-level terms by name ("img_rec", ...); a weight of 0 skips its term."""

    def __init__(self, w_rec=0.0, w_cyc=0.0, w_code=0.0, w_dom=0.0, w_adv=0.0, w_mi=0.0, w_gan=0.0,
                 adversary="confusion"):
        """``adversary``: how E_id is pushed against C_adv. 'confusion': E_id makes the (fixed) C_adv's
        prediction uniform, and C_adv learns in its own step; 'reversal': DAL's gradient reversal, E_id
        ascends C_adv's cross-entropy in the same pass that C_adv descends it."""
        super().__init__()
        self.w_rec, self.w_cyc, self.w_code = w_rec, w_cyc, w_code
        self.w_dom, self.w_adv, self.w_mi, self.w_gan = w_dom, w_adv, w_mi, w_gan
        self.adversary = adversary
        # The adversarial term's strength at this step, set by the trainer (DANN's ramp).
        self.adversary_scale = 1.0

    def active(self, need_swapped=False):
        return bool(need_swapped or self.w_rec or self.w_cyc or self.w_code or self.w_dom
                    or self.w_adv or self.w_mi or self.w_gan)

    def forward(self, net, x, domains, partner, shuffle, need_swapped=False, discriminator=None,
                need_reconstructed=False):
        """net: ImageDisentangler; x: generator images; partner[i]: the domain source of x_i's swap.

        shuffle: a permutation for MINE's marginal samples. need_swapped,
        need_reconstructed: the caller uses x_ij (and x_ii) even if no term
        here does. discriminator: D (needed when W_GAN > 0).
        """
        losses = {}
        result = SwapResult()
        if not self.active(need_swapped):
            return losses, result
        swap = bool(need_swapped or self.w_cyc or self.w_code or self.w_dom or self.w_gan)
        rebuild = bool(self.w_rec or need_reconstructed)
        c = net.encode_id(x)
        s = net.encode_domain(x) if (rebuild or swap or self.w_dom or self.w_mi) else None

        swapped = reconstructed = None
        if rebuild and swap:
            # One decoder pass for x_ii and x_ij: every norm in Dec is per image.
            reconstructed, swapped = net.decode(torch.cat([c, c]), torch.cat([s, s[partner]])).chunk(2)
        elif rebuild:
            reconstructed = net.decode(c, s)
        elif swap:
            swapped = net.decode(c, s[partner])
        if self.w_rec:
            losses["img_rec"] = self.w_rec * l1_distance(reconstructed, x)

        if self.w_cyc or self.w_code:
            swapped_id = net.encode_id(swapped)
        if self.w_cyc:
            cycled = net.decode(swapped_id, s)
            losses["img_cyc"] = self.w_cyc * l1_distance(cycled, x)
        if self.w_code:
            losses["img_code"] = self.w_code * (
                l1_distance(swapped_id, c) + l1_distance(net.encode_domain(swapped), s[partner]))
        if self.w_dom:
            judged = frozen_call(net.domain_classifier, frozen_call(net.domain_encoder, swapped))
            losses["img_dom"] = self.w_dom * (
                domain_cross_entropy(net.domain_classifier(s), domains)
                + domain_cross_entropy(judged, domains[partner]))
        if self.w_gan:
            losses["img_gan"] = self.w_gan * generator_loss(frozen_call(discriminator, swapped, domains[partner]))

        if self.w_adv or self.w_mi:
            pooled = net.pool_id(c)
        if self.w_adv:
            losses["img_adv"] = self._adversarial_term(net, pooled, domains)
        if self.w_mi:
            losses["img_mi"] = self.w_mi * mutual_information_penalty(net.statistics_net, pooled, s, shuffle)
        if self.w_adv or self.w_mi:
            result.pooled_id = pooled.detach()
            result.domain_code = s.detach() if s is not None else None
        result.swapped, result.reconstructed = swapped, reconstructed
        return losses, result

    def _adversarial_term(self, net, pooled, domains):
        """L_adv on pooled c, as ``adversary`` says: reversal, confusion or MMD, at this step's scale."""
        if self.adversary == "reversal":
            logits = net.adversarial_classifier(reverse_gradient(pooled, self.adversary_scale))
            return self.w_adv * domain_cross_entropy(logits, domains)
        if self.adversary == "confusion":
            return self.w_adv * self.adversary_scale * domain_confusion(frozen_call(net.adversarial_classifier, pooled))
        return self.w_adv * self.adversary_scale * domain_mmd(pooled, domains)
