"""The training run: build every part from the config, attach ignite's handlers, run."""
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from data import make_data_loaders
from layers import make_loss
from modeling import build_model
from solver import WarmupMultiStepLR, make_center_optimizer, make_optimizer
from utils.atomic_io import atomic_torch_save
from utils.errors import UserError
from utils.metrics_report import format_metrics_table, write_metrics_json
from utils.visualization import plot_cmc

from .checkpointing import make_checkpoint_handler
from .diagnostics import Diagnostics, format_diagnostics
from .distributed import (average_gradients_outside_ddp, broadcast_buffers, is_main_process, process_device,
                          wrap_model)
from .evaluator import evaluate
from .extensions import build_extensions
from .run_folder import RunFolder, hold_run_folder, output_dir_for_resume
from .runtime import resolve_device, resolve_device_setup, seed_epoch, seed_everything
from .train_logging import attach_training_logs
from .train_step import NonFiniteLossError, TrainStep

logger = logging.getLogger("jifd.train")


class LazyTrainLoader:
    """The train loader, seen lazily: each epoch's iterator starts only after the
    sampler has been told the epoch, so every epoch's batches depend on the seed
    and the epoch alone, and a resumed run sees the same batches."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        yield from self.loader


@dataclass
class Training:
    """Every part of one training run (build_training)."""

    cfg: object
    data: object
    device_setup: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    extensions: OrderedDict
    diagnostics: object
    step: TrainStep
    trainer: Engine
    to_save: OrderedDict
    max_epochs: int
    epoch_length: int


def _is_due(epoch, period, max_epochs):
    return epoch == max_epochs or (period > 0 and epoch % period == 0)


def _check_resumable(trainer, path, max_epochs, epoch_length):
    state = trainer.state
    if state.epoch >= max_epochs:
        raise UserError(f"{path} is at epoch {state.epoch} and SOLVER.MAX_EPOCHS = {max_epochs}: nothing left "
                        "to train; raise SOLVER.MAX_EPOCHS to train longer, or test it with tools/test.py")
    if state.epoch_length != epoch_length:
        raise UserError(f"{path} was trained with {state.epoch_length} iterations per epoch, this configuration "
                        f"gives {epoch_length}: resume with the run's own config (SOLVER.ITERS_PER_EPOCH, "
                        "SOLVER.IMS_PER_BATCH and the datasets must not change)")


def do_train(cfg, resume=""):
    """Train as ``cfg`` says; return the metrics of the last evaluation.

    Under torchrun (engine.distributed) every process trains its share of
    each batch; only rank 0 logs and writes files. OUTPUT_DIR is locked for
    the run (engine.run_folder); a resume writes only into its own folder.
    """
    if resume:
        output_dir_for_resume(cfg, resume, output_dir_given=True)
    with hold_run_folder(cfg.OUTPUT_DIR):
        run_folder = RunFolder(cfg, resume)
        training = build_training(cfg)
        if resume:
            _resume(training, run_folder)
        _start(training, resumed=bool(resume))
        return run_training(training)


def build_training(cfg):
    """The data, model, losses, optimisers, schedule, JIFD extensions, diagnostics, step and ignite engine."""
    device = process_device(resolve_device(cfg.MODEL.DEVICE))
    device_setup = resolve_device_setup(cfg, device)
    logger.info("torch %s on %s, autocast %s, channels_last %s, %d process(es)", torch.__version__, device,
                device_setup.dtype, device_setup.channels_last, idist.get_world_size())
    seed_everything(cfg.SOLVER.SEED)

    data = make_data_loaders(cfg)
    model = device_setup.prepare_model(build_model(cfg, data.num_classes))
    reid_loss = make_loss(cfg, data.num_classes).to(device)
    optimizer = make_optimizer(cfg, model)
    center_optimizer = None
    if reid_loss.center_criterion is not None:
        center_optimizer = make_center_optimizer(cfg, reid_loss.center_criterion)
    scheduler = WarmupMultiStepLR(optimizer, cfg.SOLVER.STEPS, cfg.SOLVER.GAMMA, cfg.SOLVER.WARMUP_FACTOR,
                                  cfg.SOLVER.WARMUP_EPOCHS, cfg.SOLVER.WARMUP_METHOD)
    max_epochs = cfg.SOLVER.MAX_EPOCHS
    epoch_length = cfg.SOLVER.ITERS_PER_EPOCH or len(data.train_loader)
    extensions = build_extensions(cfg, data, model, reid_loss, device, total_iters=max_epochs * epoch_length)
    diagnostics = (Diagnostics(cfg, data, device_setup, extensions.get("image_level"))
                   if cfg.SOLVER.DIAGNOSTICS and is_main_process() else None)

    step = TrainStep(model, reid_loss, optimizer, center_optimizer, device_setup, extensions.values(),
                     center_loss_weight=cfg.SOLVER.CENTER_LOSS_WEIGHT)
    trainer = Engine(step)
    # ignite logs an exception before re-raising it, and the entry point reports it already.
    trainer.logger.setLevel(logging.CRITICAL)
    to_save = OrderedDict(model=model, optimizer=optimizer, scheduler=scheduler, trainer=trainer,
                          reid_loss=reid_loss)
    if center_optimizer is not None:
        to_save["center_optimizer"] = center_optimizer
    if step.scaler.is_enabled():
        to_save["grad_scaler"] = step.scaler
    to_save.update(extensions)
    return Training(cfg, data, device_setup, model, optimizer, scheduler, extensions, diagnostics, step, trainer,
                    to_save, max_epochs, epoch_length)


def _resume(training, run_folder):
    path = run_folder.restore(training.to_save)
    _check_resumable(training.trainer, path, training.max_epochs, training.epoch_length)
    run_folder.accept(training.to_save)
    logger.info("resumed from %s at epoch %d", path, training.trainer.state.epoch)


def _start(training, resumed):
    """Wrap the model for DDP (after a restore, so that every process starts from the same weights), and warm
    the extensions up in a fresh run (a resumed run restored their warmed-up state with the checkpoint)."""
    training.step.model = wrap_model(training.model)
    average_gradients_outside_ddp([training.step.reid_loss] + [module for extension in training.extensions.values()
                                                               for module in extension.modules()])
    if not resumed:
        for extension in training.extensions.values():
            extension.warm_up(training.data.train_loader, training.device_setup)


def _evaluate_epoch(training, epoch):
    """The metrics of the target (and of DATASETS.VALIDATION, and the diagnostics) after ``epoch``, logged."""
    cfg, model, data = training.cfg, training.model, training.data
    started = time.time()
    broadcast_buffers(model)
    metrics = evaluate(cfg, model, data, training.device_setup)
    logger.info("%s\n(evaluated in %.1f s)",
                format_metrics_table(metrics, f"Epoch {epoch}: {cfg.DATASETS.TARGET} query/gallery"),
                time.time() - started)
    if data.validation is not None:
        metrics["validation"] = evaluate(cfg, model, data.validation, training.device_setup)
        logger.info("%s", format_metrics_table(
            metrics["validation"], f"Epoch {epoch}: validation, {cfg.DATASETS.VALIDATION} query/gallery"))
    if training.diagnostics is not None:
        metrics["diagnostics"] = training.diagnostics(model)
        logger.info("Epoch %d diagnostics: %s", epoch, format_diagnostics(metrics["diagnostics"]))
    return metrics


def attach_handlers(training, last_metrics):
    """Per-epoch seeding and schedule, the logs, checkpoints, the extensions' epoch ends and evaluations, the
    latter's metrics kept in ``last_metrics``; returns the checkpoint handler."""
    cfg, trainer, data = training.cfg, training.trainer, training.data
    main_process = is_main_process()
    epoch_loader = LazyTrainLoader(data.train_loader)

    @trainer.on(Events.EPOCH_STARTED)
    def start_epoch(engine):
        seed_epoch(cfg.SOLVER.SEED, engine.state.epoch, idist.get_rank())
        if hasattr(data.train_sampler, "set_epoch"):
            data.train_sampler.set_epoch(engine.state.epoch)
        engine.set_data(epoch_loader)

    @trainer.on(Events.EPOCH_COMPLETED)
    def step_schedule(engine):
        training.scheduler.step()

    writer = attach_training_logs(trainer, cfg, training.optimizer, cfg.OUTPUT_DIR, main_process)
    checkpointer = make_checkpoint_handler(cfg.OUTPUT_DIR, training.to_save, trainer)

    @trainer.on(Events.EPOCH_COMPLETED)
    def save_and_evaluate(engine):
        epoch = engine.state.epoch
        if _is_due(epoch, cfg.SOLVER.CHECKPOINT_PERIOD, training.max_epochs):
            checkpointer(engine)
        if main_process:
            for extension in training.extensions.values():
                extension.on_epoch_end(epoch, cfg.OUTPUT_DIR, engine.state.batch)
        if _is_due(epoch, cfg.SOLVER.EVAL_PERIOD, training.max_epochs):
            metrics = _evaluate_epoch(training, epoch)
            last_metrics.clear()
            last_metrics.update(metrics)
            if writer is not None:
                writer.log_evaluation(epoch, metrics)

    return checkpointer, epoch_loader


def run_training(training):
    """Attach the handlers and train; on the main process write model_final.pth, metrics.json and cmc.png."""
    cfg = training.cfg
    last_metrics = {}
    checkpointer, epoch_loader = attach_handlers(training, last_metrics)
    try:
        training.trainer.run(epoch_loader, max_epochs=training.max_epochs, epoch_length=training.epoch_length)
    except NonFiniteLossError as err:
        kept = checkpointer.last_checkpoint
        raise NonFiniteLossError(f"{err} Last good checkpoint: {kept or 'none, none was saved yet'}") from None

    if not is_main_process():
        return last_metrics
    output_dir = cfg.OUTPUT_DIR
    final_weights = os.path.join(output_dir, "model_final.pth")
    atomic_torch_save(training.model.state_dict(), final_weights)
    if last_metrics:
        validation = last_metrics.get("validation")
        write_metrics_json(output_dir, last_metrics, cfg.DATASETS.TARGET, final_weights,
                           validation=(cfg.DATASETS.VALIDATION, validation) if validation else None,
                           diagnostics=last_metrics.get("diagnostics"))
        plot_cmc(output_dir, last_metrics, label=cfg.DATASETS.TARGET)
        logger.info("metrics written to %s", os.path.join(output_dir, "metrics.json"))
    return last_metrics
