"""Least-squares GAN losses (Mao et al., 2017) over the maps of a multi-scale discriminator.

Each argument is the list of per-scale realism maps that
modeling.domain_discriminator returns; the losses sum the scales' means and
are computed in float32 for mixed precision.
"""


def discriminator_loss(real_maps, fake_maps):
    """D learns real -> 1, generated -> 0."""
    return sum((real.float() - 1).pow(2).mean() + fake.float().pow(2).mean()
               for real, fake in zip(real_maps, fake_maps))


def generator_loss(fake_maps):
    """The generator learns to make D answer 1 on its images."""
    return sum((fake.float() - 1).pow(2).mean() for fake in fake_maps)
