"""4K JPEG -> 256 x 256 tensor: plain decoding versus JPEG draft decoding (data.image_loading.read_image).

python benchmarks/decode.py [--num_images 6] [--repeats 5] [--width 3840 --height 2160] [--target 256] [--noise 12]

Generates the JPEGs (quality 90: a gradient, noise and filled shapes, so the
encoder has real detail to code) in a temporary folder. The decoding paths
are timed in one fresh process, taking turns image by image; each path's
peak RSS is measured alone, in a fresh process of its own. The files have
just been written, so the page cache holds them and the disk is not measured.
"""
import argparse
import pathlib
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

# (label, draft decoding, through data's test transform)
PATHS = (
    ("plain: PIL open, convert, resize, to tensor", False, False),
    ("draft: read_image(target), resize, to tensor", True, False),
    ("test transform, INPUT.JPEG_DRAFT False", False, True),
    ("test transform, INPUT.JPEG_DRAFT True", True, True),
)


def make_jpeg(path, width, height, seed, noise=12.0):
    """A 4K-like picture: smooth background, sensor-like noise, hard-edged shapes."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    base = np.stack(np.broadcast_arrays(120 + 80 * x, 90 + 100 * y, 160 - 60 * x * y), axis=2)
    noisy = base + rng.normal(0.0, noise, size=(height, width, 3)).astype(np.float32)
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, width - 200)), int(rng.integers(0, height - 200))
        x1, y1 = x0 + int(rng.integers(60, width // 4)), y0 + int(rng.integers(60, height // 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=colour)
    img.save(path, quality=90)


def _rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _loaders(target):
    """One function per entry of PATHS: file path -> 3 x target x target array in [0, 1]."""
    import torch
    import torchvision.transforms.functional as TF

    from config import get_default_cfg
    from data.image_loading import read_image
    from data.transforms import build_transforms

    # As in a DataLoader worker, where decoding runs; idle intra-op threads would also spin on CPU time.
    torch.set_num_threads(1)
    cfg = get_default_cfg()
    cfg.INPUT.SIZE_TEST = [target, target]
    transform = build_transforms(cfg, is_train=False)
    size = (target, target)
    mean = np.asarray(cfg.INPUT.PIXEL_MEAN, dtype=np.float32)[:, None, None]
    std = np.asarray(cfg.INPUT.PIXEL_STD, dtype=np.float32)[:, None, None]

    def loader(draft, through_transform):
        def load(path):
            if through_transform:
                # Normalisation undone, so that every path's output is in [0, 1].
                return transform(read_image(path, size, draft=draft)).numpy() * std + mean
            if draft:
                img = read_image(path, size)
            else:
                with Image.open(path) as opened:
                    img = opened.convert("RGB")
            return TF.to_tensor(img.resize(size, Image.BILINEAR)).numpy()
        return load

    return [loader(draft, through) for _, draft, through in PATHS]


def time_paths(paths, target, repeats):
    """Per path (median images/s by wall clock, by this process's CPU time), and the first pass's outputs.

    The paths take turns image by image, so that a changing load from other
    processes falls on all of them alike.
    """
    loaders = _loaders(target)
    wall = np.zeros((repeats, len(loaders)))
    cpu = np.zeros((repeats, len(loaders)))
    outputs = [[] for _ in loaders]
    for repeat in range(repeats):
        for path in paths:
            for index, load in enumerate(loaders):
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                output = load(path)
                wall[repeat, index] += time.perf_counter() - wall_start
                cpu[repeat, index] += time.process_time() - cpu_start
                if repeat == 0:
                    outputs[index].append(output)
    return np.median(len(paths) / wall, axis=0), np.median(len(paths) / cpu, axis=0), outputs


def peak_rss(paths, target, index):
    """(RSS after imports, peak RSS) in MB of a process that runs path ``index`` once over ``paths``."""
    load = _loaders(target)[index]
    baseline = _rss_mb()
    for path in paths:
        load(path)
    return baseline, _rss_mb()


def run_in_fresh_process(function, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--target", type=int, default=256, help="output side (INPUT.SIZE_TEST)")
    parser.add_argument("--noise", type=float, default=12.0,
                        help="pixel noise sigma; more noise, larger files, and entropy decoding (which draft "
                             "mode cannot reduce) weighs more")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="decode_bench_") as folder:
        paths = [str(pathlib.Path(folder) / f"{i:04d}_c001_{i:08d}_0.jpg") for i in range(args.num_images)]
        for seed, path in enumerate(paths):
            make_jpeg(path, args.width, args.height, seed, args.noise)
        file_mb = np.mean([pathlib.Path(p).stat().st_size for p in paths]) / 2 ** 20
        wall, cpu, outputs = run_in_fresh_process(time_paths, paths, args.target, args.repeats)
        memory = [run_in_fresh_process(peak_rss, paths, args.target, index) for index in range(len(PATHS))]

    print(f"{args.num_images} generated {args.width}x{args.height} JPEGs (quality 90, noise sigma {args.noise:g}, "
          f"{file_mb:.1f} MB each) -> 3x{args.target}x{args.target} arrays. images/s: median of {args.repeats} "
          "passes, the paths taking turns image by image; CPU = this process's CPU time only (less sensitive "
          "to other load). Peak RSS: each path alone in a fresh process.")
    print()
    print("| path | images/s (wall) | images/s (CPU) | CPU ms/image | peak RSS (MB) | RSS after imports (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for index, (label, _, _) in enumerate(PATHS):
        baseline, peak = memory[index]
        print(f"| {label} | {wall[index]:.1f} | {cpu[index]:.1f} | {1000.0 / cpu[index]:.0f} | {peak:.0f} "
              f"| {baseline:.0f} |")
    print()
    for name, plain, drafted in (("plain path", 0, 1), ("test transform", 2, 3)):
        difference = np.concatenate([np.abs(a - b).ravel() for a, b in zip(outputs[plain], outputs[drafted])])
        print(f"{name}: draft / plain speed-up {wall[drafted] / wall[plain]:.1f}x wall, "
              f"{cpu[drafted] / cpu[plain]:.1f}x CPU (goal >= 3x); pixel difference draft vs plain "
              f"mean {255.0 * difference.mean():.2f}, max {255.0 * difference.max():.0f} (of 255)")

if __name__ == "__main__":
    main()
