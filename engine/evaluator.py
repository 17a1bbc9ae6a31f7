"""Feature extraction and re-ID evaluation on the target's query + gallery."""
import torch
from ignite.engine import Engine

from utils.reid_metric import ReIDMetric


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
    )


def extract_batch_features(model, images, precision, flip=False):
    """Test features of one batch; with ``flip`` the mirror image's feature is averaged in."""
    with torch.no_grad(), precision.autocast():
        images = precision.images(images)
        feats = model(images)
        if flip:
            feats = (feats + model(torch.flip(images, dims=[3]))) / 2
    return feats.float()


def create_evaluator(model, precision, metric, flip=False):
    """An ignite engine whose ``state.metrics`` holds mAP, rank1, ... after a run."""

    def step(engine, batch):
        model.eval()
        feats = extract_batch_features(model, batch["images"], precision, flip)
        return feats, batch["pids"], batch["camids"]

    evaluator = Engine(step)
    metric.attach(evaluator, "reid")
    return evaluator


def evaluate(cfg, model, data, precision):
    """Metrics of ``model`` on ``data.test_loader`` (query first, then gallery)."""
    metric = build_reid_metric(cfg, data.num_query)
    evaluator = create_evaluator(model, precision, metric, flip=cfg.TEST.FLIP)
    evaluator.run(data.test_loader)
    return dict(evaluator.state.metrics["reid"])
