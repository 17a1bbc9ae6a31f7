"""A frozen copy of the re-ID model that only follows the live one from a distance.

The image level uses it twice (engine/image_level.py): its soft labels
supervise the live model on swapped images, and the generator learns to keep
a vehicle's identity by being judged by it. No optimiser ever steps it, so
neither the live model nor the generator can lower their losses by changing
it; it is refreshed only by ``update`` (an exponential moving average of the
live weights, mean-teacher style), or kept fixed when loaded from a file.
"""
import copy

import torch
from torch import nn


class ReIDTeacher(nn.Module):
    """``momentum`` in [0, 1): each update moves the copy at most (1 - momentum) of the way to the live
    model's weights; ``momentum`` 1 keeps it fixed (a teacher loaded from a checkpoint)."""

    def __init__(self, model, momentum=0.999):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"teacher momentum {momentum} is outside [0, 1]")
        self.momentum = momentum
        self.net = copy.deepcopy(model)
        self.net.requires_grad_(False)

    def forward(self, images):
        return self.net(images)

    @torch.no_grad()
    def update(self, model, step):
        """Move the parameters towards ``model``'s; copy its buffers (BatchNorm statistics).

        ``step`` counts the updates so far: the momentum is min(momentum, (1 + step) / (10 + step)), so
        that the copy follows closely while the live model changes fast at the start and averages
        over a longer window later (TensorFlow's ExponentialMovingAverage with num_updates).
        """
        if self.momentum == 1.0:
            return
        momentum = min(self.momentum, (1.0 + step) / (10.0 + step))
        for mine, live in zip(self.net.parameters(), model.parameters()):
            mine.lerp_(live.detach().to(mine.dtype), 1.0 - momentum)
        for mine, live in zip(self.net.buffers(), model.buffers()):
            mine.copy_(live)
