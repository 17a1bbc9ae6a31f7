"""The first step of k-reciprocal re-ranking (utils.re_ranking): every image's nearest neighbours
among all query and gallery images, without an N x N matrix.

Squared euclidean distances between all N images come from one product per
pair of row blocks ([f, |f|^2, 1] . [-2 g, 1, |g|^2]); each pair of blocks is
computed once and serves the rows of both. Each image keeps a running list
of its nearest few; after a row's first block only entries below the row's
largest kept value can enter.
"""
import torch

# Extra nearest neighbours kept by the blocked pass, so that distance ties at
# the k-th neighbour are detected (and re-ranked exactly) rather than guessed.
MARGIN = 4
# Rows per block of the symmetric distance pass.
BLOCK = 2048


class PairDistances:
    """Squared euclidean distances between all images as one product: [f, |f|^2, 1] . [-2 g, 1, |g|^2]."""

    def __init__(self, query_features, gallery_features):
        num_query, dim = query_features.shape
        self.num_all = num_query + gallery_features.shape[0]
        self.left = torch.empty(self.num_all, dim + 2, device=query_features.device)
        self.left[:num_query, :dim] = query_features
        self.left[num_query:, :dim] = gallery_features
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


class NearestList:
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


def nearest_neighbours(distances, num_query, keep):
    """Nearest neighbours per image in the normalised distance, the maxima, and the query x gallery distances.

    Returns (index, normalised distance) of the keep + MARGIN nearest, in
    order (the first `keep` exact), each image's maximum distance, and the
    raw query x gallery distances. Each pair of blocks is computed once and
    serves the rows of both blocks.
    """
    num_all, device = distances.num_all, distances.left.device
    nearest = NearestList(num_all, keep + MARGIN, device)
    maximum = torch.full((num_all,), float("-inf"), device=device)
    query_gallery = torch.empty(num_query, num_all - num_query, device=device)
    starts = range(0, num_all, BLOCK)
    # diagonal blocks first: every row is first ranked on a block it owns, then filtered
    pairs = [(a, a) for a in starts] + [(a, b) for a in starts for b in starts if b > a]
    for a, b in pairs:
        rows, cols = slice(a, min(a + BLOCK, num_all)), slice(b, min(b + BLOCK, num_all))
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
