"""Shared by the evaluation benchmarks: synthetic test splits and per-method measurement in a fresh process.

Each method runs in its own subprocess so that its peak memory is its own:
after the data is built the process resets its peak-RSS mark
(/proc/self/clear_refs), runs the method, and reports the peak above the RSS
it started from.
"""
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch

SIZES = {"veri": (1678, 11579, 200, 20), "opri": (8917, 54756, 8917, 64)}


def make_split(size, features="clustered", dim=2048, seed=0):
    """(qf, gf, q_pids, g_pids, q_camids, g_camids) shaped like the named test split.

    clustered: identity centre + camera offset + noise (mAP in the range of a
    trained model); random: pure noise (an untrained model, the worst case).
    """
    num_query, num_gallery, num_ids, num_cams = SIZES[size]
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    q_pids = rng.permutation(num_ids) if num_query == num_ids else rng.integers(0, num_ids, num_query)
    g_pids = rng.integers(0, num_ids, num_gallery)
    q_camids, g_camids = rng.integers(0, num_cams, num_query), rng.integers(0, num_cams, num_gallery)
    feats = torch.randn(num_query + num_gallery, dim, generator=gen)
    if features == "clustered":
        ids = torch.as_tensor(np.concatenate([q_pids, g_pids]))
        cams = torch.as_tensor(np.concatenate([q_camids, g_camids]))
        feats *= 3.0
        feats += torch.randn(num_ids, dim, generator=gen)[ids]
        feats += 0.5 * torch.randn(num_cams, dim, generator=gen)[cams]
    elif features != "random":
        raise ValueError(f"unknown features {features!r}")
    return feats[:num_query].clone(), feats[num_query:].clone(), q_pids, g_pids, q_camids, g_camids


def _memory_kb(field):
    with open("/proc/self/status") as status:
        return int(re.search(field + r":\s+(\d+)", status.read()).group(1))


def measure(function, *args, **kwargs):
    """(result, seconds, peak extra MB) of one call, peak RSS above the RSS before the call."""
    baseline = _memory_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    start = time.perf_counter()
    result = function(*args, **kwargs)
    seconds = time.perf_counter() - start
    return result, seconds, (_memory_kb("VmHWM") - baseline) / 1024


def available_gb():
    with open("/proc/meminfo") as meminfo:
        return int(re.search(r"MemAvailable:\s+(\d+)", meminfo.read()).group(1)) / 2 ** 20


def work_or_start(args, worker):
    """Apply --threads; then either run the --worker call (True) or print the run's header (False)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        worker(*args.worker)
        return True
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, "
          f"memory available {available_gb():.1f} GB", flush=True)
    return False


def run_worker(script, *args):
    """Run `script --worker args...` in a fresh interpreter; its last stdout line is a JSON record."""
    done = subprocess.run([sys.executable, script, "--worker", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if done.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows, columns):
    widths = [max(len(name), *(len(str(row.get(key, ""))) for row in rows)) for name, key in columns]
    print("  ".join(name.ljust(width) for (name, _), width in zip(columns, widths)))
    for row in rows:
        print("  ".join(str(row.get(key, "")).ljust(width) for (_, key), width in zip(columns, widths)))
