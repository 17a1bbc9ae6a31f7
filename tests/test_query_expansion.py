"""TEST.AQE: average query expansion against a case worked by hand, and composed with re-ranking."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from config import load_cfg
from engine.evaluator import ReIDMetric, build_reid_metric
from test_reid_metric import random_case
from utils.query_expansion import average_query_expansion
from utils.re_ranking import re_ranking
from utils.reid_metric import evaluate_distance_matrix, evaluate_features

# Unit directions q0 (1, 0), q1 (.6, .8), g0 (.8, .6), g1 (0, 1); cosine similarities
# q0.g0 .8, q0.q1 .6, q0.g1 0, q1.g0 .96, q1.g1 .8, g0.g1 .6. With k = 2 each feature averages
# itself (weight 1) and its nearest other, weighted by similarity ** 3, divided by k = 2:
#   q0 <- ((2, 0) + .512 (.8, .6)) / 2              = (1.2048, .1536)       nearest g0 (.8)
#   q1 <- ((.6, .8) + .884736 (.8, .6)) / 2         = (.6538944, .6654208)  nearest g0 (.96)
#   g0 <- ((.8, .6) + .884736 (.6, .8)) / 2         = (.6654208, .6538944)  nearest q1 (.96)
#   g1 <- ((0, 3) + .512 (.6, .8)) / 2              = (.1536, 1.7048)       nearest q1 (.8)
QUERY = torch.tensor([[2.0, 0.0], [0.6, 0.8]])
GALLERY = torch.tensor([[0.8, 0.6], [0.0, 3.0]])
EXPANDED_QUERY = torch.tensor([[1.2048, 0.1536], [0.6538944, 0.6654208]])
EXPANDED_GALLERY = torch.tensor([[0.6654208, 0.6538944], [0.1536, 1.7048]])


@pytest.mark.parametrize("memory_mb", [512, 1e-9])  # one block, and one row per block
def test_aqe_matches_the_hand_computed_case(memory_mb):
    query, gallery = average_query_expansion(QUERY, GALLERY, k=2, alpha=3.0, memory_mb=memory_mb)
    torch.testing.assert_close(query, EXPANDED_QUERY, rtol=0, atol=1e-6)
    torch.testing.assert_close(gallery, EXPANDED_GALLERY, rtol=0, atol=1e-6)


def test_k_one_and_alpha_zero_leave_features_alone_and_times_repeats():
    query, gallery = average_query_expansion(QUERY, GALLERY, k=1, alpha=3.0)
    assert torch.equal(query, QUERY) and torch.equal(gallery, GALLERY)
    twice = average_query_expansion(QUERY, GALLERY, k=2, alpha=3.0, times=2)
    again = average_query_expansion(EXPANDED_QUERY, EXPANDED_GALLERY, k=2, alpha=3.0)
    for got, want in zip(twice, again):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # all four, equally weighted: every feature becomes their mean
    query, gallery = average_query_expansion(QUERY, GALLERY, k=4, alpha=0.0)
    torch.testing.assert_close(torch.cat([query, gallery]), torch.cat([QUERY, GALLERY]).mean(0).expand(4, 2))


def _metric_of(metric, qf, gf, q_pids, g_pids, q_camids, g_camids):
    metric.reset()
    metric.update((torch.cat([qf, gf]), torch.as_tensor(np.concatenate([q_pids, g_pids])),
                   torch.as_tensor(np.concatenate([q_camids, g_camids]))))
    return metric.compute()


@pytest.mark.parametrize("re_rank", [False, True])
def test_aqe_comes_before_ranking_and_re_ranking(re_rank):
    qf, gf, q_pids, g_pids, q_camids, g_camids = random_case(7, num_query=40, num_gallery=120, clustered=True)
    labels = (q_pids, g_pids, q_camids, g_camids)
    aqe = {"k": 3, "alpha": 3.0, "times": 1}
    result = _metric_of(ReIDMetric(40, max_rank=5, re_ranking=re_rank, k1=6, k2=3, aqe=aqe), qf, gf, *labels)
    eq, eg = average_query_expansion(qf, gf, **aqe)
    if re_rank:
        distmat = re_ranking(F.normalize(eq, dim=1), F.normalize(eg, dim=1), k1=6, k2=3, lambda_value=0.3)
        expected = evaluate_distance_matrix(distmat, *labels, max_rank=5)
    else:
        expected = evaluate_features(eq, eg, *labels, max_rank=5)
    assert result == expected
    assert result != _metric_of(ReIDMetric(40, max_rank=5, re_ranking=re_rank, k1=6, k2=3), qf, gf, *labels)


def test_config_switches_aqe_with_fast_reid_keys():
    assert build_reid_metric(load_cfg(), 10).aqe is None
    cfg = load_cfg("", ["TEST.AQE.ENABLED", "True", "TEST.AQE.QE_K", "7", "TEST.AQE.ALPHA", "2.0"])
    assert build_reid_metric(cfg, 10).aqe == {"k": 7, "alpha": 2.0, "times": 1}
