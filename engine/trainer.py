"""The training run: builds every part from the config and drives it with ignite."""
import logging
import os
import time
from collections import OrderedDict

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from data import make_data_loaders
from layers import make_loss
from modeling import build_model
from solver import WarmupMultiStepLR, make_center_optimizer, make_optimizer
from utils.atomic_io import atomic_torch_save
from utils.errors import UserError
from utils.metrics_report import format_metrics_table, plot_cmc, write_metrics_json

from .checkpointing import make_checkpoint_handler
from .diagnostics import Diagnostics, format_diagnostics
from .distributed import (average_gradients_outside_ddp, broadcast_buffers, is_main_process, process_device,
                          wrap_model)
from .evaluator import evaluate
from .extensions import build_extensions
from .run_folder import RunFolder, hold_run_folder, output_dir_for_resume
from .runtime import resolve_device, resolve_precision, seed_epoch, seed_everything
from .train_logging import attach_training_logs
from .train_step import NonFiniteLossError, TrainStep

logger = logging.getLogger("jifd.train")


class EpochData:
    """The train loader, seen lazily: each epoch's iterator starts only after the
    sampler has been told the epoch, so every epoch's batches depend on the seed
    and the epoch alone, and a resumed run sees the same batches."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        yield from self.loader


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
        return _train(cfg, resume)


def _train(cfg, resume):
    output_dir = cfg.OUTPUT_DIR
    main_process = is_main_process()
    run_folder = RunFolder(cfg, resume)
    device = process_device(resolve_device(cfg.MODEL.DEVICE))
    precision = resolve_precision(cfg, device)
    logger.info("torch %s on %s, autocast %s, channels_last %s, %d process(es)", torch.__version__, device,
                precision.dtype, precision.channels_last, idist.get_world_size())
    seed_everything(cfg.SOLVER.SEED)

    data = make_data_loaders(cfg)
    model = precision.prepare_model(build_model(cfg, data.num_classes))
    reid_loss = make_loss(cfg, data.num_classes).to(device)
    optimizer = make_optimizer(cfg, model)
    center_optimizer = None
    if reid_loss.center_criterion is not None:
        center_optimizer = make_center_optimizer(cfg, reid_loss.center_criterion)
    scheduler = WarmupMultiStepLR(optimizer, cfg.SOLVER.STEPS, cfg.SOLVER.GAMMA, cfg.SOLVER.WARMUP_FACTOR,
                                  cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.WARMUP_METHOD)
    max_epochs = cfg.SOLVER.MAX_EPOCHS
    epoch_length = cfg.SOLVER.ITERS_PER_EPOCH or len(data.train_loader)
    extensions = build_extensions(cfg, data, model, reid_loss, device, total_iters=max_epochs * epoch_length)
    diagnostics = (Diagnostics(cfg, data, precision, extensions.get("image_level"))
                   if cfg.SOLVER.DIAGNOSTICS and main_process else None)

    step = TrainStep(model, reid_loss, optimizer, center_optimizer, precision, extensions.values(),
                     center_loss_weight=cfg.SOLVER.CENTER_LOSS_WEIGHT)
    trainer = Engine(step)
    # ignite logs an exception before re-raising it, and the entry point reports it already.
    trainer.logger.setLevel(logging.CRITICAL)
    epoch_data = EpochData(data.train_loader)

    to_save = OrderedDict(model=model, optimizer=optimizer, scheduler=scheduler, trainer=trainer,
                          reid_loss=reid_loss)
    if center_optimizer is not None:
        to_save["center_optimizer"] = center_optimizer
    if step.scaler.is_enabled():
        to_save["grad_scaler"] = step.scaler
    to_save.update(extensions)
    if resume:
        path = run_folder.restore(to_save)
        _check_resumable(trainer, path, max_epochs, epoch_length)
        run_folder.accept(to_save)
        logger.info("resumed from %s at epoch %d", path, trainer.state.epoch)
    # After restoring, so that DDP starts every process from the same weights.
    step.model = wrap_model(model)
    average_gradients_outside_ddp([reid_loss] + [module for extension in extensions.values()
                                                 for module in extension.modules()])
    if not resume:
        # A resumed run restored its extensions' warmed-up state with the checkpoint.
        for extension in extensions.values():
            extension.warm_up(data.train_loader, precision)

    @trainer.on(Events.EPOCH_STARTED)
    def start_epoch(engine):
        seed_epoch(cfg.SOLVER.SEED, engine.state.epoch, idist.get_rank())
        if hasattr(data.train_sampler, "set_epoch"):
            data.train_sampler.set_epoch(engine.state.epoch)
        engine.set_data(epoch_data)

    @trainer.on(Events.EPOCH_COMPLETED)
    def step_schedule(engine):
        scheduler.step()

    reporter = attach_training_logs(trainer, cfg, optimizer, output_dir, main_process)

    checkpointer = make_checkpoint_handler(output_dir, to_save, trainer)
    last_metrics = {}

    @trainer.on(Events.EPOCH_COMPLETED)
    def save_and_evaluate(engine):
        epoch = engine.state.epoch
        if _is_due(epoch, cfg.SOLVER.CHECKPOINT_PERIOD, max_epochs):
            checkpointer(engine)
        if main_process:
            for extension in extensions.values():
                extension.on_epoch_end(epoch, output_dir, engine.state.batch)
        if _is_due(epoch, cfg.SOLVER.EVAL_PERIOD, max_epochs):
            started = time.time()
            broadcast_buffers(model)
            metrics = evaluate(cfg, model, data, precision)
            logger.info("%s\n(evaluated in %.1f s)",
                        format_metrics_table(metrics, f"Epoch {epoch}: {cfg.DATASETS.TARGET} query/gallery"),
                        time.time() - started)
            if data.validation is not None:
                metrics["validation"] = evaluate(cfg, model, data.validation, precision)
                logger.info("%s", format_metrics_table(
                    metrics["validation"], f"Epoch {epoch}: validation, {cfg.DATASETS.VALIDATION} query/gallery"))
            if diagnostics is not None:
                metrics["diagnostics"] = diagnostics(model)
                logger.info("Epoch %d diagnostics: %s", epoch, format_diagnostics(metrics["diagnostics"]))
            last_metrics.clear()
            last_metrics.update(metrics)
            if reporter is not None:
                reporter.log_evaluation(epoch, metrics)

    try:
        trainer.run(epoch_data, max_epochs=max_epochs, epoch_length=epoch_length)
    except NonFiniteLossError as err:
        kept = checkpointer.last_checkpoint
        raise NonFiniteLossError(f"{err} Last good checkpoint: {kept or 'none, none was saved yet'}") from None

    if not main_process:
        return last_metrics
    final_weights = os.path.join(output_dir, "model_final.pth")
    atomic_torch_save(model.state_dict(), final_weights)
    if last_metrics:
        validation = last_metrics.get("validation")
        write_metrics_json(output_dir, last_metrics, cfg.DATASETS.TARGET, final_weights,
                           validation=(cfg.DATASETS.VALIDATION, validation) if validation else None,
                           diagnostics=last_metrics.get("diagnostics"))
        plot_cmc(output_dir, last_metrics, label=cfg.DATASETS.TARGET)
        logger.info("metrics written to %s", os.path.join(output_dir, "metrics.json"))
    return last_metrics
