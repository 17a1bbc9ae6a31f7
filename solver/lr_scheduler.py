"""Multi-step learning-rate decay after a warm-up, stepped once per epoch (BoT's schedule)."""
from bisect import bisect_right

from torch.optim.lr_scheduler import LRScheduler

WARMUP_METHODS = ("constant", "linear")


class WarmupMultiStepLR(LRScheduler):
    """lr(e) = base_lr x warmup(e) x gamma ** (number of milestones <= e).

    warmup(e) for e < warmup_iters: ``warmup_factor`` ('constant') or
    warmup_factor x (1 - e / warmup_iters) + e / warmup_iters ('linear');
    1 afterwards. ``e`` counts ``step()`` calls, one per epoch.
    """

    def __init__(self, optimizer, milestones, gamma=0.1, warmup_factor=0.1, warmup_iters=10,
                 warmup_method="linear", last_epoch=-1):
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}")
        if warmup_method not in WARMUP_METHODS:
            raise ValueError(f"warmup_method must be one of {WARMUP_METHODS}, got {warmup_method!r}")
        self.milestones = list(milestones)
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def _warmup(self, epoch):
        if epoch >= self.warmup_iters:
            return 1.0
        if self.warmup_method == "constant":
            return self.warmup_factor
        alpha = epoch / self.warmup_iters
        return self.warmup_factor * (1 - alpha) + alpha

    def lrs_at(self, epoch):
        """The learning rate of each parameter group after ``epoch`` steps."""
        factor = self._warmup(epoch) * self.gamma ** bisect_right(self.milestones, epoch)
        return [base_lr * factor for base_lr in self.base_lrs]

    def get_lr(self):
        return self.lrs_at(self.last_epoch)
