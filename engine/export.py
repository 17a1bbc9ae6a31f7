"""tools/export.py's engine: the test-time network to ONNX or TorchScript, then a parity check.

The file is written from modeling.deployment.DeployedReID on the CPU in
float32. The check runs the written file (onnxruntime, or torch.jit.load) on
real images of DATASETS.TARGET's query split (generated vehicles when that
folder is absent) and compares its features with the evaluator's own:
engine.evaluator.extract_batch_features on the test transform's images, L2
normalised as evaluation normalises them.
"""
import logging
import warnings

import torch
import torch.nn.functional as F
import torchvision.transforms as T

from data.dataset_presets import load_split
from data.demo import render_image
from data.image_loading import read_image
from data.transforms import input_size
from modeling.deployment import DeployedReID
from utils.errors import UserError

from .evaluator import extract_batch_features, normalises_features
from .runtime import DeviceSetup
from .tester import prepare_test

logger = logging.getLogger("jifd.export")

FORMATS = ("onnx", "torchscript")
# Largest |exported - PyTorch| accepted over every feature value of the parity images.
TOLERANCE = 1e-4
# The example batch that ONNX's exporter traces; 2, not 1, so that the batch dimension stays free.
_EXAMPLE_BATCH = 2
# Where the file is written and checked.
_CPU_FP32 = DeviceSetup(device=torch.device("cpu"))


def parity_images(cfg, count):
    """(N x 3 x H x W RGB in [0, 1], what they are): the target's first query images, else generated ones."""
    size = input_size(cfg, is_train=False)
    to_tensor = T.Compose([T.Resize(size), T.ToTensor()])
    try:
        records = load_split(cfg, cfg.DATASETS.TARGET, "query")[:count]
        images = [read_image(record.path, size, cfg.INPUT.JPEG_DRAFT) for record in records]
        where = f"query images of {cfg.DATASETS.TARGET}"
    except UserError as err:
        logger.info("%s; checking parity on generated vehicle images instead", err)
        images = [render_image(0, "veri", pid, 1, 0)[0] for pid in range(1, count + 1)]
        where = "generated vehicle images"
    return torch.stack([to_tensor(image) for image in images]), where


def reference_features(cfg, model, images):
    """The evaluator's features of ``images`` (RGB in [0, 1]) with ``model``, on the CPU in float32."""
    normalise = T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    feats = extract_batch_features(model.eval(), normalise(images), _CPU_FP32, flip=cfg.TEST.FLIP)
    return F.normalize(feats, dim=1) if normalises_features(cfg) else feats


def _write_onnx(network, example, out):
    batch = torch.export.Dim("batch")
    torch.onnx.export(network, (example,), out, dynamo=True, external_data=False, verbose=False,
                      input_names=["images"], output_names=["features"], dynamic_shapes=({0: batch},))


def _run_onnx(out, images):
    import onnxruntime

    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["features"], {"images": images.numpy()})[0])


def _write_torchscript(network, example, out):
    # Deprecated by torch in favour of torch.export, but what libtorch (C++) and TensorRT's
    # Torch-TensorRT users load; the warnings say nothing the README does not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(network, example), out)


def _run_torchscript(out, images):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(out, map_location="cpu")
    with torch.no_grad():
        return loaded(images)


_WRITERS = {"onnx": (_write_onnx, _run_onnx), "torchscript": (_write_torchscript, _run_torchscript)}


def export_model(cfg, fmt, out, num_images=8):
    """Write TEST.WEIGHT's test-time network to ``out`` as ``fmt``; returns (max abs difference, images, where)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    model = prepare_test(cfg, with_data=False, device_setup=_CPU_FP32).model.float().eval()
    network = DeployedReID(model, cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD, flip=cfg.TEST.FLIP,
                           l2_normalise=normalises_features(cfg)).eval()
    images, where = parity_images(cfg, num_images)
    write, run = _WRITERS[fmt]
    write(network, torch.cat([images, images])[:_EXAMPLE_BATCH], out)
    logger.info("wrote %s (%s)", out, fmt)
    difference = (run(out, images) - reference_features(cfg, model, images)).abs().max().item()
    return difference, len(images), where
