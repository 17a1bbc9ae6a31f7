"""L_gen: what the live re-ID model learns from swapped images x_ij, each labelled by its ID source i.

- gen_id: with a teacher, KL(teacher || model) on the training identities
  (the teacher's soft labels, as DG-Net trains on generated images); without
  one, the re-ID model's own ID loss on the hard label y_i.
- gen_triplet: batch-hard triplet. ``joint``: over the real batch and the
  swaps together, so that x_i and its own swap x_ij are positives of each
  other and the hardest positive of a real image is often its swap in
  another domain's style; otherwise over the swaps alone.
Reductions run in float32 for mixed precision.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def soft_label_loss(student_logits, teacher_logits, temperature=1.0):
    """KL(softmax(teacher / T) || softmax(student / T)) x T^2, averaged over the batch."""
    student = F.log_softmax(student_logits.float() / temperature, dim=1)
    teacher = F.softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean") * temperature ** 2


class SwapReIDLoss(nn.Module):
    """``(swap_outputs, swap_pids, real_outputs, real_pids, teacher_logits, weight)`` -> {"gen_id", "gen_triplet"}.

    Outputs are the re-ID model's training dicts ("cls_score", "feat").
    A term whose criterion is None is left out.
    """

    def __init__(self, id_criterion, triplet_criterion=None, joint_triplet=True, temperature=1.0):
        super().__init__()
        self.id_criterion = id_criterion
        self.triplet_criterion = triplet_criterion
        self.joint_triplet = joint_triplet
        self.temperature = temperature

    def forward(self, swap_outputs, swap_pids, real_outputs, real_pids, teacher_logits=None, weight=1.0):
        losses = OrderedDict()
        if teacher_logits is not None:
            losses["gen_id"] = weight * soft_label_loss(swap_outputs["cls_score"], teacher_logits, self.temperature)
        else:
            losses["gen_id"] = weight * self.id_criterion(swap_outputs["cls_score"], swap_pids)
        if self.triplet_criterion is not None:
            feats, pids = swap_outputs["feat"], swap_pids
            if self.joint_triplet:
                feats = torch.cat([real_outputs["feat"], feats])
                pids = torch.cat([real_pids, pids])
            losses["gen_triplet"] = weight * self.triplet_criterion(feats, pids)
        return losses
