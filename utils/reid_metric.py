"""Re-ID ranking metrics: CMC, mAP and mINP, exact, in bounded memory.

Protocol (design/evaluation.md): each query ranks the whole gallery by
ascending distance; gallery entries with the query's identity AND camera are
removed; a query with no true match left is not counted. Ties in distance are
broken by gallery index (the order of a stable sort). With no counted query
at all the evaluators raise `NoValidQueryError`, never return NaN.

CMC(k) is reported for k = 1..max_rank whatever the gallery size: past the end
of a query's ranked list it stays at 1 (a counted query always has a match).

Two evaluators with identical numbers:
- `eval_func` / `eval_func_with_minp`: the classic interface, a dense numpy
  distance matrix in, ranked by a stable argsort (vectorised over queries).
- `evaluate_features`: features in; query blocks whose memory is bounded by
  `memory_mb` (utils.distances.query_block_rows), the full query x gallery
  matrix is never built, and nothing is argsorted
  (utils.ranking_statistics.block_statistics).
"""
import contextlib

import numpy as np
import torch

from utils.errors import UserError

from .distances import DistanceRows, query_block_rows
from .ranking_statistics import Identities, block_statistics, row_statistics


# Peak bytes per query x gallery element of a block: the distance (4) plus
# the larger of the sorted copy of the rows (4) and the candidate search,
# budgeted for half of the entries being candidates although it runs below
# ranking_statistics.DENSE_FRACTION (per candidate: row and column 16, then
# row, key, insertion index and two temporaries, 8 each).
_BYTES_PER_ELEMENT = 32


class NoValidQueryError(UserError, ValueError):
    """No query has a true match left in the gallery: the metrics are undefined."""


def _no_valid_query(num_query):
    return NoValidQueryError(
        f"none of the {num_query} queries has a true match in the gallery (same identity, "
        "other camera): CMC/mAP/mINP are undefined; check the query and gallery folders"
    )


def _check_labels(num_query, num_gallery, q_pids, g_pids, q_camids, g_camids):
    q_pids, g_pids = np.asarray(q_pids).reshape(-1), np.asarray(g_pids).reshape(-1)
    q_camids, g_camids = np.asarray(q_camids).reshape(-1), np.asarray(g_camids).reshape(-1)
    if len(q_pids) != num_query or len(q_camids) != num_query:
        raise ValueError(f"{num_query} queries but {len(q_pids)} pids and {len(q_camids)} camids")
    if len(g_pids) != num_gallery or len(g_camids) != num_gallery:
        raise ValueError(f"{num_gallery} gallery items but {len(g_pids)} pids and {len(g_camids)} camids")
    if num_gallery == 0:
        raise ValueError("the gallery is empty")
    return q_pids, g_pids, q_camids, g_camids


def _summary(ap, inp, first_pos, num_query, num_gallery, max_rank):
    """The metrics dict from per-counted-query AP, INP and first-match position (0-based)."""
    num_valid = len(ap)
    if num_valid == 0:
        raise _no_valid_query(num_query)
    reported = max(max_rank, 10)
    hits = np.bincount(np.minimum(first_pos, reported), minlength=reported + 1)[:reported]
    cmc = np.cumsum(hits) / num_valid
    return {
        "mAP": float(np.mean(ap)),
        "rank1": float(cmc[0]),
        "rank5": float(cmc[4]),
        "rank10": float(cmc[9]),
        "mINP": float(np.mean(inp)),
        "cmc": [float(c) for c in cmc[:max_rank]],
        "num_query": int(num_query),
        "num_gallery": int(num_gallery),
        "num_valid_query": int(num_valid),
    }


def eval_func_with_minp(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """(cmc, mAP, mINP) of a dense query x gallery distance matrix (numpy).

    cmc is a float array of length max_rank. Ranking is a stable argsort, so
    equal distances keep gallery order.
    """
    distmat = np.asarray(distmat)
    num_q, num_g = distmat.shape
    q_pids, g_pids, q_camids, g_camids = _check_labels(num_q, num_g, q_pids, g_pids, q_camids, g_camids)
    parts = []
    rows_per_chunk = max(1, (1 << 24) // num_g)
    for start in range(0, num_q, rows_per_chunk):
        stop = min(start + rows_per_chunk, num_q)
        parts.append(row_statistics(distmat[start:stop], q_pids[start:stop], q_camids[start:stop], g_pids,
                                    g_camids))
    ap, inp, first = (np.concatenate(p) for p in zip(*parts))
    summary = _summary(ap, inp, first, num_q, num_g, max_rank)
    return np.asarray(summary["cmc"], dtype=np.float64), summary["mAP"], summary["mINP"]


def eval_func(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """(cmc, mAP): the classic re-ID evaluation of a dense numpy distance matrix."""
    cmc, mean_ap, _ = eval_func_with_minp(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    return cmc, mean_ap


@contextlib.contextmanager
def _one_cpu_thread(device):
    """Run the ranking step's tensor ops on one CPU thread.

    They are many and mid-sized: handing each op's half to a second thread
    costs more than it saves (README, Layout: why the code is as it is). The
    distance products keep all threads.
    """
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _evaluate_blocks(fill_rows, num_query, num_gallery, labels, max_rank, memory_mb, device):
    q_pids, g_pids, q_camids, g_camids = _check_labels(num_query, num_gallery, *labels)
    identities = Identities(q_pids, g_pids, q_camids, g_camids, device)
    block = min(query_block_rows(num_gallery, memory_mb, _BYTES_PER_ELEMENT), max(num_query, 1))
    buffer = torch.empty(block, num_gallery, device=device)
    results = []
    for start in range(0, num_query, block):
        stop = min(start + block, num_query)
        dist = fill_rows(start, stop, buffer[:stop - start])
        with _one_cpu_thread(buffer.device):
            stats = block_statistics(dist, identities, start, stop)
        if stats is not None:
            results.append(stats)
    if not results:
        raise _no_valid_query(num_query)
    ap, inp, first = (np.concatenate(parts) for parts in zip(*results))
    return _summary(ap, inp, first, num_query, num_gallery, max_rank)


def evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, max_rank=50, distance="euclidean",
                      feat_norm=True, memory_mb=512, device=None):
    """Metrics from query and gallery features (torch), without the full distance matrix.

    Returns {"mAP", "rank1", "rank5", "rank10", "mINP", "cmc" (max_rank floats),
    "num_query", "num_gallery", "num_valid_query"}, equal to eval_func on
    compute_distance_matrix(qf, gf, distance, feat_norm).
    """
    rows = DistanceRows(qf, gf, distance, feat_norm, device)
    return _evaluate_blocks(rows.fill, rows.num_query, rows.num_gallery,
                            (q_pids, g_pids, q_camids, g_camids), max_rank, memory_mb, rows.device)


def evaluate_distance_matrix(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, memory_mb=512):
    """Metrics of a given query x gallery distance matrix (numpy or torch), in query blocks."""
    distmat = torch.as_tensor(distmat)
    if distmat.dim() != 2:
        raise ValueError(f"distmat must be query x gallery, got shape {tuple(distmat.shape)}")
    if not bool(torch.isfinite(distmat).all()):
        raise ValueError("the distance matrix contains NaN or infinite values; it cannot be ranked")

    def fill_rows(start, stop, out):
        return out.copy_(distmat[start:stop])

    return _evaluate_blocks(fill_rows, distmat.shape[0], distmat.shape[1],
                            (q_pids, g_pids, q_camids, g_camids), max_rank, memory_mb, distmat.device)
