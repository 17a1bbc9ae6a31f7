"""Sparse blocked k-reciprocal re-ranking against the dense textbook algorithm."""
import numpy as np
import pytest
import torch

from utils import nearest_neighbours
from utils import re_ranking as rr
from utils.errors import UserError


def textbook_re_ranking(qf, gf, k1, k2, lambda_value):
    """Zhong et al. 2017 as the public code computes it, dense N x N, in float32, stable neighbour order."""
    num_query = len(qf)
    feat = torch.cat([qf, gf])
    num_all = len(feat)
    sq = (feat * feat).sum(1, keepdim=True)
    dist = (sq + sq.t()).addmm_(feat, feat.t(), alpha=-2).numpy()
    original = (dist / dist.max(axis=0)).T
    rank = np.argsort(original, axis=1, kind="stable")
    half = int(np.around(k1 / 2))

    def reciprocal(i, k):
        forward = rank[i, :k + 1]
        return forward[(rank[forward, :k + 1] == i).any(axis=1)]

    v = np.zeros((num_all, num_all), dtype=np.float32)
    for i in range(num_all):
        own = reciprocal(i, k1)
        expansion = own
        for candidate in own:
            theirs = reciprocal(candidate, half)
            if len(np.intersect1d(theirs, own)) > 2 / 3 * len(theirs):
                expansion = np.append(expansion, theirs)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion])
        v[i, expansion] = weight / weight.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(num_all)])
    jaccard = np.ones((num_query, num_all), dtype=np.float32)
    for i in range(num_query):
        overlap = np.minimum(v[i][None, :], v).sum(axis=1)
        jaccard[i] = 1 - overlap / (2 - overlap)
    final = jaccard * (1 - lambda_value) + original[:num_query] * lambda_value
    return final[:, num_query:]


def clustered_features(seed, num_query, num_gallery, dim=16, num_ids=25):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=gen) * 2
    ids = torch.randint(0, num_ids, (num_query + num_gallery,), generator=gen)
    feats = torch.nn.functional.normalize(centres[ids] + torch.randn(len(ids), dim, generator=gen), dim=1)
    return feats[:num_query], feats[num_query:]


@pytest.mark.parametrize("k1, k2, lambda_value", [(20, 6, 0.3), (7, 1, 0.5), (5, 3, 0.0)])
def test_equals_dense_textbook_version(monkeypatch, k1, k2, lambda_value):
    # small blocks and work buffers: several distance blocks (one straddling query and gallery), many chunks
    monkeypatch.setattr(nearest_neighbours, "BLOCK", 64)
    monkeypatch.setattr(rr, "_WORK_BYTES", 64 * 1024)
    qf, gf = clustered_features(k1, 70, 230)
    expected = textbook_re_ranking(qf, gf, k1, k2, lambda_value)
    result = rr.re_ranking(qf, gf, k1=k1, k2=k2, lambda_value=lambda_value)
    assert result.shape == (70, 230) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=0, atol=2e-5)
    assert np.ptp(expected) > 0.3  # the Jaccard part is not trivial


def test_defaults_unpatched_and_numpy_input():
    qf, gf = clustered_features(3, 40, 160, dim=8)
    expected = textbook_re_ranking(qf, gf, 20, 6, 0.3)
    np.testing.assert_allclose(rr.re_ranking(qf.numpy(), gf.numpy()), expected, rtol=0, atol=2e-5)


def test_refuses_up_front_when_memory_is_short(monkeypatch):
    def never(*args):
        raise AssertionError("the distance pass started")

    monkeypatch.setattr(rr, "nearest_neighbours", never)
    qf, gf = clustered_features(0, 50, 200)
    with pytest.raises(UserError, match="TEST.RE_RANKING"):
        rr.re_ranking(qf, gf, max_memory_gb=0.001)
    peak, seconds = rr.estimate_re_ranking(8917, 54756, 2048, gflops=50.0)
    assert 2.0 * 2 ** 30 < peak < 12 * 2 ** 30 and seconds > 60


def test_rejects_too_few_images():
    qf, gf = clustered_features(0, 5, 10)
    with pytest.raises(ValueError, match="k1=20"):
        rr.re_ranking(qf, gf)
