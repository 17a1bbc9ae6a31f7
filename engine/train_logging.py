"""What a run shows while it trains: smoothed loss terms, accuracy, lr, speed."""
import logging
import time

from ignite.engine import Events

logger = logging.getLogger("jifd.train")


class RunningAverages:
    """Exponential running averages of every logged term, by name.

    The terms depend on which JIFD parts are on, so they are discovered from
    the step's output rather than declared; they land in ``engine.state.metrics``
    where the progress bar and TensorBoard read them.
    """

    def __init__(self, alpha=0.98):
        self.alpha = alpha
        self.values = {}

    def reset(self, engine):
        self.values.clear()

    def update(self, engine):
        for name, value in engine.state.output.items():
            previous = self.values.get(name)
            self.values[name] = value if previous is None else self.alpha * previous + (1 - self.alpha) * value
        engine.state.metrics.update(self.values)

    def attach(self, engine):
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)


class Reporter:
    """Console/log.txt lines and, when tensorboard is installed, TensorBoard scalars."""

    def __init__(self, output_dir):
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.info("tensorboard is not installed: no TensorBoard logs")
        else:
            self.writer = SummaryWriter(log_dir=output_dir)

    def log_iteration(self, iteration, values, lr):
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"train/{name}", value, iteration)
            self.writer.add_scalar("train/lr", lr, iteration)

    def log_evaluation(self, epoch, metrics):
        """The target's numbers, and those of "validation" and "diagnostics" when present."""
        if self.writer is None:
            return
        for group, values in (("target", metrics), ("validation", metrics.get("validation"))):
            if values is not None:
                for name in ("mAP", "rank1", "rank5", "rank10", "mINP"):
                    self.writer.add_scalar(f"{group}/{name}", values[name], epoch)
        for name, value in metrics.get("diagnostics", {}).items():
            self.writer.add_scalar(f"diagnostics/{name}", value, epoch)
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()


def attach_training_logs(trainer, cfg, optimizer, output_dir):
    averages = RunningAverages()
    averages.attach(trainer)
    reporter = Reporter(output_dir)
    log_period = max(1, cfg.SOLVER.LOG_PERIOD)

    if cfg.SOLVER.PROGRESS_BAR:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=False).attach(trainer, metric_names=["loss", "acc"])

    @trainer.on(Events.ITERATION_COMPLETED(every=log_period))
    def log_iteration(engine):
        lr = optimizer.param_groups[0]["lr"]
        iteration_in_epoch = (engine.state.iteration - 1) % engine.state.epoch_length + 1
        terms = ", ".join(f"{name} {value:.4f}" for name, value in averages.values.items())
        logger.info("Epoch[%d] Iteration[%d/%d] %s, lr %.2e", engine.state.epoch, iteration_in_epoch,
                    engine.state.epoch_length, terms, lr)
        reporter.log_iteration(engine.state.iteration, averages.values, lr)

    @trainer.on(Events.EPOCH_STARTED)
    def start_clock(engine):
        engine.state.epoch_started_at = time.time()

    @trainer.on(Events.EPOCH_COMPLETED)
    def log_epoch(engine):
        seconds = time.time() - engine.state.epoch_started_at
        images = engine.state.epoch_length * cfg.SOLVER.IMS_PER_BATCH
        logger.info("Epoch %d done in %.1f s (%.1f images/s)", engine.state.epoch, seconds, images / seconds)

    trainer.add_event_handler(Events.COMPLETED, lambda engine: reporter.close())
    return reporter
