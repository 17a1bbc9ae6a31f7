"""Feature extraction and re-ID evaluation on the target's query + gallery."""
import logging

import torch
from ignite.engine import Engine

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


def evaluate(cfg, model, data, precision):
    """Metrics of ``model`` on ``data.test_loader`` (query first, then gallery)."""
    metric = build_reid_metric(cfg, data.num_query)
    evaluator = create_evaluator(model, precision, metric, flip=cfg.TEST.FLIP)
    evaluator.run(IndexedBatches(data.test_loader))
    unreadable = data.test_loader.dataset.num_unreadable
    if unreadable:
        logger.warning("%d unreadable test image(s) were replaced by blank images (named in the warnings above); "
                       "the metrics count them as uninformative images", unreadable)
    return dict(evaluator.state.metrics["reid"])
