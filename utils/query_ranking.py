"""Each query's own result: its AP and its top of the ranked gallery, computed in query blocks.

The ranking is the evaluation protocol's (utils.reid_metric): distances from
compute_distance_matrix, a stable sort (ties keep gallery order), gallery
entries of the query's identity AND camera removed. A query with no true
match left has no AP (NaN), as the protocol does not count it.
"""
from dataclasses import dataclass

import numpy as np
import torch

from .reid_metric import compute_distance_matrix

# Query rows per block are a multiple of this, the row chunk of the
# evaluator's matrix products, so that distances agree with it bit for bit.
_ROW_MULTIPLE = 128
# Peak bytes per query x gallery element of a block: distance and sorted
# distance (4 + 4), sort order (8), gathered labels (8), masks and cumulative
# sums (about 16).
_BYTES_PER_ELEMENT = 40


@dataclass
class QueryRanking:
    """Per query (rows): AP and the first ``top_k`` gallery entries of its ranked list.

    ``top_index`` holds gallery indices, -1 past the end of a short list;
    ``top_match`` says which of them are true matches (same identity, other camera).
    """

    ap: np.ndarray
    top_index: np.ndarray
    top_match: np.ndarray
    top_distance: np.ndarray

    def worst_first(self):
        """Indices of the counted queries by increasing AP (ties by query index)."""
        counted = np.flatnonzero(~np.isnan(self.ap))
        return counted[np.argsort(self.ap[counted], kind="stable")]


def _block_rows(num_gallery, memory_mb):
    rows = int(memory_mb * 2 ** 20 // (_BYTES_PER_ELEMENT * max(num_gallery, 1)))
    return max(1, rows // _ROW_MULTIPLE) * _ROW_MULTIPLE


def _rank_block(dist, q_pids, q_camids, g_pids, g_camids, top_k):
    """(AP, top indices, top match flags, top distances) of the rows of ``dist``."""
    sorted_dist, order = torch.sort(dist, dim=1, stable=True)
    same_id = g_pids[order] == q_pids[:, None]
    kept = ~(same_id & (g_camids[order] == q_camids[:, None]))
    match = same_id & kept
    del same_id
    position = kept.cumsum(1) - 1
    hits = match.cumsum(1)
    rows, cols = match.nonzero(as_tuple=True)
    precision = hits[rows, cols].double() / (position[rows, cols] + 1).double()
    precision_sum = torch.zeros(dist.shape[0], dtype=torch.float64).index_add_(0, rows, precision)
    num_match = hits[:, -1]
    ap = torch.where(num_match > 0, precision_sum / num_match.clamp(min=1), float("nan"))

    num_rows, width = dist.shape[0], min(top_k, dist.shape[1])
    top_index = torch.full((num_rows, top_k), -1, dtype=torch.long)
    top_match = torch.zeros((num_rows, top_k), dtype=torch.bool)
    top_distance = torch.full((num_rows, top_k), float("nan"))
    rows, cols = (kept & (position < width)).nonzero(as_tuple=True)
    slots = position[rows, cols]
    top_index[rows, slots] = order[rows, cols]
    top_match[rows, slots] = match[rows, cols]
    top_distance[rows, slots] = sorted_dist[rows, cols]
    return ap.numpy(), top_index.numpy(), top_match.numpy(), top_distance.numpy()


def rank_queries(qf, gf, q_pids, g_pids, q_camids, g_camids, top_k=10, distance="euclidean", feat_norm=True,
                 memory_mb=512):
    """QueryRanking of every query; features are torch tensors (CPU), labels numpy arrays.

    Memory: one block of queries x the whole gallery, about ``memory_mb``
    (at least 128 query rows), never the full query x gallery matrix; and,
    while a block's distances are computed, the L2-normalised copy of the
    gallery features that compute_distance_matrix makes (the price of
    distances equal to the evaluator's).
    """
    q_pids, g_pids = torch.as_tensor(np.asarray(q_pids)), torch.as_tensor(np.asarray(g_pids))
    q_camids, g_camids = torch.as_tensor(np.asarray(q_camids)), torch.as_tensor(np.asarray(g_camids))
    block = _block_rows(len(gf), memory_mb)
    parts = []
    for start in range(0, len(qf), block):
        stop = min(start + block, len(qf))
        dist = compute_distance_matrix(qf[start:stop], gf, distance, feat_norm).cpu()
        parts.append(_rank_block(dist, q_pids[start:stop], q_camids[start:stop], g_pids, g_camids, top_k))
    ap, top_index, top_match, top_distance = (np.concatenate(arrays) for arrays in zip(*parts))
    return QueryRanking(ap, top_index, top_match, top_distance)
