"""The evaluation loop: test features of a loader's images, and the re-ID metrics of a test set.

ReIDMetric collects the features of an ignite evaluator run (query first,
then gallery; gathered over processes) and ranks them: blocked
(utils.reid_metric.evaluate_features), after average query expansion
(TEST.AQE) or k-reciprocal re-ranking (TEST.RE_RANKING) when asked.
"""
import logging
import os
import time
from dataclasses import dataclass

import ignite.distributed as idist
import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine
from ignite.metrics import Metric

from utils.distances import check_distance, yes_no
from utils.errors import UserError
from utils.query_expansion import average_query_expansion
from utils.re_ranking import re_ranking as k_reciprocal_distances
from utils.reid_metric import evaluate_distance_matrix, evaluate_features

logger = logging.getLogger("jifd.eval")

# A long extraction reports its progress about this many times.
_PROGRESS_REPORTS = 10


def normalises_features(cfg):
    """Whether evaluation L2-normalises the features (ReIDMetric does for either key)."""
    return cfg.TEST.FEAT_NORM == "yes" or cfg.TEST.DISTANCE == "cosine"


class ReIDMetric(Metric):
    """Collects test features, query images first, and returns the evaluate_features dict.

    update() takes (feat, pids, camids) or (feat, pids, camids, indices), as a
    tuple or a dict with those keys. In a multi-process run every rank's
    features are gathered in compute(); the dataset indices are then required,
    to put the samples back in dataset order and drop the duplicates that a
    distributed sampler pads with.

    With re_ranking, query and gallery features (L2-normalised if feat_norm)
    are re-ranked by k-reciprocal encoding (utils.re_ranking) and the re-ranked
    distances evaluated, as the BoT lineage does; `distance` is then unused.
    With aqe, a dict of average_query_expansion's k, alpha and times, the
    features are expanded first (utils.query_expansion), then ranked or re-ranked.
    """

    required_output_keys = ("feat", "pids", "camids")

    def __init__(self, num_query, max_rank=50, distance="euclidean", feat_norm=True, memory_mb=512,
                 re_ranking=False, k1=20, k2=6, lambda_value=0.3, aqe=None, output_transform=lambda output: output,
                 device="cpu"):
        check_distance(distance)
        self.num_query, self.max_rank, self.distance = int(num_query), max_rank, distance
        self.feat_norm = yes_no(feat_norm, "TEST.FEAT_NORM")
        self.memory_mb, self.re_ranking = memory_mb, yes_no(re_ranking, "TEST.RE_RANKING")
        self.rerank_params = {"k1": k1, "k2": k2, "lambda_value": lambda_value}
        self.aqe = dict(aqe) if aqe else None
        super().__init__(output_transform=output_transform, device=device, skip_unrolling=True)

    def reset(self):
        self._parts = {"feat": [], "pids": [], "camids": [], "indices": []}

    def update(self, output):
        names = ("feat", "pids", "camids", "indices")[:len(output)]
        for name, value in zip(names, output):
            value = torch.as_tensor(value).detach()
            self._parts[name].append(value.to(self._device, torch.float32) if name == "feat" else value.cpu())

    def _collected(self):
        if not self._parts["feat"]:
            raise ValueError("ReIDMetric.compute() called before any update()")
        feats = torch.cat(self._parts["feat"])
        labels = [torch.cat(self._parts[name]).reshape(-1) for name in ("pids", "camids")]
        indices = torch.cat(self._parts["indices"]).reshape(-1) if self._parts["indices"] else None
        if idist.get_world_size() > 1:
            if indices is None:
                raise ValueError("ReIDMetric in a multi-process run needs the dataset indices as the "
                                 "4th output element, to restore the query-first order")
            feats = idist.all_gather(feats)
            labels = [idist.all_gather(label.to(feats.device)).cpu() for label in labels]
            indices = idist.all_gather(indices.to(feats.device)).cpu()
        if indices is not None:
            _, first = np.unique(indices.numpy(), return_index=True)
            keep = torch.as_tensor(first)
            feats, labels = feats[keep.to(feats.device)], [label[keep] for label in labels]
        return feats, labels[0].numpy(), labels[1].numpy()

    def compute(self):
        feats, pids, camids = self._collected()
        nq = self.num_query
        if not 0 < nq < len(feats):
            raise ValueError(f"ReIDMetric has {len(feats)} features for {nq} queries: "
                             "need at least one query and one gallery image")
        labels = (pids[:nq], pids[nq:], camids[:nq], camids[nq:])
        qf, gf = feats[:nq], feats[nq:]
        if self.aqe:
            qf, gf = average_query_expansion(qf, gf, memory_mb=self.memory_mb, **self.aqe)
        if self.re_ranking:
            if self.feat_norm:
                qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
            distmat = k_reciprocal_distances(qf, gf, **self.rerank_params)
            return evaluate_distance_matrix(distmat, *labels, max_rank=self.max_rank, memory_mb=self.memory_mb)
        return evaluate_features(qf, gf, *labels, max_rank=self.max_rank, distance=self.distance,
                                 feat_norm=self.feat_norm, memory_mb=self.memory_mb)


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


def extract_batch_features(model, images, device_setup, flip=False):
    """Test features of one batch; with ``flip`` the mirror image's feature is averaged in."""
    with torch.no_grad(), device_setup.autocast():
        images = device_setup.images(images)
        feats = model(images)
        if flip:
            feats = (feats + model(torch.flip(images, dims=[3]))) / 2
    return feats.float()


@dataclass
class ExtractedFeatures:
    """Features of N images in loader order, with their labels and paths."""

    features: torch.Tensor
    pids: np.ndarray
    camids: np.ndarray
    paths: list


def extract_features(model, loader, device_setup, flip=False):
    """ExtractedFeatures of every sample of ``loader`` (float32, on the CPU), in loader order.

    Each batch goes through extract_batch_features, so the features are the
    evaluator's, TEST.FLIP included.
    """
    model.eval()
    parts, pids, camids, paths = [], [], [], []
    report_every = max(1, len(loader) // _PROGRESS_REPORTS)
    start = time.perf_counter()
    for index, batch in enumerate(loader, 1):
        parts.append(extract_batch_features(model, batch["images"], device_setup, flip).cpu())
        pids.append(batch["pids"].numpy())
        camids.append(batch["camids"].numpy())
        paths.extend(batch["paths"])
        if index % report_every == 0 and index < len(loader):
            logger.info("features of %d / %d images (%.1f images/s)", len(paths), len(loader.dataset),
                        len(paths) / (time.perf_counter() - start))
    if not parts:
        raise UserError("no image to extract features from")
    return ExtractedFeatures(torch.cat(parts), np.concatenate(pids).astype(np.int64),
                             np.concatenate(camids).astype(np.int64), paths)


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


def create_evaluator(model, device_setup, metric, flip=False):
    """An ignite engine over IndexedBatches whose ``state.metrics`` holds mAP, rank1, ... after a run."""

    def step(engine, batch_and_indices):
        batch, indices = batch_and_indices
        model.eval()
        feats = extract_batch_features(model, batch["images"], device_setup, flip)
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


def evaluate(cfg, model, data, device_setup):
    """Metrics of ``model`` on ``data.test_loader`` (query first, then gallery), with the counts of
    unreadable test images ("unreadable_query", "unreadable_gallery")."""
    metric = build_reid_metric(cfg, data.num_query)
    evaluator = create_evaluator(model, device_setup, metric, flip=cfg.TEST.FLIP)
    evaluator.run(IndexedBatches(data.test_loader))
    unreadable_query, unreadable_gallery = count_unreadable(data.test_loader.dataset, data.num_query,
                                                            cfg.TEST.MAX_UNREADABLE)
    if unreadable_query + unreadable_gallery:
        logger.warning("%d unreadable query and %d unreadable gallery image(s) were replaced by blank images "
                       "(named in the warnings above); the metrics count them as uninformative images",
                       unreadable_query, unreadable_gallery)
    return dict(evaluator.state.metrics["reid"], unreadable_query=unreadable_query,
                unreadable_gallery=unreadable_gallery)
