"""What a run shows while it trains: smoothed loss terms, accuracy, lr, speed, and TensorBoard scalars.

ignite's handlers do the work: RunningAverage smooths every term of the
step's output, ProgressBar draws the bar (on a terminal only: redirected
to a file, its carriage-return frames would fill it; the epoch-end log line
carries the same numbers), TensorboardLogger with OutputHandler and
OptimizerParamsHandler writes the training scalars. Two pieces are written
here because ignite lacks them: RunningAverage must be given each term's
name when it is attached, and the terms depend on which JIFD parts are on,
so they are attached when the first output names them (with everything that
reads them, in that order); and evaluation numbers come from a call at the
end of some epochs, not from an engine's state, so TensorBoardWriter.log_evaluation
writes them (nested dicts flattened into tags; the validation set's numbers
and the diagnostics under their own names).
"""
import logging
import numbers
import sys
import time

from ignite.engine import Events
from ignite.metrics import RunningAverage
from ignite.metrics.metric import SingleEpochRunningBatchWise

logger = logging.getLogger("jifd.train")

# Weight of the past in the running averages (ignite's default).
SMOOTHING = 0.98
# What the progress bar and the epoch-end line show.
HEADLINE = ("loss", "acc")


def _tensorboard_logger(output_dir):
    try:
        from ignite.handlers.tensorboard_logger import TensorboardLogger

        return TensorboardLogger(log_dir=output_dir)
    except ImportError:
        logger.info("tensorboard is not installed: no TensorBoard logs")
        return None


def flatten_numbers(values, prefix):
    """{tag: number} of every number in ``values``, nested dicts as ``prefix/key/subkey``; lists and text skipped."""
    flat = {}
    for key, value in values.items():
        tag = f"{prefix}/{key}"
        if isinstance(value, dict):
            flat.update(flatten_numbers(value, tag))
        elif isinstance(value, numbers.Number) and not isinstance(value, bool):
            flat[tag] = float(value)
    return flat


class TensorBoardWriter:
    """The run's TensorBoard writer (None without tensorboard): ignite's handlers for training scalars,
    ``log_evaluation`` for the numbers of an evaluation."""

    # Counts are the same at every evaluation; not worth a curve.
    UNCHANGING = ("num_query", "num_gallery", "num_valid_query", "unreadable_query", "unreadable_gallery")
    # Groups of an evaluation's numbers drawn under their own name, not under the target's.
    OWN_CURVES = ("validation", "diagnostics")

    def __init__(self, output_dir):
        self.tb_logger = _tensorboard_logger(output_dir)

    def attach_training(self, trainer, optimizer, log_period):
        if self.tb_logger is None:
            return
        from ignite.handlers.tensorboard_logger import OptimizerParamsHandler, OutputHandler

        every = Events.ITERATION_COMPLETED(every=log_period)
        self.tb_logger.attach(trainer, OutputHandler(tag="train", metric_names="all"), every)
        self.tb_logger.attach(trainer, OptimizerParamsHandler(optimizer, param_name="lr", tag="train"), every)

    def log_evaluation(self, epoch, metrics):
        """Every number of ``metrics`` (nested dicts too) at ``epoch``: the target's as ``target/<key>[/...]``,
        DATASETS.VALIDATION's as ``validation/<key>`` and the diagnostics as ``diagnostics/<name>``."""
        if self.tb_logger is None:
            return
        tags = flatten_numbers(self._changing(metrics, self.OWN_CURVES), "target")
        for group in self.OWN_CURVES:
            tags.update(flatten_numbers(self._changing(metrics.get(group) or {}), group))
        for tag, value in tags.items():
            self.tb_logger.writer.add_scalar(tag, value, epoch)
        self.tb_logger.writer.flush()

    def _changing(self, values, left_out=()):
        return {key: value for key, value in values.items() if key not in self.UNCHANGING + left_out}

    def close(self):
        if self.tb_logger is not None:
            self.tb_logger.close()


def show_progress_bar(cfg, stream=None):
    """SOLVER.PROGRESS_BAR, on a terminal only (tqdm draws on stderr)."""
    stream = sys.stderr if stream is None else stream
    return bool(cfg.SOLVER.PROGRESS_BAR) and stream.isatty()


def _log_exact_losses(engine):
    # log.txt only (SOLVER.LOG_EXACT_LOSSES): the exact values, to compare runs (see README, determinism)
    logger.debug("iteration %d: %s", engine.state.iteration,
                 ", ".join(f"{name} {value!r}" for name, value in engine.state.output.items()))


def attach_training_logs(trainer, cfg, optimizer, output_dir, main_process=True):
    """Running averages on every process (they average over processes); on the main one the
    progress bar, log lines and TensorBoard. Returns the TensorBoardWriter, or None off the main process."""
    log_period = max(1, cfg.SOLVER.LOG_PERIOD)
    writer = TensorBoardWriter(output_dir) if main_process else None
    terms = []

    def log_iteration(engine):
        lr = optimizer.param_groups[0]["lr"]
        iteration_in_epoch = (engine.state.iteration - 1) % engine.state.epoch_length + 1
        values = ", ".join(f"{name} {engine.state.metrics[name]:.4f}" for name in terms)
        logger.info("Epoch[%d] Iteration[%d/%d] %s, lr %.2e", engine.state.epoch, iteration_in_epoch,
                    engine.state.epoch_length, values, lr)

    def attach_on_first_output(engine):
        # Stays registered (removing a handler while ignite runs the list would skip the next one).
        if terms:
            return
        terms.extend(engine.state.output)
        for name in terms:
            RunningAverage(output_transform=lambda output, name=name: output[name], alpha=SMOOTHING).attach(
                engine, name, usage=SingleEpochRunningBatchWise())
        if not main_process:
            return
        # Attached after the averages, so that on every iteration they read this iteration's values.
        if show_progress_bar(cfg):
            from ignite.handlers import ProgressBar

            ProgressBar(persist=False).attach(engine, metric_names=list(HEADLINE))
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=log_period), log_iteration)
        writer.attach_training(engine, optimizer, log_period)

    trainer.add_event_handler(Events.ITERATION_COMPLETED, attach_on_first_output)
    if not main_process:
        return None
    if cfg.SOLVER.LOG_EXACT_LOSSES:
        trainer.add_event_handler(Events.ITERATION_COMPLETED, _log_exact_losses)

    @trainer.on(Events.EPOCH_STARTED)
    def start_clock(engine):
        engine.state.epoch_started_at = time.time()

    @trainer.on(Events.EPOCH_COMPLETED)
    def log_epoch(engine):
        seconds = time.time() - engine.state.epoch_started_at
        images = engine.state.epoch_length * cfg.SOLVER.IMS_PER_BATCH
        headline = ", ".join(f"{name} {engine.state.metrics[name]:.4f}" for name in HEADLINE)
        logger.info("Epoch %d done in %.1f s (%.1f images/s): %s", engine.state.epoch, seconds, images / seconds,
                    headline)

    trainer.add_event_handler(Events.COMPLETED, lambda engine: writer.close())
    return writer
