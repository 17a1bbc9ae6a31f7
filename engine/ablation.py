"""The ablation rows of one protocol over several seeds, with paired statistics.

Rows: baseline, +image, +feature, full (both levels) and +mixstyle (the
generator-free reference: MixStyle, both levels off). Every row of a seed
trains from the same initial re-ID weights (SOLVER.SEED), so that rows are
compared in same-seed pairs. The +image and full rows of a seed share one
generator warm-up (DISENTANGLE.IMAGE.WARMUP_CACHE), which depends only on the
seed and the data and generator settings.

Each finished row leaves OUTPUT_DIR/seed_<s>/<row>/ablation_row.json, and a
run started again on the same OUTPUT_DIR reads those instead of training
them again.
"""
import csv
import io
import json
import logging
import os
import time

from utils.atomic_io import atomic_write_text
from utils.paired_statistics import mean_std, paired_difference

from .trainer import do_train

logger = logging.getLogger("jifd.ablation")

# row name -> (DISENTANGLE.IMAGE.ENABLED, DISENTANGLE.FEATURE.ENABLED, MODEL.MIXSTYLE.ENABLED)
ROWS = {
    "baseline": (False, False, False),
    "+image": (True, False, False),
    "+feature": (False, True, False),
    "full": (True, True, False),
    "+mixstyle": (False, False, True),
}
COLUMNS = ("mAP", "rank1", "rank5", "rank10", "mINP")
CSV_FIELDS = ("row", "seed") + COLUMNS + ("minutes",)
# (row, reference) pairs whose same-seed differences ablation.md reports besides "vs baseline".
COMPARISONS = (("full", "+feature"), ("full", "+image"), ("+image", "+mixstyle"))
ROW_RECORD = "ablation_row.json"


def row_folder(name):
    return name.replace("+", "plus_").lower()


def row_cfg(cfg, name, seed):
    """The configuration of row ``name`` for ``seed``; its OUTPUT_DIR is OUTPUT_DIR/seed_<seed>/<row>."""
    image, feature, mixstyle = ROWS[name]
    derived = cfg.clone()
    derived.defrost()
    derived.DISENTANGLE.IMAGE.ENABLED = image
    derived.DISENTANGLE.FEATURE.ENABLED = feature
    derived.MODEL.MIXSTYLE.ENABLED = mixstyle
    derived.SOLVER.SEED = seed
    seed_dir = os.path.join(cfg.OUTPUT_DIR, f"seed_{seed}")
    derived.OUTPUT_DIR = os.path.join(seed_dir, row_folder(name))
    if image and not derived.DISENTANGLE.IMAGE.WARMUP_CACHE:
        derived.DISENTANGLE.IMAGE.WARMUP_CACHE = os.path.join(seed_dir, "generator_warmup.pt")
    derived.freeze()
    return derived


def _result(name, seed, metrics, minutes):
    result = {"row": name, "seed": seed, "minutes": minutes, **{key: float(metrics[key]) for key in COLUMNS}}
    if "validation" in metrics:
        result["validation"] = {key: float(metrics["validation"][key]) for key in COLUMNS}
    if "diagnostics" in metrics:
        result["diagnostics"] = {key: float(value) for key, value in metrics["diagnostics"].items()}
    return result


def run_ablation(cfg, seeds=1, rows=tuple(ROWS)):
    """Train and evaluate each row for seeds SOLVER.SEED, SOLVER.SEED + 1, ...; returns the results.

    ablation.csv, ablation.md (and validation.csv with DATASETS.VALIDATION) are rewritten after
    every row, so that a stopped run keeps what it finished.
    """
    results = []
    for seed in range(cfg.SOLVER.SEED, cfg.SOLVER.SEED + seeds):
        for name in rows:
            derived = row_cfg(cfg, name, seed)
            record_path = os.path.join(derived.OUTPUT_DIR, ROW_RECORD)
            if os.path.isfile(record_path):
                with open(record_path) as handle:
                    results.append(json.load(handle))
                logger.info("ablation row %s, seed %d: read from %s", name, seed, record_path)
            else:
                logger.info("ablation row %s, seed %d: image level %s, feature level %s, MixStyle %s",
                            name, seed, *ROWS[name])
                started = time.time()
                metrics = do_train(derived)
                results.append(_result(name, seed, metrics, (time.time() - started) / 60.0))
                atomic_write_text(record_path, json.dumps(results[-1], indent=1))
            write_ablation_tables(cfg.OUTPUT_DIR, results)
    return results


def _csv(results, key=None):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        values = result[key] if key else result
        writer.writerow({"row": result["row"], "seed": result["seed"], "minutes": f"{result['minutes']:.2f}",
                         **{column: f"{values[column]:.4f}" for column in COLUMNS}})
    return buffer.getvalue()


def _by_row(results, key=None):
    """{row: {seed: metrics}} of the target (key None) or of result[key]."""
    table = {}
    for result in results:
        if key is None or key in result:
            table.setdefault(result["row"], {})[result["seed"]] = result[key] if key else result
    return table


def _interval(values, reference, column):
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        return "-"
    mean, low, high = paired_difference([100 * values[s][column] for s in seeds],
                                        [100 * reference[s][column] for s in seeds])
    verdict = "" if low <= 0 <= high else (" (higher)" if low > 0 else " (lower)")
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]{verdict}"


def _metrics_table(results, title, key=None):
    table = _by_row(results, key)
    baseline = table.get("baseline", {})
    seeds = sorted({result["seed"] for result in results})
    lines = [f"### {title} ({len(seeds)} seed(s): {', '.join(map(str, seeds))})", "",
             "mean ± std over seeds, in %; Δ: same-seed difference to the baseline, mean [95% t-interval]", "",
             "| row | seeds | mAP | rank-1 | rank-5 | rank-10 | mINP | minutes | Δ mAP | Δ rank-1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, per_seed in table.items():
        cells = []
        for column in COLUMNS:
            mean, std = mean_std(100 * values[column] for values in per_seed.values())
            cells.append(f"{mean:.1f} ± {std:.1f}")
        minutes, _ = mean_std(result["minutes"] for result in results
                              if result["row"] == name and result["seed"] in per_seed)
        deltas = [_interval(per_seed, baseline, column) if name != "baseline" else "-"
                  for column in ("mAP", "rank1")]
        lines.append(f"| {name} | {len(per_seed)} | {' | '.join(cells)} | {minutes:.1f} | {' | '.join(deltas)} |")
    extra = [(row, reference) for row, reference in COMPARISONS if row in table and reference in table]
    if extra:
        lines += ["", "| comparison | Δ mAP | Δ rank-1 |", "|---|---|---|"]
        for row, reference in extra:
            lines.append(f"| {row} − {reference} | {_interval(table[row], table[reference], 'mAP')} | "
                         f"{_interval(table[row], table[reference], 'rank1')} |")
    return lines


def _diagnostics_table(results):
    table = _by_row(results, "diagnostics")
    names = sorted({name for per_seed in table.values() for values in per_seed.values() for name in values})
    if not names:
        return []
    lines = ["### Diagnostics (mean ± std over seeds; see README for each one's meaning and chance level)", "",
             "| row | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row, per_seed in table.items():
        cells = []
        for name in names:
            values = [values[name] for values in per_seed.values() if name in values]
            cells.append("{:.3f} ± {:.3f}".format(*mean_std(values)) if values else "-")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def format_markdown(results):
    lines = _metrics_table(results, "Target")
    if any("validation" in result for result in results):
        lines += [""] + _metrics_table(results, "Validation (source domain; settings are chosen here)",
                                       key="validation")
    diagnostics = _diagnostics_table(results)
    if diagnostics:
        lines += [""] + diagnostics
    return "\n".join(lines)


def write_ablation_tables(output_dir, results):
    """OUTPUT_DIR/ablation.csv (metrics in [0, 1]), ablation.md and, with a validation split, validation.csv."""
    atomic_write_text(os.path.join(output_dir, "ablation.csv"), _csv(results))
    atomic_write_text(os.path.join(output_dir, "ablation.md"), format_markdown(results) + "\n")
    validated = [result for result in results if "validation" in result]
    if validated:
        atomic_write_text(os.path.join(output_dir, "validation.csv"), _csv(validated, key="validation"))
