"""Losses of the image-level disentanglement: L_rec, L_cyc, L_code, L_dom, L_adv, L_mi, L_gen.

``ImageDisentangleLoss`` runs only the encoder and decoder passes that its
active terms need: a weight of 0 removes the term and whatever only it used
(W_CYC 0: no decoding of E_id(x_ij); W_CODE and W_CYC 0: no re-encoding of
x_ij by E_id; and so on). Image losses compare generator images, in [-1, 1]
at DISENTANGLE.IMAGE.SIZE. Reductions run in float32 for mixed precision.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def l1_distance(a, b):
    """Mean absolute difference."""
    return F.l1_loss(a.float(), b.float())


def domain_cross_entropy(logits, domains):
    return F.cross_entropy(logits.float(), domains)


def mine_lower_bound(statistics_net, pooled_id, domain_code, shuffle):
    """Donsker-Varadhan bound of I(c; s): E_joint[T] - log E_marginal[exp T].

    Pairs (c_i, s_i) sample the joint; (c_i, s_shuffle[i]) the product of the
    marginals. The log-mean-exp is taken as logsumexp - log n for stability.
    """
    joint = statistics_net(pooled_id, domain_code).float()
    marginal = statistics_net(pooled_id, domain_code[shuffle]).float()
    return joint.mean() - (torch.logsumexp(marginal, dim=0) - math.log(marginal.numel()))


def mutual_information_penalty(statistics_net, pooled_id, domain_code, shuffle):
    """L_mi for the encoders: the MINE bound with T's parameters held fixed.

    T gets no gradient from this term; it maximises the bound in its own step.
    """
    frozen = {name: param.detach() for name, param in statistics_net.named_parameters()}

    def fixed_net(c, s):
        return functional_call(statistics_net, frozen, (c, s))

    return mine_lower_bound(fixed_net, pooled_id, domain_code, shuffle)


def swapped_reid_loss(reid_loss, outputs, pids, weight):
    """L_gen: the re-ID ID and triplet terms on swapped images, labelled by their ID source."""
    terms = reid_loss(outputs, pids)
    return {f"gen_{name}": weight * terms[name] for name in ("id", "triplet") if name in terms}


@dataclass
class SwapResult:
    """What the caller needs beyond the losses.

    swapped: x_ij = Dec(c_i, s_partner[i]) in generator range (None if no term needed it).
    pooled_id, domain_code: detached codes for T's own step (None when W_MI is 0).
    """

    swapped: torch.Tensor = None
    pooled_id: torch.Tensor = None
    domain_code: torch.Tensor = None


class ImageDisentangleLoss(nn.Module):
    """The weighted image-level terms by name ("img_rec", ...); a weight of 0 skips its term."""

    def __init__(self, w_rec=0.0, w_cyc=0.0, w_code=0.0, w_dom=0.0, w_adv=0.0, w_mi=0.0):
        super().__init__()
        self.w_rec, self.w_cyc, self.w_code = w_rec, w_cyc, w_code
        self.w_dom, self.w_adv, self.w_mi = w_dom, w_adv, w_mi

    def active(self, need_swapped=False):
        return bool(need_swapped or self.w_rec or self.w_cyc or self.w_code or self.w_dom
                    or self.w_adv or self.w_mi)

    def forward(self, net, x, domains, partner, shuffle, need_swapped=False):
        """net: ImageDisentangler; x: generator images; partner[i]: the domain source of x_i's swap.

        shuffle: a permutation for MINE's marginal samples. need_swapped: the
        caller uses x_ij (L_gen) even if no term here does.
        """
        losses = {}
        result = SwapResult()
        if not self.active(need_swapped):
            return losses, result
        swap = bool(need_swapped or self.w_cyc or self.w_code or self.w_dom)
        c = net.encode_id(x)
        s = net.encode_domain(x) if (self.w_rec or swap or self.w_dom or self.w_mi) else None

        swapped = None
        if self.w_rec and swap:
            # One decoder pass for x_ii and x_ij: every norm in Dec is per image.
            reconstructed, swapped = net.decode(torch.cat([c, c]), torch.cat([s, s[partner]])).chunk(2)
        elif self.w_rec:
            reconstructed = net.decode(c, s)
        elif swap:
            swapped = net.decode(c, s[partner])
        if self.w_rec:
            losses["img_rec"] = self.w_rec * l1_distance(reconstructed, x)

        if self.w_cyc or self.w_code:
            swapped_id = net.encode_id(swapped)
        if self.w_code or self.w_dom:
            swapped_domain = net.encode_domain(swapped)
        if self.w_cyc:
            cycled = net.decode(swapped_id, s)
            losses["img_cyc"] = self.w_cyc * l1_distance(cycled, x)
        if self.w_code:
            losses["img_code"] = self.w_code * (
                l1_distance(swapped_id, c) + l1_distance(swapped_domain, s[partner]))
        if self.w_dom:
            losses["img_dom"] = self.w_dom * (
                domain_cross_entropy(net.domain_classifier(s), domains)
                + domain_cross_entropy(net.domain_classifier(swapped_domain), domains[partner]))

        if self.w_adv or self.w_mi:
            pooled = net.pool_id(c)
        if self.w_adv:
            losses["img_adv"] = self.w_adv * domain_cross_entropy(
                net.adversarial_classifier(pooled), domains)
        if self.w_mi:
            losses["img_mi"] = self.w_mi * mutual_information_penalty(
                net.statistics_net, pooled, s, shuffle)
            result.pooled_id, result.domain_code = pooled.detach(), s.detach()
        result.swapped = swapped
        return losses, result
