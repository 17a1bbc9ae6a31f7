"""The re-ID metrics: hand-computed cases, the blocked evaluator against the dense one, the ignite metric."""
import numpy as np
import pytest
import torch
from ignite.engine import Engine

from engine.evaluator import ReIDMetric
from utils import ranking_statistics
from utils.distances import compute_distance_matrix
from utils.errors import UserError
from utils.re_ranking import re_ranking
from utils.reid_metric import (NoValidQueryError, eval_func, eval_func_with_minp, evaluate_distance_matrix,
                               evaluate_features)


def classic_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """The per-query loop of the classic evaluator, written out as reference (stable argsort)."""
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        hits = (g_pids[order] == q_pids[i])[keep].astype(np.float64)
        if not hits.any():
            continue
        cmc = np.minimum(np.cumsum(hits), 1)
        padded = np.ones(max_rank)
        padded[:min(max_rank, len(cmc))] = cmc[:max_rank]
        all_cmc.append(padded)
        positions = np.flatnonzero(hits)
        all_ap.append(np.mean(np.arange(1, len(positions) + 1) / (positions + 1)))
        all_inp.append(len(positions) / (positions[-1] + 1))
    return np.mean(all_cmc, axis=0), np.mean(all_ap), np.mean(all_inp)


def test_same_camera_removal_skipped_query_and_minp_by_hand():
    # query 0: pid 1 cam 0; query 1: pid 4 cam 0, whose only gallery image is in its own camera
    q_pids, q_camids = np.array([1, 4]), np.array([0, 0])
    g_pids = np.array([1, 2, 1, 3, 1, 4])
    g_camids = np.array([0, 1, 1, 0, 2, 0])
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.05],
                        [0.9, 0.8, 0.7, 0.6, 0.5, 0.1]], dtype=np.float32)
    # query 0 ranks g5 g0 g1 g2 g3 g4; g0 (pid 1, cam 0) is removed -> g5 g1 g2* g3 g4*
    cmc, m_ap, m_inp = eval_func_with_minp(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5)
    assert m_ap == pytest.approx((1 / 3 + 2 / 5) / 2, abs=1e-12)
    assert m_inp == pytest.approx(2 / 5, abs=1e-12)
    np.testing.assert_array_equal(cmc, [0, 0, 1, 1, 1])
    assert eval_func(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5)[1] == m_ap
    result = evaluate_distance_matrix(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5)
    assert result["num_valid_query"] == 1 and result["num_query"] == 2 and result["num_gallery"] == 6
    assert result["mAP"] == pytest.approx(m_ap, abs=1e-12) and result["mINP"] == pytest.approx(m_inp, abs=1e-12)
    assert result["cmc"] == [0, 0, 1, 1, 1] and result["rank1"] == 0 and result["rank5"] == 1


def test_ties_are_broken_by_gallery_index():
    q_pids, q_camids = np.array([1, 2]), np.array([0, 0])
    g_pids, g_camids = np.array([2, 1, 1]), np.array([1, 1, 1])
    distmat = np.full((2, 3), 0.5, dtype=np.float32)
    # query 0 (pid 1): g0 (pid 2) first, then its matches g1, g2; query 1 (pid 2): its match g0 first
    cmc, m_ap, m_inp = eval_func_with_minp(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=3)
    assert m_ap == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1.0) / 2, abs=1e-12)
    assert m_inp == pytest.approx((2 / 3 + 1.0) / 2, abs=1e-12)
    np.testing.assert_array_equal(cmc, [0.5, 1, 1])
    result = evaluate_distance_matrix(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=3)
    assert result["mAP"] == pytest.approx(m_ap, abs=1e-12) and result["cmc"] == [0.5, 1, 1]
    # the same through features: three identical gallery features
    qf, gf = torch.ones(2, 4), torch.ones(3, 4)
    result = evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, max_rank=3)
    assert result["mAP"] == pytest.approx(m_ap, abs=1e-12) and result["mINP"] == pytest.approx(m_inp, abs=1e-12)


def test_no_counted_query_raises_a_clear_error():
    q_pids, q_camids = np.array([1, 2]), np.array([0, 0])
    g_pids, g_camids = np.array([1, 2, 3]), np.array([0, 0, 1])  # own camera only, or other ids
    distmat = np.random.default_rng(0).random((2, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="none of the 2 queries"):
        eval_func(distmat, q_pids, g_pids, q_camids, g_camids)
    with pytest.raises(NoValidQueryError):
        evaluate_features(torch.randn(2, 4), torch.randn(3, 4), q_pids, g_pids, q_camids, g_camids)
    assert issubclass(NoValidQueryError, UserError)


def random_case(seed, num_query=600, num_gallery=500, dim=8, clustered=False):
    """Few identities and cameras (same-camera junk, queries without a match), duplicated features."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    num_ids = 40
    q_pids, g_pids = rng.integers(0, num_ids, num_query), rng.integers(0, num_ids - 5, num_gallery)
    q_camids, g_camids = rng.integers(0, 3, num_query), rng.integers(0, 3, num_gallery)
    centres = torch.randn(num_ids, dim) * (3.0 if clustered else 0.0)
    qf = centres[q_pids] + torch.randn(num_query, dim)
    gf = centres[g_pids] + torch.randn(num_gallery, dim)
    # exact ties: gallery duplicates of other identities, of the same identity, and queries equal to gallery items
    src, dst = rng.integers(0, num_gallery, 8), rng.integers(0, num_gallery, 8)
    gf[dst] = gf[src].clone()
    same = np.flatnonzero(g_pids == g_pids[0])
    gf[same] = gf[same[0]].clone()
    gf[np.flatnonzero(g_pids != g_pids[0])[:3]] = gf[same[0]].clone()  # ties across identities too
    qf[:20] = gf[rng.integers(0, num_gallery, 20)]
    return qf, gf, q_pids, g_pids, q_camids, g_camids


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("clustered", [False, True])
def test_blocked_evaluator_equals_dense_evaluator(distance, clustered):
    qf, gf, q_pids, g_pids, q_camids, g_camids = random_case(1 + clustered, clustered=clustered)
    labels = (q_pids, g_pids, q_camids, g_camids)
    dense = compute_distance_matrix(qf, gf, distance, True).numpy()
    cmc, m_ap, m_inp = eval_func_with_minp(dense, *labels, max_rank=20)
    ref_cmc, ref_ap, ref_inp = classic_loop(dense, *labels, max_rank=20)
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-12)
    assert m_ap == pytest.approx(ref_ap, abs=1e-12) and m_inp == pytest.approx(ref_inp, abs=1e-12)
    counted = sum((g_pids == p).any() and ((g_pids == p) & (g_camids != c)).any() for p, c in zip(q_pids, q_camids))
    assert 0 < counted < len(q_pids)
    # 0.01 MB forces blocks of one GEMM chunk (256 queries: 3 blocks), 64 MB one block
    for memory_mb in (0.01, 64):
        result = evaluate_features(qf, gf, *labels, max_rank=20, distance=distance, memory_mb=memory_mb)
        assert result["num_valid_query"] == counted
        np.testing.assert_allclose(result["cmc"], cmc, atol=1e-12)
        assert result["mAP"] == pytest.approx(m_ap, abs=1e-9)
        assert result["mINP"] == pytest.approx(m_inp, abs=1e-9)
        assert result["rank1"] == cmc[0] and result["rank10"] == cmc[9]


@pytest.mark.parametrize("dense_fraction", [-1.0, 2.0])
def test_both_search_strategies_and_not_normalised(monkeypatch, dense_fraction):
    monkeypatch.setattr(ranking_statistics, "DENSE_FRACTION", dense_fraction)
    for seed in range(3):
        qf, gf, *labels = random_case(10 + seed, num_query=400, num_gallery=300, clustered=seed == 1)
        dense = compute_distance_matrix(qf, gf, "euclidean", False).numpy()
        cmc, m_ap, m_inp = eval_func_with_minp(dense, *labels, max_rank=50)
        result = evaluate_features(qf, gf, *labels, feat_norm=False, memory_mb=0.01)
        np.testing.assert_allclose(result["cmc"], cmc, atol=1e-12)
        assert result["mAP"] == pytest.approx(m_ap, abs=1e-9) and result["mINP"] == pytest.approx(m_inp, abs=1e-9)


def test_cmc_past_the_gallery_stays_at_one():
    q_pids, q_camids, g_pids, g_camids = np.array([1]), np.array([0]), np.array([2, 1]), np.array([1, 1])
    cmc, _ = eval_func(np.array([[0.1, 0.2]]), q_pids, g_pids, q_camids, g_camids, max_rank=4)
    np.testing.assert_array_equal(cmc, [0, 1, 1, 1])


def test_reid_metric_in_an_engine():
    qf, gf, q_pids, g_pids, q_camids, g_camids = random_case(5, num_query=30, num_gallery=70)
    feats, pids = torch.cat([qf, gf]), np.concatenate([q_pids, g_pids])
    camids = np.concatenate([q_camids, g_camids])
    batches = [(feats[i:i + 16], torch.as_tensor(pids[i:i + 16]), torch.as_tensor(camids[i:i + 16]))
               for i in range(0, len(feats), 16)]
    engine = Engine(lambda engine, batch: {"feat": batch[0], "pids": batch[1], "camids": batch[2]})
    ReIDMetric(num_query=30, max_rank=10, distance="cosine", feat_norm="yes").attach(engine, "reid")
    engine.run(batches)
    expected = evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, max_rank=10, distance="cosine")
    assert engine.state.metrics["reid"] == expected
    assert engine.state.metrics["mAP"] == expected["mAP"] and len(expected["cmc"]) == 10


def test_reid_metric_with_re_ranking():
    qf, gf, q_pids, g_pids, q_camids, g_camids = random_case(6, num_query=40, num_gallery=120, clustered=True)
    metric = ReIDMetric(num_query=40, max_rank=5, re_ranking="yes", k1=6, k2=3, lambda_value=0.3)
    metric.reset()
    metric.update((torch.cat([qf, gf]), torch.as_tensor(np.concatenate([q_pids, g_pids])),
                   torch.as_tensor(np.concatenate([q_camids, g_camids]))))
    distmat = re_ranking(torch.nn.functional.normalize(qf, dim=1), torch.nn.functional.normalize(gf, dim=1),
                         k1=6, k2=3, lambda_value=0.3)
    cmc, m_ap, m_inp = eval_func_with_minp(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5)
    result = metric.compute()
    assert result["mAP"] == pytest.approx(m_ap, abs=1e-9) and result["mINP"] == pytest.approx(m_inp, abs=1e-9)
    np.testing.assert_allclose(result["cmc"], cmc, atol=1e-12)
