"""Seconds per training iteration: the BoT baseline vs +image level, on this machine.

Both steps are the trainer's own (engine.train_step.TrainStep, with and without
the image-level extension) on a synthetic two-domain P x K batch, measured in
the same process, alternating, after a warm-up step; the median is reported.
Peak RSS is the process's high-water mark after each setting.

    python benchmarks/train_step.py                  # demo size and 256 x 256 / batch 64 (ResNet-50)
    python benchmarks/train_step.py --settings demo  # the demo size only
"""
import argparse
import pathlib
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from config import get_default_cfg  # noqa: E402
from engine.image_level import ImageLevelExtension  # noqa: E402
from engine.runtime import resolve_device_setup  # noqa: E402
from engine.train_step import TrainStep  # noqa: E402
from layers import make_loss  # noqa: E402
from modeling import build_model  # noqa: E402
from solver import make_center_optimizer, make_optimizer  # noqa: E402

# name -> (backbone, re-ID input, batch, generator size, BASE_CHANNELS, ID_DIM)
SETTINGS = {
    "demo": ("resnet18", 64, 64, 32, 8, 32),
    "protocol": ("resnet50", 256, 64, 128, 16, 64),
}


class _State:
    epoch, iteration = 1, 1


class _Engine:
    state = _State()


def _step(cfg, with_image, num_classes):
    device = torch.device("cpu")
    device_setup = resolve_device_setup(cfg, device)
    model = build_model(cfg, num_classes)
    reid_loss = make_loss(cfg, num_classes)
    extensions = [ImageLevelExtension(cfg, 2, device, model, reid_loss, total_iters=100)] if with_image else []
    center = make_center_optimizer(cfg, reid_loss.center_criterion) if reid_loss.center_criterion else None
    return TrainStep(model, reid_loss, make_optimizer(cfg, model), center, device_setup, extensions,
                     center_loss_weight=cfg.SOLVER.CENTER_LOSS_WEIGHT)


def run(name, iterations, opts):
    backbone, size, batch_size, gen_size, channels, id_dim = SETTINGS[name]
    cfg = get_default_cfg()
    cfg.merge_from_list(opts + ["MODEL.NAME", backbone, "MODEL.PRETRAIN_CHOICE", "none", "MODEL.DEVICE", "cpu",
                         "INPUT.SIZE_TRAIN", [size, size], "SOLVER.IMS_PER_BATCH", batch_size,
                         "DISENTANGLE.IMAGE.SIZE", [gen_size, gen_size],
                         "DISENTANGLE.IMAGE.BASE_CHANNELS", channels, "DISENTANGLE.IMAGE.ID_DIM", id_dim])
    torch.manual_seed(0)
    num_classes = batch_size // 4
    batch = {"images": torch.randn(batch_size, 3, size, size), "pids": torch.arange(batch_size) // 4,
             "camids": torch.zeros(batch_size, dtype=torch.long),
             "domains": (torch.arange(batch_size) // 4) % 2}
    steps = {"baseline": _step(cfg, False, num_classes), "+image": _step(cfg, True, num_classes)}
    times = {key: [] for key in steps}
    for key, step in steps.items():
        step(_Engine(), batch)
    for _ in range(iterations):
        for key, step in steps.items():
            started = time.perf_counter()
            step(_Engine(), batch)
            times[key].append(time.perf_counter() - started)
    base, image = (statistics.median(times[key]) for key in ("baseline", "+image"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {name}: {backbone} {size}x{size}, batch {batch_size}, generator {gen_size}x{gen_size} "
          f"(base {channels}, ID {id_dim}) | {base:.2f} | {image:.2f} | {image / base:.2f}x | {peak_mb:,.0f} |",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("opts", nargs="*", help="KEY VALUE config overrides for both settings, e.g. "
                                                "DISENTANGLE.IMAGE.W_GAN 1.0")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("| setting | baseline s/it | +image s/it | ratio | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for name in args.settings:
        run(name, args.iterations, args.opts)


if __name__ == "__main__":
    main()
