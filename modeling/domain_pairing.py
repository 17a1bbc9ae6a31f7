"""Cross-domain partners within a batch, for the image level's swaps and MixStyle's mixing."""
import torch


def pair_across_domains(domains):
    """partner[i]: a random j with domains[j] != domains[i]; j != i when i's domain fills the batch.

    Draws from the torch RNG of ``domains``' device, so it repeats under a seed.
    """
    count = domains.numel()
    other_domain = domains[None, :] != domains[:, None]
    not_self = ~torch.eye(count, dtype=torch.bool, device=domains.device)
    allowed = torch.where(other_domain.any(dim=1, keepdim=True), other_domain, not_self)
    scores = torch.rand(count, count, device=domains.device).masked_fill(~allowed, -1.0)
    return scores.argmax(dim=1)
