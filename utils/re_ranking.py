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
(each pair computed once) keeping the nearest few per image
(utils.nearest_neighbours); the weight matrix V and its query expansion are
sparse (compressed rows; at most k2 * (k1 + 1) * (round(k1/2) + 2) entries
per image, in practice tens); the Jaccard part runs in query blocks. Memory grows with N (times those
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

import torch

from utils.errors import UserError

from .nearest_neighbours import BLOCK, MARGIN, PairDistances, nearest_neighbours

logger = logging.getLogger("jifd.eval")

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
            + num_all * (keep + MARGIN) * 12 * 3    # neighbour lists and their merge
            + 3 * BLOCK * BLOCK * 4 + 4 * BLOCK * (keep + MARGIN) * 12
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


def re_ranking(query_features, gallery_features, k1=20, k2=6, lambda_value=0.3, max_memory_gb=None):
    """k-reciprocal re-ranked query x gallery distances (numpy float32), sparse and blocked.

    query_features, gallery_features: torch or numpy, N x D (the classic code's probFea and galFea).
    max_memory_gb: refuse (UserError) up front when the estimated peak is
    larger; default 80% of physical memory.
    """
    query_features, gallery_features = torch.as_tensor(query_features), torch.as_tensor(gallery_features)
    num_query, num_gallery = query_features.shape[0], gallery_features.shape[0]
    num_all, half, keep, _ = _sizes(num_query, num_gallery, k1, k2)
    if k1 < 1 or k2 < 1 or not 0 <= lambda_value <= 1:
        raise ValueError(f"re-ranking needs k1 >= 1, k2 >= 1 and 0 <= lambda <= 1, got {k1}, {k2}, {lambda_value}")
    if num_query == 0 or num_gallery == 0 or keep > num_all:
        raise ValueError(f"re-ranking with k1={k1}, k2={k2} needs more than {keep} images and a non-empty "
                         f"query and gallery, got {num_query} + {num_gallery}")
    device = query_features.device
    check_re_ranking_fits(num_query, num_gallery, query_features.shape[1], k1, k2, max_memory_gb, device)
    started = time.perf_counter()
    distances = PairDistances(query_features, gallery_features.to(device))
    if not bool(torch.isfinite(distances.right[:, -1]).all()):
        raise ValueError("features contain NaN, infinite or too large values; they cannot be re-ranked")
    near_index, near_value, maximum, out = nearest_neighbours(distances, num_query, keep)
    sets = _NeighbourSets(near_index[:, :keep], k1, half)
    v = _weights(distances, maximum, sets, near_index, near_value)
    del sets, distances
    v_qe = _query_expansion(v, near_index[:, :keep], k2)
    del v, near_index, near_value
    _jaccard_into(out, v_qe, num_query, lambda_value, maximum)
    logger.info("re-ranking done in %.1f s", time.perf_counter() - started)
    return out.cpu().numpy()
