"""Where each query's true matches fall in its ranked gallery list: AP, INP and the first match, per query.

The protocol (design/evaluation.md): each query ranks the whole gallery by
ascending distance, ties broken by gallery index (a stable sort); gallery
entries with the query's identity AND camera are removed; a query with no
true match left is not counted.

- row_statistics: rows of a dense distance matrix, by a stable argsort (the
  classic evaluator, vectorised over queries).
- block_statistics: a block of query rows without sorting it. What the
  metrics need is each true match's position in its query's ranked list,
  i.e. how many kept entries come before it in the order (distance, gallery
  index). That is counted: against the entries not farther than the query's
  hardest match (a 64-bit key search) when those are few, else in the row's
  sorted distances; ties with entries of another identity, common in float32
  at large galleries, are resolved by index.
- rank_queries: each query's AP and the top of its ranked list, for pictures
  and per-query reports.
"""
from dataclasses import dataclass

import numpy as np
import torch

from .distances import DistanceRows, query_block_rows

# Above this fraction of candidates sorting whole rows is cheaper than gathering candidates.
DENSE_FRACTION = 0.2


def row_statistics(dist_rows, q_pids, q_camids, g_pids, g_camids):
    """Per counted row of a dense distance matrix: (AP, INP, first-match position), by a stable argsort.

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
    rows, first_at, num_match = np.unique(row, return_index=True, return_counts=True)
    match_rank = np.arange(1, len(row) + 1) - np.repeat(first_at, num_match)
    ap = np.bincount(row, weights=match_rank / (position + 1.0), minlength=num_rows)[rows] / num_match
    last = position[first_at + num_match - 1]
    return ap, num_match / (last + 1.0), position[first_at]


class Identities:
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



def block_statistics(dist, identities, start, stop):
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
    if sample.float().mean().item() > DENSE_FRACTION:
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


# Peak bytes per query x gallery element of a rank_queries block: distance and sorted
# distance (4 + 4), sort order (8), gathered labels (8), masks and cumulative sums (about 16).
RANKING_BYTES_PER_ELEMENT = 40


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
    (query_block_rows), never the full query x gallery matrix. Distances are
    the evaluator's, bit for bit.
    """
    q_pids, g_pids = torch.as_tensor(np.asarray(q_pids)), torch.as_tensor(np.asarray(g_pids))
    q_camids, g_camids = torch.as_tensor(np.asarray(q_camids)), torch.as_tensor(np.asarray(g_camids))
    rows = DistanceRows(qf, gf, distance, feat_norm, device="cpu")
    block = min(query_block_rows(rows.num_gallery, memory_mb, RANKING_BYTES_PER_ELEMENT), max(rows.num_query, 1))
    buffer = torch.empty(block, rows.num_gallery)
    parts = []
    for start in range(0, rows.num_query, block):
        stop = min(start + block, rows.num_query)
        dist = rows.fill(start, stop, buffer[:stop - start])
        parts.append(_rank_block(dist, q_pids[start:stop], q_camids[start:stop], g_pids, g_camids, top_k))
    ap, top_index, top_match, top_distance = (np.concatenate(arrays) for arrays in zip(*parts))
    return QueryRanking(ap, top_index, top_match, top_distance)
