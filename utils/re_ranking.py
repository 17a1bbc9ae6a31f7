"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), sparse and blocked.

Same algorithm and standard parameters as the dense public implementation:
squared euclidean distances over all N = query + gallery images, each
image's distances divided by their maximum; k1-reciprocal neighbours
expanded by the round(k1/2)-reciprocal sets of their members that overlap
by more than 2/3; weights exp(-distance) normalised per image; local query
expansion over the k2 nearest images; Jaccard distance via an inverted
index; final = jaccard * (1 - lambda) + distance * lambda, query rows x
gallery columns.

What differs is the formulation, not the numbers: nothing N x N is built.
The neighbour lists come from a symmetric blocked pass over the distances
(each pair computed once) keeping the nearest few per image; the weight
matrix V and its query expansion are sparse (compressed rows; at most
k2 * (k1 + 1) * (round(k1/2) + 2) entries per image, in practice tens); the
Jaccard part runs in query blocks. Memory grows with N (times those
constants) plus the q x g output (returned dense, float32: 1.95 GB at
8,917 x 54,756). V is kept in float32 (the public code stores float16 for
memory). Neighbour ties are broken by index (a stable order). Memory and
time are estimated first; a run that would not fit is refused before it
starts.

Exactness: equal to the dense algorithm in float32 up to rounding (2.4e-7
at VeRi size), except where two neighbour distances differ by about one ulp:
there the neighbour order depends on how the products were summed, in the
dense code as much as here (VeRi-size benchmark: 2 of 13,257 neighbour lists,
moving 8 of 1,678 query rows by up to 0.07).
"""
import logging
import os
import time

import numpy as np
import torch

from utils.errors import UserError

logger = logging.getLogger("jifd.eval")

# Extra nearest neighbours kept by the blocked pass, so that distance ties at
# the k-th neighbour are detected (and re-ranked exactly) rather than guessed.
_MARGIN = 4
# Rows per block of the symmetric distance pass.
_BLOCK = 2048
# Working memory of the chunked steps (expansion, weights, query expansion, Jaccard).
_WORK_BYTES = 256 * 2 ** 20


def _physical_memory_bytes():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _sizes(num_query, num_gallery, k1, k2):
    num_all = num_query + num_gallery
    half = int(round(k1 / 2))
    keep = max(k1 + 1, k2)
    width = (k1 + 1) * (half + 2)  # one k1-reciprocal set plus one half-size set per member
    return num_all, half, keep, width


def estimate_re_ranking(num_query, num_gallery, dim, k1=20, k2=6, gflops=None):
    """(peak bytes, seconds) that re_ranking needs; seconds only when gflops (measured speed) is given."""
    num_all, _, keep, width = _sizes(num_query, num_gallery, k1, k2)
    v_entries = num_all * min(num_all, width)
    qe_entries = num_all * min(num_all, k2 * width)
    peak = (2 * num_all * (dim + 2) * 4             # features, as the two sides of one product
            + num_query * num_gallery * 4           # the output, which holds the distances first
            + num_all * (keep + _MARGIN) * 12 * 3    # neighbour lists and their merge
            + 3 * _BLOCK * _BLOCK * 4 + 4 * _BLOCK * (keep + _MARGIN) * 12
            + v_entries * 12                        # V
            + 2 * qe_entries * 12                   # V after query expansion, and its inverted index
            + 2 * _WORK_BYTES)
    seconds = None
    if gflops:
        flops = num_all * (num_all + 1) * dim + num_all * width * dim * 2
        seconds = flops / (gflops * 1e9) + num_all * num_all * 6e-9
    return peak, seconds


def _measure_gflops(dim, device):
    a = torch.randn(512, dim, device=device)
    b = torch.randn(dim, 1024, device=device)
    a @ b
    start = time.perf_counter()
    for _ in range(3):
        a @ b
    return 3 * 2 * 512 * 1024 * dim / (time.perf_counter() - start) / 1e9


def check_re_ranking_fits(num_query, num_gallery, dim, k1=20, k2=6, max_memory_gb=None, device="cpu"):
    """Log re_ranking's estimated peak memory and time; UserError up front when it cannot fit.

    engine.tester.do_test (tools/test.py) calls it before embedding the
    images, so an impossible setting is refused before an hour of feature
    extraction, not after; re_ranking checks again with the real features.
    """
    if max_memory_gb is None:
        max_memory_gb = 0.8 * _physical_memory_bytes() / 2 ** 30
    peak, seconds = estimate_re_ranking(num_query, num_gallery, dim, k1, k2, _measure_gflops(dim, device))
    logger.info("re-ranking %d queries x %d gallery images (k1=%d, k2=%d): estimated peak %.2f GB, about %.0f s",
                num_query, num_gallery, k1, k2, peak / 2 ** 30, seconds)
    if peak > max_memory_gb * 2 ** 30:
        raise UserError(
            f"re-ranking {num_query} queries x {num_gallery} gallery images needs about {peak / 2 ** 30:.1f} GB, "
            f"more than the {max_memory_gb:.1f} GB allowed; set TEST.RE_RANKING 'no' or test on a smaller split")


class _Distances:
    """Squared euclidean distances between all images as one product: [f, |f|^2, 1] . [-2 g, 1, |g|^2]."""

    def __init__(self, probFea, galFea):
        num_query, dim = probFea.shape
        self.num_all = num_query + galFea.shape[0]
        self.left = torch.empty(self.num_all, dim + 2, device=probFea.device)
        self.left[:num_query, :dim] = probFea
        self.left[num_query:, :dim] = galFea
        self.left[:, dim] = torch.linalg.vecdot(self.left[:, :dim], self.left[:, :dim])
        self.left[:, dim + 1] = 1
        self.right = torch.empty_like(self.left)
        torch.mul(self.left[:, :dim], -2, out=self.right[:, :dim])
        self.right[:, dim] = 1
        self.right[:, dim + 1] = self.left[:, dim]

    def block(self, rows, cols):
        return self.left[rows] @ self.right[cols].t()

    def pairs(self, rows, cols):
        return (self.left[rows] * self.right[cols]).sum(1)


class _Nearest:
    """Running list of the `size` smallest (value, index) per row.

    A row's first block is ranked with topk; after that only entries below
    the row's largest kept value can enter, so later blocks are filtered by
    one comparison and only the few survivors are merged.
    """

    def __init__(self, num_rows, size, device):
        self.values = torch.full((num_rows, size), float("inf"), device=device)
        self.index = torch.full((num_rows, size), -1, dtype=torch.int64, device=device)
        self.bound = torch.full((num_rows,), float("inf"), device=device)
        self.size = size

    def offer_rows(self, first_row, dist, first_col):
        """Offer each row of dist (rows first_row.., columns first_col..) to its row."""
        rows = slice(first_row, first_row + dist.shape[0])
        if not bool(torch.isfinite(self.bound[rows]).all()):
            if dist.shape[1] > self.size:
                values, index = torch.topk(dist, self.size, dim=1, largest=False, sorted=False)
                index += first_col
            else:
                values = dist
                index = torch.arange(first_col, first_col + dist.shape[1], device=dist.device).expand_as(dist)
            self._merge(torch.arange(rows.start, rows.stop, device=dist.device), values, index)
            return
        row, col = (dist < self.bound[rows, None]).nonzero(as_tuple=True)
        self._offer(row + first_row, col + first_col, dist[row, col])

    def offer_columns(self, first_row, dist, first_col):
        """Offer each column of dist to the row of that column's index."""
        bound = self.bound[first_col:first_col + dist.shape[1]]
        if not bool(torch.isfinite(bound).all()):
            self.offer_rows(first_col, dist.t().contiguous(), first_row)
            return
        row, col = (dist < bound[None, :]).nonzero(as_tuple=True)
        by_col = torch.argsort(col, stable=True)
        row, col = row[by_col], col[by_col]
        self._offer(col + first_col, row + first_row, dist[row, col])

    def _offer(self, rows, index, values):
        """Merge candidates given as (receiving row ascending, candidate index, value)."""
        if len(rows) == 0:
            return
        hit_rows, owner, counts = torch.unique_consecutive(rows, return_inverse=True, return_counts=True)
        slot = torch.arange(len(rows), device=rows.device) - (counts.cumsum(0) - counts)[owner]
        new_values = torch.full((len(hit_rows), int(counts.max())), float("inf"), device=rows.device)
        new_index = torch.full(new_values.shape, -1, dtype=torch.int64, device=rows.device)
        new_values[owner, slot] = values
        new_index[owner, slot] = index
        self._merge(hit_rows, new_values, new_index)

    def _merge(self, rows, values, index):
        merged_values = torch.cat([self.values[rows], values], dim=1)
        merged_index = torch.cat([self.index[rows], index], dim=1)
        best_values, best = torch.topk(merged_values, self.size, dim=1, largest=False, sorted=False)
        self.values[rows] = best_values
        self.index[rows] = torch.gather(merged_index, 1, best)
        self.bound[rows] = best_values.amax(1)


def _neighbours_and_distances(distances, num_query, keep):
    """Nearest neighbours per image in the normalised distance, the maxima, and the query x gallery distances.

    Returns (index, normalised distance) of the keep + _MARGIN nearest, in
    order (the first `keep` exact), each image's maximum distance, and the
    raw query x gallery distances. Each pair of blocks is computed once and
    serves the rows of both blocks.
    """
    num_all, device = distances.num_all, distances.left.device
    nearest = _Nearest(num_all, keep + _MARGIN, device)
    maximum = torch.full((num_all,), float("-inf"), device=device)
    query_gallery = torch.empty(num_query, num_all - num_query, device=device)
    starts = range(0, num_all, _BLOCK)
    # diagonal blocks first: every row is first ranked on a block it owns, then filtered
    pairs = [(a, a) for a in starts] + [(a, b) for a in starts for b in starts if b > a]
    for a, b in pairs:
        rows, cols = slice(a, min(a + _BLOCK, num_all)), slice(b, min(b + _BLOCK, num_all))
        dist = distances.block(rows, cols)
        nearest.offer_rows(a, dist, b)
        maximum[rows] = torch.maximum(maximum[rows], dist.amax(1))
        if b != a:
            nearest.offer_columns(a, dist, b)
            maximum[cols] = torch.maximum(maximum[cols], dist.amax(0))
        if a < num_query and cols.stop > num_query:
            q_stop, g_start = min(rows.stop, num_query), max(b, num_query)
            query_gallery[a:q_stop, g_start - num_query:cols.stop - num_query] = dist[:q_stop - a, g_start - b:]
    if not bool((maximum > 0).all()):
        raise ValueError("re-ranking needs distinct features: some image is at distance 0 from all others")

    # order the kept candidates by (normalised distance, index); the first `keep` are exact unless
    # the last kept candidate ties with the keep-th, in which case the row is ranked in full
    normalised = nearest.values / maximum[:, None]
    by_index = torch.argsort(nearest.index, dim=1, stable=True)
    normalised, index = torch.gather(normalised, 1, by_index), torch.gather(nearest.index, 1, by_index)
    order = torch.argsort(normalised, dim=1, stable=True)
    normalised, index = torch.gather(normalised, 1, order), torch.gather(index, 1, order)
    for row in torch.nonzero(normalised[:, keep - 1] == normalised[:, -1], as_tuple=True)[0].tolist():
        full = distances.block(slice(row, row + 1), slice(0, num_all))[0] / maximum[row]
        values, order = torch.sort(full, stable=True)
        width = min(index.shape[1], num_all)
        index[row, :width], normalised[row, :width] = order[:width], values[:width]
    return index, normalised, maximum, query_gallery


def _reciprocal(neighbours, k):
    """Mask over neighbours[:, :k + 1]: is the row among the k + 1 nearest of that neighbour."""
    num_all = neighbours.shape[0]
    forward = neighbours[:, :k + 1]
    mask = torch.empty(forward.shape, dtype=torch.bool, device=neighbours.device)
    step = max(1, _WORK_BYTES // (8 * (k + 1) ** 2))
    for a in range(0, num_all, step):
        rows = torch.arange(a, min(a + step, num_all), device=neighbours.device)
        backward = neighbours[forward[rows], :k + 1]
        mask[rows] = (backward == rows[:, None, None]).any(-1)
    return mask


def _expanded_sets(sets, rows):
    """Sorted k-reciprocal expansion sets of the given rows, padded with num_all: (B x width, valid mask)."""
    num_all = sets.forward.shape[0]
    forward, forward_mask = sets.forward[rows], sets.forward_mask[rows]
    own = forward.masked_fill(~forward_mask, num_all).sort(dim=1).values
    members = sets.half[forward]                       # B x (k1+1) x (half+1)
    members_mask = sets.half_mask[forward]
    flat = members.flatten(1)
    at = torch.searchsorted(own, flat).clamp_(max=own.shape[1] - 1)
    in_own = (torch.gather(own, 1, at) == flat).view_as(members)
    overlap = (in_own & members_mask).sum(-1)
    qualifies = forward_mask & (overlap.double() > sets.two_thirds[members_mask.sum(-1)])
    ids = torch.cat([own, members.masked_fill(~(members_mask & qualifies[..., None]), num_all).flatten(1)], dim=1)
    ids = ids.sort(dim=1).values
    unique = ids != num_all
    unique[:, 1:] &= ids[:, 1:] != ids[:, :-1]
    return ids, unique


class _NeighbourSets:
    """The k1-reciprocal and round(k1/2)-reciprocal neighbour sets of every image, as masks over neighbour lists."""

    def __init__(self, index, k1, half):
        self.forward = index[:, :k1 + 1]
        self.forward_mask = _reciprocal(index, k1)
        self.half = index[:, :half + 1]
        self.half_mask = _reciprocal(index, half)
        # the public code's test, |overlap| > 2/3 * |set|, in the same floating point
        self.two_thirds = torch.tensor([2 / 3 * size for size in range(half + 2)], dtype=torch.float64,
                                       device=index.device)


def _csr(rows_per_chunk, num_rows, device):
    """(row pointer, columns, values) from per-chunk (row, column, value) triples, rows ascending."""
    rows = torch.cat([c[0] for c in rows_per_chunk]) if rows_per_chunk else torch.empty(0, dtype=torch.int64)
    pointer = torch.zeros(num_rows + 1, dtype=torch.int64, device=device)
    pointer[1:] = torch.bincount(rows, minlength=num_rows).cumsum(0)
    return pointer, torch.cat([c[1] for c in rows_per_chunk]), torch.cat([c[2] for c in rows_per_chunk])


def _csr_expand(pointer, row_ids):
    """Positions of all entries of the given rows (repeated as given), and the repeat index of each."""
    lengths = pointer[row_ids + 1] - pointer[row_ids]
    owner = torch.repeat_interleave(torch.arange(len(row_ids), device=pointer.device), lengths)
    offsets = torch.arange(len(owner), device=pointer.device) - (lengths.cumsum(0) - lengths)[owner]
    return pointer[row_ids][owner] + offsets, owner


def _weights(distances, maximum, sets, near_index, near_value):
    """V: row i holds exp(-d(i, j) / max_i) over its expansion set, normalised to sum 1 (CSR).

    Most members of a set are among the image's nearest, whose normalised
    distances the neighbour pass kept; the others are computed pair by pair.
    """
    num_all, near = distances.num_all, near_index.shape[1]
    width = sets.forward.shape[1] * (sets.half.shape[1] + 1)
    step = max(1, _WORK_BYTES // (width * (near + 48)))
    pair_step = max(1, _WORK_BYTES // (distances.left.shape[1] * 4 * 3))
    chunks = []
    for a in range(0, num_all, step):
        rows = torch.arange(a, min(a + step, num_all), device=maximum.device)
        ids, valid = _expanded_sets(sets, rows)
        row_of, slot = valid.nonzero(as_tuple=True)
        pair_rows, pair_ids = rows[row_of], ids[row_of, slot]
        del ids, valid, slot
        hit = near_index[pair_rows] == pair_ids[:, None]
        found = hit.any(1)
        dist = torch.gather(near_value[pair_rows], 1, hit.to(torch.uint8).argmax(1, keepdim=True))[:, 0]
        del hit
        missing = torch.nonzero(~found, as_tuple=True)[0]
        for b in range(0, len(missing), pair_step):
            some = missing[b:b + pair_step]
            i, j = pair_rows[some], pair_ids[some]
            dist[some] = distances.pairs(i, j) / maximum[i]
        weight = torch.exp(-dist)
        total = torch.zeros(len(rows), device=weight.device).index_add_(0, row_of, weight)
        chunks.append((pair_rows, pair_ids, weight / total[row_of]))
    return _csr(chunks, num_all, maximum.device)


def _query_expansion(v, neighbours, k2):
    """V_qe[i] = mean of V over the k2 nearest images of i (CSR, columns ascending within a row)."""
    pointer, cols, vals = v
    num_all = len(pointer) - 1
    if k2 == 1:
        return v
    per_row = (pointer[neighbours[:, :k2] + 1] - pointer[neighbours[:, :k2]]).sum(1)
    chunks, a = [], 0
    budget = max(1, _WORK_BYTES // 48)
    while a < num_all:
        b = a + max(1, int(torch.searchsorted(per_row[a:].cumsum(0), budget, right=True)))
        b = min(b, num_all)
        sources = neighbours[a:b, :k2].reshape(-1)
        position, owner = _csr_expand(pointer, sources)
        row = owner // k2 + a
        key = row * num_all + cols[position]
        unique_key, inverse = torch.unique(key, sorted=True, return_inverse=True)
        summed = torch.zeros(len(unique_key), device=vals.device).index_add_(0, inverse, vals[position])
        chunks.append((unique_key // num_all, unique_key % num_all, summed / k2))
        a = b
    return _csr(chunks, num_all, vals.device)


def _jaccard_into(out, v_qe, num_query, lambda_value, maximum):
    """out (q x g, holding distances) becomes jaccard * (1 - lambda) + distance / max * lambda, in query blocks."""
    pointer, cols, vals = v_qe
    num_all = len(pointer) - 1
    num_gallery = num_all - num_query
    # inverted index of the gallery rows: for each column, the gallery rows holding it
    start = int(pointer[num_query])
    g_rows = torch.repeat_interleave(torch.arange(num_gallery, device=vals.device),
                                     pointer[num_query + 1:] - pointer[num_query:-1])
    by_col = torch.argsort(cols[start:], stable=True)
    inv_rows, inv_vals = g_rows[by_col], vals[start:][by_col]
    inv_pointer = torch.zeros(num_all + 1, dtype=torch.int64, device=vals.device)
    inv_pointer[1:] = torch.bincount(cols[start:], minlength=num_all).cumsum(0)
    col_count = inv_pointer[1:] - inv_pointer[:-1]

    entry_pairs = col_count[cols[:pointer[num_query]]]
    pairs_per_query = torch.zeros(num_query, dtype=torch.int64, device=vals.device)
    pairs_per_query.index_add_(0, torch.repeat_interleave(
        torch.arange(num_query, device=vals.device), pointer[1:num_query + 1] - pointer[:num_query]), entry_pairs)
    pair_budget = max(1, _WORK_BYTES // 40)
    row_budget = max(1, _WORK_BYTES // (4 * max(num_gallery, 1)))
    a = 0
    while a < num_query:
        b = a + max(1, int(torch.searchsorted(pairs_per_query[a:].cumsum(0), pair_budget, right=True)))
        b = min(b, a + row_budget, num_query)
        q_rows = torch.arange(a, b, device=vals.device)
        entries, owner = _csr_expand(pointer, q_rows)
        position, entry_of = _csr_expand(inv_pointer, cols[entries])
        shared = torch.minimum(vals[entries][entry_of], inv_vals[position])
        overlap = torch.zeros((b - a) * num_gallery, device=vals.device)
        overlap.index_add_(0, owner[entry_of] * num_gallery + inv_rows[position], shared)
        overlap = overlap.view(b - a, num_gallery)
        jaccard = 1 - overlap / (2 - overlap)
        block = out[a:b]
        block.div_(maximum[a:b, None]).mul_(lambda_value).add_(jaccard.mul_(1 - lambda_value))
        a = b


def re_ranking(probFea, galFea, k1=20, k2=6, lambda_value=0.3, max_memory_gb=None):
    """k-reciprocal re-ranked query x gallery distances (numpy float32), sparse and blocked.

    probFea, galFea: query and gallery features (torch or numpy, N x D).
    max_memory_gb: refuse (UserError) up front when the estimated peak is
    larger; default 80% of physical memory.
    """
    probFea, galFea = torch.as_tensor(probFea), torch.as_tensor(galFea)
    num_query, num_gallery = probFea.shape[0], galFea.shape[0]
    num_all, half, keep, _ = _sizes(num_query, num_gallery, k1, k2)
    if k1 < 1 or k2 < 1 or not 0 <= lambda_value <= 1:
        raise ValueError(f"re-ranking needs k1 >= 1, k2 >= 1 and 0 <= lambda <= 1, got {k1}, {k2}, {lambda_value}")
    if num_query == 0 or num_gallery == 0 or keep > num_all:
        raise ValueError(f"re-ranking with k1={k1}, k2={k2} needs more than {keep} images and a non-empty "
                         f"query and gallery, got {num_query} + {num_gallery}")
    device = probFea.device
    check_re_ranking_fits(num_query, num_gallery, probFea.shape[1], k1, k2, max_memory_gb, device)
    started = time.perf_counter()
    distances = _Distances(probFea, galFea.to(device))
    if not bool(torch.isfinite(distances.right[:, -1]).all()):
        raise ValueError("features contain NaN, infinite or too large values; they cannot be re-ranked")
    near_index, near_value, maximum, out = _neighbours_and_distances(distances, num_query, keep)
    sets = _NeighbourSets(near_index[:, :keep], k1, half)
    v = _weights(distances, maximum, sets, near_index, near_value)
    del sets, distances
    v_qe = _query_expansion(v, near_index[:, :keep], k2)
    del v, near_index, near_value
    _jaccard_into(out, v_qe, num_query, lambda_value, maximum)
    logger.info("re-ranking done in %.1f s", time.perf_counter() - started)
    return out.cpu().numpy()
