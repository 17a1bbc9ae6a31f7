"""k-reciprocal re-ranking speed and memory: sparse blocked vs the classic dense implementation.

VeRi test size (1,678 + 11,579 images) runs both, each in a fresh process
(time, peak memory above the starting RSS), and compares their outputs;
Opri test size (8,917 + 54,756) runs the sparse one only and reports what
the dense one would need (it holds several N x N matrices). Features are
L2-normalised 2048-d synthetic features (benchmarks/measure.py), as the
evaluator passes them with TEST.FEAT_NORM 'yes'.

    python benchmarks/rerank.py [--sizes veri opri]
"""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # noqa: E401,E702

import argparse
import json
import os
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.measure import SIZES, available_gb, make_split, measure, print_table, run_worker, work_or_start
from utils.re_ranking import re_ranking
from utils.reid_metric import evaluate_distance_matrix

# bytes per N x N element of the classic: distances 4, normalised copy 4, argsort int64 8 and its
# int32 copy 4, V float16 2 (V_qe replaces V)
CLASSIC_BYTES = 22


def classic_re_ranking(probFea, galFea, k1=20, k2=6, lambda_value=0.3):
    """Dense re-ranking as the public BoT-lineage code does it: N x N matrices, float16 V, Python loops."""
    num_query = probFea.shape[0]
    feat = torch.cat([probFea, galFea])
    num_all = feat.shape[0]
    sq = feat.pow(2).sum(dim=1, keepdim=True)
    dist = (sq.expand(num_all, num_all) + sq.expand(num_all, num_all).t()).addmm_(feat, feat.t(), beta=1, alpha=-2)
    original_dist = dist.numpy()
    del dist, feat
    original_dist = np.transpose(original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float16)
    initial_rank = np.argsort(original_dist).astype(np.int32)
    half = int(np.around(k1 / 2))
    for i in range(num_all):
        forward = initial_rank[i, :k1 + 1]
        backward = initial_rank[forward, :k1 + 1]
        reciprocal = forward[np.where(backward == i)[0]]
        expansion = reciprocal
        for candidate in reciprocal:
            c_forward = initial_rank[candidate, :half + 1]
            c_backward = initial_rank[c_forward, :half + 1]
            c_reciprocal = c_forward[np.where(c_backward == candidate)[0]]
            if len(np.intersect1d(c_reciprocal, reciprocal)) > 2 / 3 * len(c_reciprocal):
                expansion = np.append(expansion, c_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original_dist[i, expansion])
        V[i, expansion] = weight / np.sum(weight)
    original_dist = original_dist[:num_query]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float16)
        for i in range(num_all):
            V_qe[i] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    inv_index = [np.where(V[:, i] != 0)[0] for i in range(num_all)]
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float16)
    for i in range(num_query):
        temp_min = np.zeros((1, num_all), dtype=np.float16)
        for l in np.where(V[i] != 0)[0]:
            rows = inv_index[l]
            temp_min[0, rows] = temp_min[0, rows] + np.minimum(V[i, l], V[rows, l])
        jaccard_dist[i] = 1 - temp_min / (2 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:, num_query:]


METHODS = {"classic": classic_re_ranking, "sparse": re_ranking}


def worker(method, size, output):
    qf, gf, *labels = make_split(size)
    qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    distmat, seconds, extra_mb = measure(METHODS[method], qf, gf)
    metrics = evaluate_distance_matrix(distmat, *labels)
    if output != "-":
        np.save(output, distmat)
    print(json.dumps({"method": method, "size": size, "seconds": round(seconds, 1), "extra_mb": round(extra_mb),
                      "load": round(os.getloadavg()[0], 1),
                      "mAP": round(metrics["mAP"], 6), "rank1": round(metrics["rank1"], 6),
                      "mINP": round(metrics["mINP"], 6)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["veri", "opri"], choices=sorted(SIZES))
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every measurement (0: default)")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "SIZE", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if work_or_start(args, worker):
        return
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            num_all = sum(SIZES[size][:2])
            classic_gb = CLASSIC_BYTES * num_all ** 2 / 2 ** 30
            outputs = {}
            for method in ("sparse", "classic"):
                if method == "classic" and classic_gb > available_gb() - 2:
                    rows.append({"method": method, "size": size, "seconds": "not run",
                                 "extra_mb": f"needs ~{classic_gb * 1024:.0f}"})
                    continue
                outputs[method] = os.path.join(tmp, f"{method}_{size}.npy") if size == "veri" else "-"
                rows.append(run_worker(__file__, method, size, outputs[method], "--threads", str(args.threads)))
                print(json.dumps(rows[-1]), flush=True)
            timed = {r["method"]: r for r in rows if r["size"] == size and isinstance(r["seconds"], float)}
            if "classic" in timed:
                difference = np.abs(np.load(outputs["sparse"]) - np.load(outputs["classic"])).max()
                notes.append(f"{size}: classic / sparse = {timed['classic']['seconds'] / timed['sparse']['seconds']:.1f}x"
                             f" faster, max |distance difference| = {difference:.1e} (the classic keeps V in float16,"
                             " and a few neighbour lists hinge on 1-ulp distance differences)")
    print()
    print_table(rows, [("size", "size"), ("method", "method"), ("time s", "seconds"), ("peak extra MB", "extra_mb"),
                       ("mAP", "mAP"), ("rank-1", "rank1"), ("mINP", "mINP"), ("load avg", "load")])
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
