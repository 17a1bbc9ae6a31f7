"""Forward passes that must not move the BatchNorm running statistics.

Generated images (the image level's swaps) are normalised with their own
batch statistics in training, like real images, but the running statistics
that real test images are normalised with must come from real images only.
"""
import contextlib

from torch import nn


@contextlib.contextmanager
def frozen_batchnorm_statistics(module):
    """Inside the block, every BatchNorm of ``module`` normalises with batch statistics as usual in
    training, but updates throwaway copies of its running statistics; the originals come back on exit.

    Copies rather than a restore in place: autograd keeps the buffers a
    training-mode BatchNorm was called with, and must find them unchanged.
    """
    layers = [layer for layer in module.modules()
              if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats]
    originals = [(layer.running_mean, layer.running_var, layer.num_batches_tracked) for layer in layers]
    for layer in layers:
        layer.running_mean = layer.running_mean.clone()
        layer.running_var = layer.running_var.clone()
        layer.num_batches_tracked = layer.num_batches_tracked.clone()
    try:
        yield module
    finally:
        for layer, (mean, var, steps) in zip(layers, originals):
            layer.running_mean, layer.running_var, layer.num_batches_tracked = mean, var, steps
