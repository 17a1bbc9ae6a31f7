"""The self-check behind tools/check_gpu.py, which a user runs once on a new machine.

On CUDA, for each protocol configuration (configs/*2opri.yml) at its real
size, on generated images (no dataset, no ImageNet file):
- a few iterations of the trainer's own step (engine.train_step.TrainStep,
  with the JIFD extensions the config switches on) under fp16 autocast with
  the GradScaler and channels_last: images per second, peak GPU memory, every
  loss finite, and every optimiser's parameters moved (the GradScaler steps
  several optimisers and skips those whose gradients overflowed);
- the fp16 loss against the fp32 loss of the same weights and batch, within
  LOSS_TOLERANCE;
then the evaluator on the GPU against the CPU on the same features (VeRi's
test size, equal metrics within METRIC_TOLERANCE), and, with two or more
GPUs, two processes training under DDP over nccl, whose weights must stay
equal.

Without CUDA the same checks run on the CPU at a small size (resnet18,
64 x 64, batch 16, generator 32 x 32): training in fp32, bf16 autocast as the
low precision, the blocked evaluator against the dense classic one, and the
two processes over gloo. fp16 with the GradScaler, channels_last, GPU
evaluation and nccl are then not exercised, and the report says so.
"""
import copy
import glob
import json
import logging
import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine, Events

from config import load_cfg
from data.dataset_presets import domain_mode, get_preset
from layers import make_loss
from modeling import build_model
from solver import make_center_optimizer, make_optimizer
from utils.distances import compute_distance_matrix
from utils.reid_metric import eval_func_with_minp, evaluate_features

from .distributed import average_gradients_outside_ddp, wrap_model
from .extensions import build_extensions
from .runtime import DeviceSetup, resolve_device_setup
from .train_step import TrainStep

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
# Every check: no ImageNet file, no swap pictures, no generator warm-up (nor its cache), and L_gen at its
# full weight from the first step, so that the step measured is the whole step.
_ALWAYS = ["MODEL.PRETRAIN_CHOICE", "none", "DISENTANGLE.IMAGE.VIS_PERIOD", 0, "DISENTANGLE.IMAGE.WARMUP_ITERATIONS", 0,
           "DISENTANGLE.IMAGE.WARMUP_CACHE", "", "DISENTANGLE.IMAGE.GEN_RAMP_ITERS", 0]
# The CPU's small size.
_SMALL = ["MODEL.NAME", "resnet18", "INPUT.SIZE_TRAIN", [64, 64], "INPUT.SIZE_TEST", [64, 64],
          "SOLVER.IMS_PER_BATCH", 16, "DISENTANGLE.IMAGE.SIZE", [32, 32], "DISENTANGLE.IMAGE.BASE_CHANNELS", 8]
# Largest |low-precision total loss - fp32 total loss| / |fp32 total loss| accepted.
LOSS_TOLERANCE = {torch.float16: 0.02, torch.bfloat16: 0.05}
# Largest difference of any metric (mAP, CMC, mINP) between the two evaluations.
METRIC_TOLERANCE = 1e-6
# Cameras per source (design/datasets.md): the domains of a one-source image level.
_CAMERAS = {"veri": 20, "vehiclex": 31, "opri": 64}
# (queries, gallery, feature size) of the evaluation check: VeRi's test split on CUDA; on the CPU
# enough queries for three blocks of the blocked evaluator (memory bound _CPU_EVAL_MB).
_EVAL_SIZE = {"cuda": (1678, 11579, 2048), "cpu": (600, 1500, 64)}
_CPU_EVAL_MB = 12


@dataclass
class Check:
    """One line of the report."""

    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    device: str
    checks: list = field(default_factory=list)

    def add(self, name, passed, detail):
        self.checks.append(Check(name, passed, detail))
        return passed

    @property
    def failed(self):
        return [check for check in self.checks if not check.passed]


def protocol_configs():
    """The protocol configurations a user trains: configs/*2opri.yml."""
    return sorted(glob.glob(os.path.join(CONFIG_DIR, "*2opri.yml")))


def check_cfg(path, device_type):
    """The config at ``path`` for the check: its real size on CUDA (fp16), the small size on the CPU (fp32)."""
    overrides = list(_ALWAYS) + ["MODEL.DEVICE", device_type]
    overrides += ["SOLVER.AMP", "fp16"] if device_type == "cuda" else list(_SMALL) + ["SOLVER.AMP", "off"]
    return load_cfg(path, overrides)


def _sizes(cfg):
    """(identities, domains) of the configured sources, as their published counts give them."""
    sources = [name.lower() for name in cfg.DATASETS.SOURCES]
    num_classes = sum(get_preset(cfg, name).published("train")[0] for name in sources)
    num_domains = len(sources) if domain_mode(cfg) == "dataset" else sum(_CAMERAS[name] for name in sources)
    return num_classes, num_domains


def generated_batch(cfg, num_classes, num_domains, seed=0):
    """A P x K batch of generated images, normalised as the loaders do, with both domains in it."""
    generator = torch.Generator().manual_seed(seed)
    size = cfg.SOLVER.IMS_PER_BATCH // idist.get_world_size()
    height, width = cfg.INPUT.SIZE_TRAIN
    mean = torch.tensor(cfg.INPUT.PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(cfg.INPUT.PIXEL_STD).view(1, 3, 1, 1)
    images = (torch.rand(size, 3, height, width, generator=generator) - mean) / std
    identity = torch.arange(size) // cfg.DATALOADER.NUM_INSTANCE
    pids = (identity + seed * size) % num_classes
    return {"images": images, "pids": pids, "camids": torch.arange(size) % cfg.DATALOADER.NUM_INSTANCE,
            "domains": identity % num_domains}


@dataclass
class Parts:
    """What the trainer builds for a step, from a config alone."""

    model: torch.nn.Module
    reid_loss: torch.nn.Module
    optimizer: torch.optim.Optimizer
    center_optimizer: object
    extensions: dict


def build_parts(cfg, device_setup, num_classes, num_domains, total_iters, seed=0):
    """The parts of a run of ``total_iters`` training iterations (the JIFD ramps' length)."""
    torch.manual_seed(seed)
    model = device_setup.prepare_model(build_model(cfg, num_classes))
    reid_loss = make_loss(cfg, num_classes).to(device_setup.device)
    center_optimizer = make_center_optimizer(cfg, reid_loss.center_criterion) if reid_loss.center_criterion else None
    data = SimpleNamespace(num_classes=num_classes, num_domains=num_domains, train_records=[])
    return Parts(model, reid_loss, make_optimizer(cfg, model), center_optimizer,
                 build_extensions(cfg, data, model, reid_loss, device_setup.device, total_iters))


def trained_modules(parts):
    """name -> module of everything the step trains: the model, the center loss, each extension's networks."""
    modules = {"model": parts.model, "center loss": parts.reid_loss}
    for name, extension in parts.extensions.items():
        modules.update({f"{name}.{type(module).__name__}": module for module in extension.modules()})
    return {name: module for name, module in modules.items()
            if any(param.requires_grad for param in module.parameters())}


def _flat_parameters(module):
    return torch.cat([param.detach().float().reshape(-1).cpu() for param in module.parameters() if param.requires_grad])


def losses_of(parts, batch, device_setup, seed=0):
    """The step's loss terms (floats) for ``batch`` under ``device_setup``, without updating anything."""
    torch.manual_seed(seed)
    parts.model.train()
    for extension in parts.extensions.values():
        extension.train()
    batch = {key: value.to(device_setup.device) for key, value in batch.items()}
    batch["images"] = device_setup.images(batch["images"])
    with torch.no_grad(), device_setup.autocast():
        outputs = parts.model(batch["images"])
        losses = dict(parts.reid_loss(outputs, batch["pids"]))
        for extension in parts.extensions.values():
            losses.update(extension.compute_losses(batch, outputs, parts.model, parts.reid_loss))
    return {name: float(value) for name, value in losses.items()}


def check_precision(report, cfg, device_setup, sizes, batch):
    """The low-precision loss against fp32's, same weights (copies of one model) and same batch."""
    low = device_setup.dtype or torch.bfloat16
    parts = build_parts(cfg, device_setup, *sizes, total_iters=1)
    fp32 = losses_of(copy.deepcopy(parts), batch, DeviceSetup(device_setup.device, None, device_setup.channels_last))
    reduced = losses_of(copy.deepcopy(parts), batch, DeviceSetup(device_setup.device, low, device_setup.channels_last))
    reference, value = sum(fp32.values()), sum(reduced.values())
    relative = abs(value - reference) / max(abs(reference), 1e-12)
    name = str(low).replace("torch.", "")
    worst = max(fp32, key=lambda term: abs(reduced[term] - fp32[term]))
    return report.add(
        f"{name} vs fp32 loss", relative <= LOSS_TOLERANCE[low],
        f"same weights and batch: total {value:.5f} vs {reference:.5f}, difference {100 * relative:.3f}% "
        f"(tolerance {100 * LOSS_TOLERANCE[low]:g}%); largest in term {worst}: {reduced[worst]:.5f} vs "
        f"{fp32[worst]:.5f}")


def _peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_training(report, cfg, device_setup, sizes, batch, iterations):
    """``iterations`` steps of the trainer's step on ``batch``: speed, memory, finite losses, every optimiser moved."""
    device = device_setup.device
    parts = build_parts(cfg, device_setup, *sizes, total_iters=iterations + 1)
    step = TrainStep(parts.model, parts.reid_loss, parts.optimizer, parts.center_optimizer, device_setup,
                     parts.extensions.values(), center_loss_weight=cfg.SOLVER.CENTER_LOSS_WEIGHT)
    modules = trained_modules(parts)
    before = {name: _flat_parameters(module) for name, module in modules.items()}
    engine = Engine(step)
    engine.logger.disabled = True
    scales, losses, clock = [], [], {}

    @engine.on(Events.ITERATION_COMPLETED)
    def record(engine):
        losses.append(engine.state.output["loss"])
        scales.append(step.scaler.get_scale() if step.scaler.is_enabled() else None)
        if engine.state.iteration == 1:
            # The first iteration pays for cuDNN's algorithm search and allocations: not timed.
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            clock["start"] = time.perf_counter()

    engine.run([batch] * (iterations + 1), max_epochs=1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - clock["start"]
    images_per_second = iterations * len(batch["pids"]) / seconds
    still = [name for name, module in modules.items() if torch.equal(before[name], _flat_parameters(module))]
    finite = all(np.isfinite(losses))
    scaler_note = ""
    if step.scaler.is_enabled():
        skipped = sum(later < earlier for earlier, later in zip(scales, scales[1:]))
        scaler_note = f"; the GradScaler skipped {skipped} of {len(scales) - 1} timed steps (scale now {scales[-1]:g})"
    memory = "GPU memory" if device.type == "cuda" else "process RSS"
    detail = (f"{iterations} timed iterations: {images_per_second:,.1f} images/s, peak {memory} "
              f"{_peak_memory_mb(device):,.0f} MB, loss {losses[0]:.4f} -> {losses[-1]:.4f}{scaler_note}")
    if not finite:
        detail += "; a loss became NaN or inf"
    if still:
        detail += f"; never updated: {', '.join(still)}"
    return report.add("training", finite and not still, detail)


def check_evaluation(report, device):
    """Metrics of the same features by two evaluators: on the GPU and the CPU, or blocked and dense on the CPU."""
    num_query, num_gallery, dim = _EVAL_SIZE[device.type]
    generator = torch.Generator().manual_seed(0)
    identities = 200 if device.type == "cuda" else 40
    centres = torch.randn(identities, dim, generator=generator)
    g_pids = torch.arange(num_gallery) % identities
    q_pids = torch.arange(num_query) % identities
    gf = centres[g_pids] + 1.5 * torch.randn(num_gallery, dim, generator=generator)
    qf = centres[q_pids] + 1.5 * torch.randn(num_query, dim, generator=generator)
    g_camids, q_camids = (torch.arange(num_gallery) % 5).numpy(), (torch.arange(num_query) % 5 + 1).numpy() % 5
    labels = (q_pids.numpy(), g_pids.numpy(), q_camids, g_camids)
    if device.type == "cuda":
        first = evaluate_features(qf, gf, *labels, device=device)
        second = evaluate_features(qf, gf, *labels, device="cpu")
        what = f"GPU vs CPU on the same features ({num_query:,} queries x {num_gallery:,} gallery, {dim}-d)"
    else:
        first = evaluate_features(qf, gf, *labels, memory_mb=_CPU_EVAL_MB)
        cmc, mean_ap, minp = eval_func_with_minp(compute_distance_matrix(qf, gf).numpy(), *labels)
        second = {"mAP": mean_ap, "mINP": minp, "cmc": list(cmc)}
        what = (f"blocked vs dense evaluator on the CPU ({num_query} queries x {num_gallery} gallery, {dim}-d; "
                "no GPU to compare with)")
    difference = max([abs(first[key] - second[key]) for key in ("mAP", "mINP")]
                     + [abs(a - b) for a, b in zip(first["cmc"], second["cmc"])])
    return report.add("evaluation", difference <= METRIC_TOLERANCE,
                      f"{what}: mAP {first['mAP']:.6f} vs {second['mAP']:.6f}, largest metric difference "
                      f"{difference:.2g} (tolerance {METRIC_TOLERANCE:g})")


def _two_process_worker(local_rank, config_path, device_type, iterations, result_path):
    """One of two processes: the config's step under DDP on its own batches; rank 0 writes whether the
    weights stayed equal on both."""
    logging.disable(logging.INFO)
    device = torch.device("cuda", local_rank) if device_type == "cuda" else torch.device("cpu")
    if device_type == "cuda":
        torch.cuda.set_device(device)
    else:
        # Two processes share the cores.
        torch.set_num_threads(max(1, torch.get_num_threads() // 2))
    cfg = check_cfg(config_path, device_type)
    device_setup = resolve_device_setup(cfg, device)
    sizes = _sizes(cfg)
    parts = build_parts(cfg, device_setup, *sizes, total_iters=iterations)
    step = TrainStep(wrap_model(parts.model), parts.reid_loss, parts.optimizer, parts.center_optimizer, device_setup,
                     parts.extensions.values(), center_loss_weight=cfg.SOLVER.CENTER_LOSS_WEIGHT)
    average_gradients_outside_ddp([module for name, module in trained_modules(parts).items() if name != "model"])
    batches = [generated_batch(cfg, *sizes, seed=1 + idist.get_rank() + 2 * index) for index in range(iterations)]
    engine = Engine(step)
    engine.logger.disabled = True
    started = time.perf_counter()
    engine.run(batches, max_epochs=1)
    checksums = torch.stack([_flat_parameters(module).double().sum() for module in trained_modules(parts).values()])
    gathered = idist.all_gather(checksums.to(idist.device())).view(2, -1).cpu()
    if idist.get_rank() == 0:
        with open(result_path, "w") as handle:
            json.dump({"equal": bool(torch.equal(gathered[0], gathered[1])), "seconds": time.perf_counter() - started,
                       "backend": idist.backend()}, handle)


def check_two_processes(report, config_path, device, iterations=2):
    """Two processes training one config under DDP (nccl on 2+ GPUs, gloo on the CPU)."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return report.add("two processes (nccl)", True, "skipped: needs 2 or more GPUs, this machine has 1")
    with tempfile.TemporaryDirectory() as folder:
        result_path = os.path.join(folder, "result.json")
        # ignite's launcher logs every step at INFO.
        logging.disable(logging.INFO)
        try:
            with idist.Parallel(backend=backend, nproc_per_node=2) as parallel:
                parallel.run(_two_process_worker, config_path, device.type, iterations, result_path)
            with open(result_path) as handle:
                result = json.load(handle)
        except Exception as err:  # the check reports any failure of the other processes as its result
            # A spawned process's error arrives as its whole traceback: its last line says what failed.
            lines = [line for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
            return report.add(f"two processes ({backend})", False, lines[-1].strip())
        finally:
            logging.disable(logging.NOTSET)
    name = os.path.relpath(config_path)
    return report.add(
        f"two processes ({result['backend']})", result["equal"],
        f"{iterations} DDP iterations of {name} on different batches in {result['seconds']:.1f} s: weights "
        + ("equal on both processes" if result["equal"] else "DIFFER between the processes"))


def run_checks(config_paths, iterations=None, two_processes=True, cpu=False, out=print):
    """Every check, printed through ``out`` as it finishes; returns the Report. ``cpu``: the CPU checks
    even where CUDA is present."""
    cuda = torch.cuda.is_available() and not cpu
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    report = Report(device=str(device))
    iterations = iterations or (10 if cuda else 3)
    if cuda:
        names = ", ".join(torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count()))
        out(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s): {names}")
    else:
        why = "--cpu" if torch.cuda.is_available() else "no CUDA device"
        out(f"torch {torch.__version__}: {why}. The checks run on the CPU at a small size (resnet18, 64 x 64, "
            "batch 16, generator 32 x 32; fp32 training, bf16 as the low precision). fp16 with the GradScaler, "
            "channels_last, evaluation on the GPU and nccl need a CUDA machine: run this there.")

    def show(check):
        out(f"  [{'ok' if check.passed else 'FAILED'}] {check.name}: {check.detail}")

    for path in config_paths:
        cfg = check_cfg(path, device.type)
        device_setup = resolve_device_setup(cfg, device)
        sizes = _sizes(cfg)
        levels = [name for name, on in (("image", cfg.DISENTANGLE.IMAGE.ENABLED),
                                         ("feature", cfg.DISENTANGLE.FEATURE.ENABLED)) if on]
        out(f"{os.path.relpath(path)}: {cfg.MODEL.NAME} {cfg.INPUT.SIZE_TRAIN[0]}x{cfg.INPUT.SIZE_TRAIN[1]}, batch "
            f"{cfg.SOLVER.IMS_PER_BATCH}, {sizes[0]} identities, JIFD levels: {', '.join(levels) or 'none'}; "
            f"training in {str(device_setup.dtype or 'fp32').replace('torch.', '')}, channels_last "
            f"{device_setup.channels_last}")
        batch = generated_batch(cfg, *sizes)
        check_training(report, cfg, device_setup, sizes, batch, iterations)
        show(report.checks[-1])
        check_precision(report, cfg, device_setup, sizes, batch)
        show(report.checks[-1])
        if cuda:
            torch.cuda.empty_cache()
    check_evaluation(report, device)
    show(report.checks[-1])
    if two_processes and config_paths:
        check_two_processes(report, config_paths[0], device)
        show(report.checks[-1])
    failed = report.failed
    out(f"{len(report.checks) - len(failed)} of {len(report.checks)} checks passed"
        + (f"; FAILED: {', '.join(check.name for check in failed)}" if failed else ""))
    return report
