"""Feature extraction and re-ID evaluation on the target's query + gallery."""
import logging
import os

import ignite.distributed as idist
import torch
from ignite.engine import Engine

from utils.errors import UserError
from utils.reid_metric import ReIDMetric

logger = logging.getLogger("jifd.eval")


def normalises_features(cfg):
    """Whether evaluation L2-normalises the features (ReIDMetric does for either key)."""
    return cfg.TEST.FEAT_NORM == "yes" or cfg.TEST.DISTANCE == "cosine"


def build_reid_metric(cfg, num_query):
    return ReIDMetric(
        num_query,
        max_rank=cfg.TEST.MAX_RANK,
        distance=cfg.TEST.DISTANCE,
        feat_norm=cfg.TEST.FEAT_NORM == "yes",
        memory_mb=cfg.TEST.EVAL_MEMORY_MB,
        re_ranking=cfg.TEST.RE_RANKING == "yes",
        k1=cfg.TEST.RE_RANKING_K1,
        k2=cfg.TEST.RE_RANKING_K2,
        lambda_value=cfg.TEST.RE_RANKING_LAMBDA,
        aqe=dict(k=cfg.TEST.AQE.QE_K, alpha=cfg.TEST.AQE.ALPHA, times=cfg.TEST.AQE.QE_TIME)
        if cfg.TEST.AQE.ENABLED else None,
    )


def extract_batch_features(model, images, precision, flip=False):
    """Test features of one batch; with ``flip`` the mirror image's feature is averaged in."""
    with torch.no_grad(), precision.autocast():
        images = precision.images(images)
        feats = model(images)
        if flip:
            feats = (feats + model(torch.flip(images, dims=[3]))) / 2
    return feats.float()


class IndexedBatches:
    """The test loader's batches with the dataset index of each sample.

    ReIDMetric needs them in a multi-process run, where each process
    evaluates its shard (a DistributedSampler's, padded with repeats) and the
    gathered features are put back in query-first order, duplicates dropped.
    The loader reads its sampler's order sequentially, so batch after batch
    takes the next indices of that order.
    """

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        order = torch.as_tensor(list(self.loader.sampler), dtype=torch.long)
        position = 0
        for batch in self.loader:
            count = len(batch["pids"])
            yield batch, order[position:position + count]
            position += count


def create_evaluator(model, precision, metric, flip=False):
    """An ignite engine over IndexedBatches whose ``state.metrics`` holds mAP, rank1, ... after a run."""

    def step(engine, batch_and_indices):
        batch, indices = batch_and_indices
        model.eval()
        feats = extract_batch_features(model, batch["images"], precision, flip)
        return feats, batch["pids"], batch["camids"], indices

    evaluator = Engine(step)
    metric.attach(evaluator, "reid")
    return evaluator


def count_unreadable(dataset, num_query, max_fraction):
    """(unreadable queries, unreadable gallery images) of the test ``dataset`` (query first), over every process.

    Each was evaluated as a blank image; above ``max_fraction`` (TEST.MAX_UNREADABLE) of the query or
    of the gallery the metrics would describe blank images, so they are refused, naming the folder.
    """
    flags = dataset.unreadable_flags().int()
    if idist.get_world_size() > 1:
        # Each process read its shard; an image repeated to pad a shard counts once.
        flags = idist.all_reduce(flags, op="MAX")
    records = dataset.records
    counts = []
    for split, part, split_records in (("query", flags[:num_query], records[:num_query]),
                                       ("gallery", flags[num_query:], records[num_query:])):
        count = int(part.sum())
        counts.append(count)
        if count > max_fraction * len(split_records):
            folders = sorted({os.path.dirname(record.path) for record, bad in zip(split_records, part) if bad})
            raise UserError(
                f"{count} of {len(split_records)} {split} images in {', '.join(folders)} are unreadable "
                f"({100.0 * count / len(split_records):.1f}%, above TEST.MAX_UNREADABLE = {max_fraction:g}): "
                "metrics over blank stand-ins would mislead, so none were written. Restore the files "
                "(tools/check_dataset.py lists them), or raise TEST.MAX_UNREADABLE")
    return tuple(counts)


def evaluate(cfg, model, data, precision):
    """Metrics of ``model`` on ``data.test_loader`` (query first, then gallery), with the counts of
    unreadable test images ("unreadable_query", "unreadable_gallery")."""
    metric = build_reid_metric(cfg, data.num_query)
    evaluator = create_evaluator(model, precision, metric, flip=cfg.TEST.FLIP)
    evaluator.run(IndexedBatches(data.test_loader))
    unreadable_query, unreadable_gallery = count_unreadable(data.test_loader.dataset, data.num_query,
                                                            cfg.TEST.MAX_UNREADABLE)
    if unreadable_query + unreadable_gallery:
        logger.warning("%d unreadable query and %d unreadable gallery image(s) were replaced by blank images "
                       "(named in the warnings above); the metrics count them as uninformative images",
                       unreadable_query, unreadable_gallery)
    return dict(evaluator.state.metrics["reid"], unreadable_query=unreadable_query,
                unreadable_gallery=unreadable_gallery)
