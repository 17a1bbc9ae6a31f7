"""Training in several processes (torchrun, one per GPU) through ignite.distributed.

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK and the rendezvous address; with
WORLD_SIZE > 1 a tool joins the process group (nccl on CUDA, gloo on CPU),
the model is wrapped in DistributedDataParallel, and only rank 0 writes
files and logs. Everything here is a no-op in a single process.
"""
import contextlib
import os

import ignite.distributed as idist
import torch
import torch.distributed as dist

from utils.errors import UserError


def launched_world_size():
    """How many processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _wants_cuda(device_name):
    return device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())


def init_distributed(device_name):
    """Join torchrun's process group when there is one; returns the backend name or None."""
    if launched_world_size() <= 1:
        return None
    backend = "nccl" if _wants_cuda(device_name) else "gloo"
    if backend == "nccl" and device_name not in ("auto", "cuda"):
        raise UserError(f"MODEL.DEVICE = {device_name!r} names one GPU, but torchrun started "
                        f"{launched_world_size()} processes; use auto or cuda (each process takes the GPU "
                        "of its LOCAL_RANK)")
    idist.initialize(backend)
    if backend == "nccl":
        torch.cuda.set_device(idist.get_local_rank())
    return backend


def finalize_distributed():
    if idist.get_world_size() > 1:
        idist.finalize()


@contextlib.contextmanager
def distributed_processes(device_name):
    """``with distributed_processes(cfg.MODEL.DEVICE) as backend:`` around a tool's work."""
    backend = init_distributed(device_name)
    try:
        yield backend
    finally:
        finalize_distributed()


def rank():
    return idist.get_rank()


def is_main_process():
    return idist.get_rank() == 0


def process_device(device):
    """The device of this process: on CUDA under torchrun, the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and idist.get_world_size() > 1:
        return torch.device("cuda", idist.get_local_rank())
    return device


def wrap_model(model):
    """The model as the training step calls it: DDP when there are several processes.

    Checkpoints, evaluation and the final weights use the unwrapped model, so
    their keys never carry DDP's ``module.`` prefix.
    """
    if idist.get_world_size() <= 1:
        return model
    return idist.auto_model(model, sync_bn=False)


class GradientAverager:
    """Averages, over the processes, the gradients of parameters that DDP does not see.

    The center loss's centres and the JIFD extensions' networks have their own
    optimisers and their own backward passes (MINE's T, C_red), so a hook on
    each parameter all-reduces its gradient as soon as it is accumulated, on a
    process group of its own so that it never interleaves with DDP's buckets.
    Every process runs the same graph, so the hooks fire in the same order.
    """

    def __init__(self, parameters):
        self.world_size = idist.get_world_size()
        self.group = dist.new_group()
        for param in parameters:
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(self._average)

    def _average(self, param):
        dist.all_reduce(param.grad, group=self.group)
        param.grad.div_(self.world_size)


def average_gradients_outside_ddp(modules):
    """Keep ``modules`` (not wrapped by DDP) identical on every process; None in a single process."""
    if idist.get_world_size() <= 1:
        return None
    return GradientAverager([param for module in modules for param in module.parameters()])


def broadcast_buffers(model):
    """Rank 0's BatchNorm statistics on every process, so that all evaluate the model that rank 0 saves."""
    if idist.get_world_size() <= 1:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def all_processes_finite(values):
    """Whether the 1-D tensor ``values`` is finite on every process (one all-reduce under DDP)."""
    if idist.get_world_size() > 1:
        values = idist.all_reduce(values.detach().float().clone())
    return bool(torch.isfinite(values).all())
