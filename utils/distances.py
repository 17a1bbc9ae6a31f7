"""Query x gallery distances, and the one rule that sizes every block of query rows.

Distances: squared euclidean |q|^2 + |g|^2 - 2 q.g on the (optionally
L2-normalised) features, or cosine distance 1 - q.g on L2-normalised
features (TEST.DISTANCE, TEST.FEAT_NORM).

Rows are computed in fixed chunks of GEMM_ROWS queries, each starting at a
multiple of GEMM_ROWS. BLAS picks its kernel by shape, and a row can come out
a few ulps different in a product with a different number of rows (MKL does
so below ~12 rows); with the same chunks everywhere, the dense matrix, the
blocked evaluator and the per-query ranking get the same distances bit for
bit. query_block_rows is the rule every blocked step sizes its blocks by
(TEST.EVAL_MEMORY_MB), in whole chunks.
"""
import logging

import torch

logger = logging.getLogger("jifd.eval")

DISTANCES = ("euclidean", "cosine")
GEMM_ROWS = 256


def query_block_rows(num_columns, memory_mb, bytes_per_element):
    """Rows per block: as many as fit ``memory_mb`` at ``bytes_per_element`` per (row, column) element,
    in whole GEMM_ROWS chunks, and at least one chunk (with a warning when that exceeds ``memory_mb``)."""
    rows = int(memory_mb * 2 ** 20 // (bytes_per_element * max(num_columns, 1)))
    if rows < GEMM_ROWS:
        logger.warning("TEST.EVAL_MEMORY_MB=%s is below one block of %d rows x %d columns (%.0f MB); "
                       "using that block", memory_mb, GEMM_ROWS, num_columns,
                       GEMM_ROWS * num_columns * bytes_per_element / 2 ** 20)
    return max(1, rows // GEMM_ROWS) * GEMM_ROWS


def yes_no(value, key):
    """A 'yes'/'no' setting (or a boolean) as a boolean; ``key`` names it in the error."""
    if isinstance(value, str):
        if value.lower() not in ("yes", "no"):
            raise ValueError(f"{key} must be 'yes' or 'no', got {value!r}")
        return value.lower() == "yes"
    return bool(value)


def check_distance(distance):
    if distance not in DISTANCES:
        raise ValueError(f"TEST.DISTANCE must be one of {DISTANCES}, got {distance!r}")


class DistanceRows:
    """Distances from query rows to the whole gallery, in fixed GEMM_ROWS chunks."""

    def __init__(self, qf, gf, distance, feat_norm, device=None):
        check_distance(distance)
        if qf.dim() != 2 or gf.dim() != 2 or qf.shape[1] != gf.shape[1]:
            raise ValueError(f"features must be N x D with equal D, got {tuple(qf.shape)} and {tuple(gf.shape)}")
        device = qf.device if device is None else torch.device(device)
        qf, gf = qf.detach().to(device, torch.float32), gf.detach().to(device, torch.float32)
        # one pass for the norms; a NaN or overflow anywhere in a row shows in its norm
        q_norm, g_norm = (torch.linalg.vector_norm(f, dim=1, keepdim=True) for f in (qf, gf))
        if not (torch.isfinite(q_norm).all() and torch.isfinite(g_norm).all()):
            raise ValueError("features contain NaN, infinite or too large values; they cannot be ranked")
        if distance == "cosine" or yes_no(feat_norm, "TEST.FEAT_NORM"):
            q_scale, g_scale = q_norm.clamp(min=1e-12), g_norm.clamp(min=1e-12)
            qf, gf = qf / q_scale, gf / g_scale
            q_norm, g_norm = q_norm / q_scale, g_norm / g_scale
        self.distance = distance
        self.query, self.gallery_t = qf, gf.t()
        self.query_sq, self.gallery_sq = (q_norm * q_norm)[:, 0], (g_norm * g_norm)[:, 0]
        self.num_query, self.num_gallery, self.device = qf.shape[0], gf.shape[0], device

    def fill(self, start, stop, out):
        """Write the rows start:stop (start a multiple of GEMM_ROWS) into out."""
        for chunk in range(start, stop, GEMM_ROWS):
            end = min(chunk + GEMM_ROWS, stop)
            rows = out[chunk - start:end - start]
            if self.distance == "euclidean":
                torch.add(self.query_sq[chunk:end, None], self.gallery_sq[None, :], out=rows)
                rows.addmm_(self.query[chunk:end], self.gallery_t, alpha=-2)
            else:
                rows.fill_(1).addmm_(self.query[chunk:end], self.gallery_t, alpha=-1)
        return out


def compute_distance_matrix(qf, gf, distance="euclidean", feat_norm=True):
    """The dense query x gallery distance matrix (torch, float32), as the evaluator computes it."""
    rows = DistanceRows(qf, gf, distance, feat_norm)
    out = torch.empty(rows.num_query, rows.num_gallery, device=rows.device)
    return rows.fill(0, rows.num_query, out)
