"""Re-ID ranking metrics: CMC, mAP and mINP, exact, in bounded memory.

Protocol (design/evaluation.md): each query ranks the whole gallery by
ascending distance; gallery entries with the query's identity AND camera are
removed; a query with no true match left is not counted. Ties in distance are
broken by gallery index (the order of a stable sort). With no counted query
at all the evaluators raise `NoValidQueryError`, never return NaN.

CMC(k) is reported for k = 1..max_rank whatever the gallery size: past the end
of a query's ranked list it stays at 1 (a counted query always has a match).

Two implementations with identical numbers:
- `eval_func` / `eval_func_with_minp`: the classic interface, a dense numpy
  distance matrix in, ranked by a stable argsort (vectorised over queries).
- `evaluate_features`: features in; query blocks whose memory is bounded by
  `memory_mb`, the full query x gallery matrix is never built, and nothing
  is argsorted. What the metrics need is each true match's position in its
  query's ranked list, i.e. how many kept entries come before it in the
  order (distance, gallery index). That is counted: against the entries not
  farther than the query's hardest match (a 64-bit key search) when those
  are few, else in the row's sorted distances; ties with entries of another
  identity, common in float32 at large galleries, are resolved by index.
"""
import contextlib
import logging

import numpy as np
import torch
import torch.nn.functional as F
import ignite.distributed as idist
from ignite.metrics import Metric

from utils.errors import UserError
from utils.query_expansion import average_query_expansion
from utils.re_ranking import re_ranking as k_reciprocal_distances

logger = logging.getLogger("jifd.eval")

DISTANCES = ("euclidean", "cosine")

# Query rows per matrix product. BLAS picks its kernel by shape, and a row can
# come out a few ulps different in a product with a different number of rows
# (MKL does so below ~12 rows). Both the dense matrix and the blocked evaluator
# compute the same fixed row chunks, so their distances agree bit for bit.
_GEMM_ROWS = 256

# Peak bytes per query x gallery element of a block: the distance (4) plus
# the larger of the sorted copy of the rows (4) and the candidate search,
# budgeted for half of the entries being candidates although it runs below
# _DENSE_FRACTION (per candidate: row and column 16, then row, key,
# insertion index and two temporaries, 8 each).
_BYTES_PER_ELEMENT = 32


class NoValidQueryError(UserError, ValueError):
    """No query has a true match left in the gallery: the metrics are undefined."""


def _no_valid_query(num_query):
    return NoValidQueryError(
        f"none of the {num_query} queries has a true match in the gallery (same identity, "
        "other camera): CMC/mAP/mINP are undefined; check the query and gallery folders"
    )


def _as_bool(value, key):
    if isinstance(value, str):
        if value.lower() not in ("yes", "no"):
            raise ValueError(f"{key} must be 'yes' or 'no', got {value!r}")
        return value.lower() == "yes"
    return bool(value)


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


# ---------------------------------------------------------------------------
# Classic dense evaluator
# ---------------------------------------------------------------------------

def _sorted_rows_stats(dist_rows, q_pids, q_camids, g_pids, g_camids):
    """Counted-row mask and per counted row (AP, INP, first-match position), by a stable argsort.

    Only the same-identity entries of the ranked rows are looked at: a true
    match's position in the kept list is its rank minus the junk ranked before it.
    """
    num_rows, num_gallery = dist_rows.shape
    order = np.argsort(dist_rows, axis=1, kind="stable")
    row, rank = np.nonzero(g_pids[order] == q_pids[:, None])
    junk = g_camids[order[row, rank]] == q_camids[row]
    key = row.astype(np.int64) * num_gallery + rank
    junk_per_row = np.bincount(row[junk], minlength=num_rows)
    junk_before = np.searchsorted(key[junk], key) - (np.cumsum(junk_per_row) - junk_per_row)[row]
    row, position = row[~junk], (rank - junk_before)[~junk]
    counted = np.bincount(row, minlength=num_rows) > 0
    rows, first_at, num_match = np.unique(row, return_index=True, return_counts=True)
    match_rank = np.arange(1, len(row) + 1) - np.repeat(first_at, num_match)
    ap = np.bincount(row, weights=match_rank / (position + 1.0), minlength=num_rows)[rows] / num_match
    last = position[first_at + num_match - 1]
    return counted, ap, num_match / (last + 1.0), position[first_at]


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
        parts.append(_sorted_rows_stats(distmat[start:stop], q_pids[start:stop], q_camids[start:stop],
                                        g_pids, g_camids)[1:])
    ap, inp, first = (np.concatenate(p) for p in zip(*parts))
    summary = _summary(ap, inp, first, num_q, num_g, max_rank)
    return np.asarray(summary["cmc"], dtype=np.float64), summary["mAP"], summary["mINP"]


def eval_func(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """(cmc, mAP): the classic re-ID evaluation of a dense numpy distance matrix."""
    cmc, mean_ap, _ = eval_func_with_minp(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    return cmc, mean_ap


# ---------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------

class _DistanceRows:
    """Distances from query rows to the whole gallery, in fixed `_GEMM_ROWS` chunks.

    Squared euclidean |q|^2 + |g|^2 - 2 q.g on the (optionally L2-normalised)
    features, or cosine distance 1 - q.g on L2-normalised features.
    """

    def __init__(self, qf, gf, distance, feat_norm, device=None):
        if distance not in DISTANCES:
            raise ValueError(f"TEST.DISTANCE must be one of {DISTANCES}, got {distance!r}")
        if qf.dim() != 2 or gf.dim() != 2 or qf.shape[1] != gf.shape[1]:
            raise ValueError(f"features must be N x D with equal D, got {tuple(qf.shape)} and {tuple(gf.shape)}")
        device = qf.device if device is None else torch.device(device)
        qf, gf = qf.detach().to(device, torch.float32), gf.detach().to(device, torch.float32)
        # one pass for the norms; a NaN or overflow anywhere in a row shows in its norm
        q_norm, g_norm = (torch.linalg.vector_norm(f, dim=1, keepdim=True) for f in (qf, gf))
        if not (torch.isfinite(q_norm).all() and torch.isfinite(g_norm).all()):
            raise ValueError("features contain NaN, infinite or too large values; they cannot be ranked")
        if distance == "cosine" or _as_bool(feat_norm, "TEST.FEAT_NORM"):
            q_scale, g_scale = q_norm.clamp(min=1e-12), g_norm.clamp(min=1e-12)
            qf, gf = qf / q_scale, gf / g_scale
            q_norm, g_norm = q_norm / q_scale, g_norm / g_scale
        self.distance = distance
        self.query, self.gallery_t = qf, gf.t()
        self.query_sq, self.gallery_sq = (q_norm * q_norm)[:, 0], (g_norm * g_norm)[:, 0]
        self.num_query, self.num_gallery, self.device = qf.shape[0], gf.shape[0], device

    def fill(self, start, stop, out):
        """Write the rows start:stop (start a multiple of _GEMM_ROWS) into out."""
        for chunk in range(start, stop, _GEMM_ROWS):
            end = min(chunk + _GEMM_ROWS, stop)
            rows = out[chunk - start:end - start]
            if self.distance == "euclidean":
                torch.add(self.query_sq[chunk:end, None], self.gallery_sq[None, :], out=rows)
                rows.addmm_(self.query[chunk:end], self.gallery_t, alpha=-2)
            else:
                rows.fill_(1).addmm_(self.query[chunk:end], self.gallery_t, alpha=-1)
        return out


def compute_distance_matrix(qf, gf, distance="euclidean", feat_norm=True):
    """The dense query x gallery distance matrix (torch, float32), as the evaluator computes it."""
    rows = _DistanceRows(qf, gf, distance, feat_norm)
    out = torch.empty(rows.num_query, rows.num_gallery, device=rows.device)
    return rows.fill(0, rows.num_query, out)


# ---------------------------------------------------------------------------
# Blocked evaluator
# ---------------------------------------------------------------------------

class _Identities:
    """For each query, the gallery entries of its identity: true matches and junk (same camera)."""

    def __init__(self, q_pids, g_pids, q_camids, g_camids, device):
        self.q_pids, self.q_camids, self.g_pids, self.g_camids = q_pids, q_camids, g_pids, g_camids
        self.g_order = np.argsort(g_pids, kind="stable")
        sorted_pids = g_pids[self.g_order]
        self.first = np.searchsorted(sorted_pids, q_pids, side="left")
        self.count = np.searchsorted(sorted_pids, q_pids, side="right") - self.first
        self.device = device

    def block(self, start, stop):
        """(gallery indices B x S in increasing order, present mask, true-match mask), as tensors."""
        count = self.count[start:stop]
        slot = np.arange(int(count.max()) if len(count) else 0)
        present = slot[None, :] < count[:, None]
        index = self.g_order[np.where(present, self.first[start:stop, None] + slot[None, :], 0)]
        match = present & (self.g_camids[index] != self.q_camids[start:stop, None])
        return tuple(torch.as_tensor(a, device=self.device) for a in (index.astype(np.int64), present, match))


def _ordered_key(values):
    """int64 in [0, 2^32) ordered like the float32 values (-0.0 counted as +0.0)."""
    bits = (values + 0.0).view(torch.int32)
    return (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() + (1 << 31)


class _Matches:
    """The true matches of a block of queries, flat, ordered by (row, distance, gallery index).

    Besides each match's distance and gallery index, what its own identity's
    entries tell without a search: its 1-based rank among its row's matches,
    the junk entries strictly closer, the matches at the same distance with a
    smaller index, and how many same-identity entries share its distance
    (all of them, and those with a smaller index).
    """

    def __init__(self, dist, same_index, present, is_match):
        num_rows = dist.shape[0]
        same_dist = torch.gather(dist, 1, same_index).masked_fill_(~present, float("inf"))
        # same_index increases along a row, so a stable sort orders by (distance, index); padding sorts last
        sorted_dist, perm = torch.sort(same_dist, dim=1, stable=True)
        match = torch.gather(is_match, 1, perm)
        junk = torch.gather(present & ~is_match, 1, perm)
        slots = torch.arange(sorted_dist.shape[1], device=dist.device).expand_as(sorted_dist)
        new_value = torch.ones_like(match)
        new_value[:, 1:] = sorted_dist[:, 1:] != sorted_dist[:, :-1]
        group_start = torch.where(new_value, slots, 0).cummax(1).values
        junk_before = junk.long().cumsum(1) - junk.long()
        match_before = match.long().cumsum(1) - match.long()
        group_key = torch.arange(num_rows, device=dist.device)[:, None] * slots.shape[1] + group_start
        group_size = torch.bincount(group_key[slots < present.sum(1, keepdim=True)], minlength=group_key.numel())

        self.rows, where = match.nonzero(as_tuple=True)
        at = (self.rows, where)
        self.dist = sorted_dist[at]
        self.gallery_index = torch.gather(same_index, 1, perm)[at]
        self.rank = match_before[at] + 1
        self.junk_closer = torch.gather(junk_before, 1, group_start)[at]
        self.tied_before = (match_before - torch.gather(match_before, 1, group_start))[at]
        self.same_equal = group_size[group_key[at]]
        self.same_equal_before = (slots - group_start)[at]
        self.count = match.sum(1)
        self.hardest = torch.full((num_rows,), float("-inf"), device=dist.device)
        self.hardest.scatter_reduce_(0, self.rows, self.dist, reduce="amax")


def _closer_counts_sparse(dist, matches):
    """For each match: the entries of its row strictly closer, and those at the same distance.

    Only the candidates (entries not farther than the row's hardest match)
    are searched, against the sorted 64-bit (row, distance) keys of the matches.
    """
    num_rows = dist.shape[0]
    match_key = (matches.rows << 32) | _ordered_key(matches.dist)
    rows, cols = (dist <= matches.hardest[:, None]).nonzero(as_tuple=True)
    key = (rows << 32) | _ordered_key(dist[rows, cols])
    del cols
    at = torch.searchsorted(match_key, key, right=True)
    tied = (at > 0) & (match_key[(at - 1).clamp(min=0)] == key)
    # a tied entry lands on the last match of its key; every match of that key shares the count
    equal = torch.bincount(at[tied] - 1, minlength=len(match_key))
    equal = equal[torch.searchsorted(match_key, match_key, right=True) - 1]
    del key, tied
    per_row = torch.bincount(rows, minlength=num_rows)
    before_row = per_row.cumsum(0) - per_row
    at_or_below = torch.bincount(at, minlength=len(match_key) + 1).cumsum(0)[:len(match_key)]
    return at_or_below - before_row[matches.rows], equal


def _closer_counts_dense(dist, matches):
    """As _closer_counts_sparse, by sorting each row's distances and locating the match distances in them."""
    if dist.device.type == "cpu":
        ordered = torch.from_numpy(np.sort(dist.numpy(), axis=1))  # numpy's vectorised sort: several times torch's
    else:
        ordered = torch.sort(dist, dim=1).values
    bounds = torch.full((dist.shape[0], int(matches.count.max())), float("inf"), device=dist.device)
    slot = (matches.rows, matches.rank - 1)
    bounds[slot] = matches.dist
    closer = torch.searchsorted(ordered, bounds)
    equal = torch.searchsorted(ordered, bounds, right=True) - closer
    return closer[slot], equal[slot]


def _equal_before(dist, rows, values, index):
    """For each (row, value, gallery index): the entries of that row at that value with a smaller index."""
    num_gallery = dist.shape[1]
    columns = torch.arange(num_gallery, device=dist.device)
    out = torch.empty(len(rows), dtype=torch.int64, device=dist.device)
    step = max(1, (1 << 22) // num_gallery)
    for a in range(0, len(rows), step):
        b = a + step
        hit = (dist[rows[a:b]] == values[a:b, None]) & (columns < index[a:b, None])
        out[a:b] = hit.sum(1)
    return out


# Above this fraction of candidates sorting whole rows is cheaper than gathering candidates.
_DENSE_FRACTION = 0.2


def _block_stats(dist, identities, start, stop):
    """Per counted query of rows start:stop: (AP, INP, first-match position), or None.

    dist holds the B x G distances of those queries. The position of a match
    among the kept entries, in the order (distance, gallery index), is
    (entries strictly closer) - (junk strictly closer) + (kept entries at the
    same distance with a smaller index). The last term is known from the
    identity's own entries unless an entry of another identity sits at exactly
    the match's distance (common in float32 at large galleries); those
    matches count their tied predecessors in the row.
    """
    same_index, present, is_match = identities.block(start, stop)
    if not bool(is_match.any()):
        return None
    matches = _Matches(dist, same_index, present, is_match)
    sample = dist[:, ::16] <= matches.hardest[:, None]
    if sample.float().mean().item() > _DENSE_FRACTION:
        closer, equal = _closer_counts_dense(dist, matches)
    else:
        closer, equal = _closer_counts_sparse(dist, matches)
    position = closer - matches.junk_closer + matches.tied_before
    other = torch.nonzero(equal > matches.same_equal, as_tuple=True)[0]
    if len(other):
        position[other] += _equal_before(dist, matches.rows[other], matches.dist[other],
                                         matches.gallery_index[other]) - matches.same_equal_before[other]

    num_rows = stop - start
    precision = matches.rank.double() / (position + 1).double()
    ap_sum = torch.zeros(num_rows, dtype=torch.float64, device=dist.device).index_add_(0, matches.rows, precision)
    first = torch.zeros(num_rows, dtype=torch.int64, device=dist.device)
    first.scatter_reduce_(0, matches.rows, position, reduce="amin", include_self=False)
    last = torch.zeros(num_rows, dtype=torch.int64, device=dist.device)
    last.scatter_reduce_(0, matches.rows, position, reduce="amax", include_self=False)
    counted = matches.count > 0
    num_match = matches.count.double()
    return ((ap_sum / num_match)[counted].cpu().numpy(), (num_match / (last + 1).double())[counted].cpu().numpy(),
            first[counted].cpu().numpy())


def _block_rows(num_gallery, memory_mb):
    """Query rows per block: a multiple of _GEMM_ROWS fitting memory_mb (at least one chunk)."""
    rows = int(memory_mb * 2 ** 20 // (_BYTES_PER_ELEMENT * max(num_gallery, 1)))
    if rows < _GEMM_ROWS:
        logger.warning("TEST.EVAL_MEMORY_MB=%s is below one block of %d queries x %d gallery (%.0f MB); "
                       "using that block", memory_mb, _GEMM_ROWS, num_gallery,
                       _GEMM_ROWS * num_gallery * _BYTES_PER_ELEMENT / 2 ** 20)
    return max(1, rows // _GEMM_ROWS) * _GEMM_ROWS


@contextlib.contextmanager
def _one_cpu_thread(device):
    """Run the ranking step's tensor ops on one CPU thread.

    They are many and mid-sized; on a 2-core machine shared with other work,
    waiting for the second thread at every op cost more than it saved (VeRi
    size: 6.8 s with two threads, 4.5 s with one, the distance products alone
    3.7 s). The distance products keep all threads.
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
    identities = _Identities(q_pids, g_pids, q_camids, g_camids, device)
    block = min(_block_rows(num_gallery, memory_mb), max(num_query, 1))
    buffer = torch.empty(block, num_gallery, device=device)
    results = []
    for start in range(0, num_query, block):
        stop = min(start + block, num_query)
        dist = fill_rows(start, stop, buffer[:stop - start])
        with _one_cpu_thread(buffer.device):
            stats = _block_stats(dist, identities, start, stop)
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
    rows = _DistanceRows(qf, gf, distance, feat_norm, device)
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


# ---------------------------------------------------------------------------
# Ignite metric
# ---------------------------------------------------------------------------

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
        if distance not in DISTANCES:
            raise ValueError(f"TEST.DISTANCE must be one of {DISTANCES}, got {distance!r}")
        self.num_query, self.max_rank, self.distance = int(num_query), max_rank, distance
        self.feat_norm = _as_bool(feat_norm, "TEST.FEAT_NORM")
        self.memory_mb, self.re_ranking = memory_mb, _as_bool(re_ranking, "TEST.RE_RANKING")
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
