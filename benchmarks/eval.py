"""Evaluation speed and memory: blocked exact evaluator vs the classic dense one.

Sizes: VeRi test (1,678 x 11,579) and Opri test (8,917 x 54,756), 2048-d
features. Every row is a whole pipeline from features to metrics, timed in a
fresh process with its peak memory above the process's starting RSS (the
distance-only and blocked pipelines --repeats times, taking turns; median):
- distance only: normalise + one dense addmm (the floor: no ranking at all)
- blocked: utils.reid_metric.evaluate_features (TEST.EVAL_MEMORY_MB = 512)
- classic: the BoT-lineage evaluator (dense matrix, full argsort, per-query loop)
- eval_func: dense matrix + this project's vectorised eval_func (VeRi only)
The classic is run at Opri size only if its estimated need fits in memory; its
per-query loop (some 5e8 Python steps there) is then timed on CLASSIC_LOOP_QUERIES
queries and extrapolated, so that row has no metrics.

    python benchmarks/eval.py [--sizes veri opri] [--features clustered random]
"""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # noqa: E401,E702

import argparse
import json
import os
import time

import numpy as np
import torch.nn.functional as F

from benchmarks.measure import SIZES, available_gb, make_split, measure, print_table, run_worker, work_or_start
from utils.distances import compute_distance_matrix
from utils.reid_metric import eval_func_with_minp, evaluate_features

# bytes per query x gallery element of the classic evaluator: distances 4, argsort 8,
# gallery pids gathered by the argsort 8, their comparison 1, the int32 match matrix 4
CLASSIC_BYTES = 25
# At Opri size the classic's per-query loop (about 8,917 x 54,756 Python steps) is timed on this
# many queries and extrapolated; its dense part (matrix, argsort, matches) runs in full.
CLASSIC_LOOP_QUERIES = 300


def dense_distances(qf, gf):
    qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    m, n = len(qf), len(gf)
    distmat = qf.pow(2).sum(1, keepdim=True).expand(m, n) + gf.pow(2).sum(1, keepdim=True).expand(n, m).t()
    return distmat.addmm_(qf, gf.t(), beta=1, alpha=-2)


def classic_evaluate(qf, gf, q_pids, g_pids, q_camids, g_camids, max_rank=50, query_limit=None):
    """The BoT-lineage evaluator: full argsort, then a per-query loop with a per-element AP list.

    With query_limit only the first queries go through the loop; the record
    then has the loop's seconds per query so that the caller can extrapolate.
    """
    distmat = dense_distances(qf, gf).numpy()
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    loop_start = time.perf_counter()
    all_cmc, all_ap, all_inp = [], [], []
    looped = len(q_pids) if query_limit is None else min(query_limit, len(q_pids))
    for q_idx in range(looped):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        orig_cmc = matches[q_idx][np.invert(remove)]
        if not np.any(orig_cmc):
            continue
        cmc = orig_cmc.cumsum()
        last = np.where(orig_cmc == 1)[0].max()
        all_inp.append(cmc[last] / (last + 1.0))  # mINP as fast-reid adds it
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_rel = orig_cmc.sum()
        device_setup = [hits / (i + 1.0) for i, hits in enumerate(orig_cmc.cumsum())]
        all_ap.append((np.asarray(device_setup) * orig_cmc).sum() / num_rel)
    cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc)
    result = {"mAP": float(np.mean(all_ap)), "rank1": float(cmc[0]), "mINP": float(np.mean(all_inp))}
    if looped < len(q_pids):
        result = {"loop_seconds_per_query": (time.perf_counter() - loop_start) / looped, "looped": looped}
    return result


def distance_only(qf, gf, *labels):
    dense_distances(qf, gf)
    return {}


def blocked(qf, gf, *labels):
    return evaluate_features(qf, gf, *labels)


def dense_eval_func(qf, gf, *labels):
    _, m_ap, m_inp = eval_func_with_minp(compute_distance_matrix(qf, gf).numpy(), *labels)
    return {"mAP": m_ap, "mINP": m_inp}


METHODS = {"distance only": distance_only, "blocked": blocked, "classic": classic_evaluate,
           "eval_func": dense_eval_func}


def worker(method, size, features):
    data = make_split(size, features)
    kwargs = {"query_limit": CLASSIC_LOOP_QUERIES} if method == "classic" and size == "opri" else {}
    result, seconds, extra_mb = measure(METHODS[method], *data, **kwargs)
    record = {"method": method, "size": size, "features": features, "seconds": round(seconds, 2),
              "extra_mb": round(extra_mb), "load": round(os.getloadavg()[0], 1)}
    if "looped" in result:
        skipped = len(data[2]) - result["looped"]
        record["seconds"] = round(seconds + skipped * result["loop_seconds_per_query"], 1)
        record["method"] = f"classic (loop timed on {result['looped']} queries)"
    record.update({k: round(result[k], 6) for k in ("mAP", "rank1", "mINP") if k in result})
    print(json.dumps(record))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["veri", "opri"], choices=sorted(SIZES))
    parser.add_argument("--features", nargs="+", default=["clustered", "random"], choices=["clustered", "random"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every measurement (0: default)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the distance-only and blocked pipelines")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "SIZE", "FEATURES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if work_or_start(args, worker):
        return
    rows = []
    for size in args.sizes:
        num_query, num_gallery = SIZES[size][:2]
        for features in args.features:
            methods = ["distance only", "blocked"]
            if features == "clustered":
                classic_gb = CLASSIC_BYTES * num_query * num_gallery / 2 ** 30
                if classic_gb < available_gb() - 2:
                    methods.append("classic")
                else:
                    rows.append({"size": size, "features": features, "method": "classic",
                                 "seconds": "not run", "extra_mb": f"needs ~{classic_gb * 1024:.0f}"})
                if size == "veri":
                    methods.append("eval_func")
            # the two fast pipelines take turns, so that a changing load from other work hits both alike
            for method in methods[:2] * args.repeats + methods[2:]:
                record = run_worker(__file__, method, size, features, "--threads", str(args.threads))
                print(json.dumps(record), flush=True)
                same = [r for r in rows if (r["method"], r["size"], r["features"]) == (method, size, features)]
                if not same:
                    rows.append(dict(record, runs=[record["seconds"]]))
                    continue
                same[0]["runs"].append(record["seconds"])
                same[0]["seconds"] = round(float(np.median(same[0]["runs"])), 2)
                same[0]["extra_mb"] = max(same[0]["extra_mb"], record["extra_mb"])
    print()
    print_table(rows, [("size", "size"), ("features", "features"), ("method", "method"), ("time s (median)", "seconds"),
                       ("peak extra MB", "extra_mb"), ("mAP", "mAP"), ("rank-1", "rank1"), ("mINP", "mINP"),
                       ("load avg", "load"), ("all runs s", "runs")])
    print()
    for size in args.sizes:
        for features in args.features:
            found = {r["method"].split(" (")[0]: r for r in rows if r["size"] == size and r["features"] == features
                     and isinstance(r["seconds"], float)}
            line = f"{size}/{features}: blocked / distance only = " \
                   f"{found['blocked']['seconds'] / found['distance only']['seconds']:.2f}x"
            if "classic" in found:
                line += f", classic / blocked = {found['classic']['seconds'] / found['blocked']['seconds']:.1f}x"
                if "mAP" in found["classic"]:
                    line += f", |mAP difference| = {abs(found['classic']['mAP'] - found['blocked']['mAP']):.1e}"
            print(line)


if __name__ == "__main__":
    main()
