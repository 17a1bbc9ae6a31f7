"""One training iteration: the re-ID losses, the JIFD extensions, one backward."""
from collections import OrderedDict

import torch

from utils.errors import UserError

from .distributed import all_processes_finite


class NonFiniteLossError(UserError):
    """A loss term became NaN or infinite; the run stops before the bad update."""


class TrainStep:
    """Callable for ``ignite.engine.Engine``: ``step(engine, batch) -> dict of floats``.

    Extensions (the JIFD image and feature levels) add named loss terms to the
    same backward pass and then step their own optimisers, so that the
    backbone sees one combined gradient per iteration.
    """

    def __init__(self, model, reid_loss, optimizer, center_optimizer, device_setup, extensions=(),
                 center_loss_weight=1.0):
        self.model = model
        self.reid_loss = reid_loss
        self.optimizer = optimizer
        self.center_optimizer = center_optimizer
        self.device_setup = device_setup
        self.extensions = list(extensions)
        self.center_loss_weight = center_loss_weight
        self.scaler = device_setup.grad_scaler()

    def _optimizers(self):
        return [opt for opt in (self.optimizer, self.center_optimizer) if opt is not None]

    def __call__(self, engine, batch):
        self.model.train()
        for extension in self.extensions:
            extension.train()
        batch = dict(batch)
        batch["images"] = self.device_setup.images(batch["images"])
        for key in ("pids", "camids", "domains"):
            batch[key] = batch[key].to(self.device_setup.device, non_blocking=True)
        for optimizer in self._optimizers():
            optimizer.zero_grad(set_to_none=True)
        for extension in self.extensions:
            extension.zero_grad()

        with self.device_setup.autocast():
            outputs = self.model(batch["images"], batch["domains"])
            losses = OrderedDict(self.reid_loss(outputs, batch["pids"]))
            for extension in self.extensions:
                losses.update(extension.compute_losses(batch, outputs, self.model, self.reid_loss))
        self._check_finite(engine, losses)
        total = sum(losses.values())
        self.scaler.scale(total).backward()

        self.scaler.step(self.optimizer)
        if self.center_optimizer is not None:
            # The center loss is scaled by its weight in the total; its centres learn at their own rate.
            self.scaler.unscale_(self.center_optimizer)
            for param in self.reid_loss.center_criterion.parameters():
                if param.grad is not None:
                    param.grad.mul_(1.0 / self.center_loss_weight)
            self.scaler.step(self.center_optimizer)
        for extension in self.extensions:
            extension.step(self.scaler)
        self.scaler.update()

        accuracy = (outputs["cls_score"].argmax(dim=1) == batch["pids"]).float().mean()
        logs = OrderedDict((name, value.item()) for name, value in losses.items())
        logs["loss"] = total.item()
        logs["acc"] = accuracy.item()
        return logs

    @staticmethod
    def _check_finite(engine, losses):
        """Stop before a non-finite loss reaches the weights; under DDP every process stops together."""
        values = torch.stack([value.detach().float() for value in losses.values()])
        if all_processes_finite(values):
            return
        bad = [(name, float(value)) for name, value in zip(losses, values) if not torch.isfinite(value)]
        where = "loss term '{}' is {}".format(*bad[0]) if bad else "a loss term is not finite in another process"
        state = engine.state
        in_epoch = (state.iteration - 1) % state.epoch_length + 1
        raise NonFiniteLossError(
            f"{where} at epoch {state.epoch}, iteration {in_epoch}/{state.epoch_length} "
            f"(global iteration {state.iteration}); the run stopped before updating the weights. "
            "Lower SOLVER.BASE_LR or the term's weight, or try SOLVER.AMP off.")
