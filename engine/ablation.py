"""The four ablation rows of one protocol: baseline, +image, +feature, full JIFD."""
import csv
import io
import logging
import os
import time

from utils.atomic_io import atomic_write_text

from .trainer import do_train

logger = logging.getLogger("jifd.ablation")

# row name -> (DISENTANGLE.IMAGE.ENABLED, DISENTANGLE.FEATURE.ENABLED)
ROWS = (
    ("baseline", False, False),
    ("+image", True, False),
    ("+feature", False, True),
    ("full JIFD", True, True),
)
COLUMNS = ("mAP", "rank1", "rank5", "rank10", "mINP")


def _row_cfg(cfg, name, image, feature):
    row_cfg = cfg.clone()
    row_cfg.defrost()
    row_cfg.DISENTANGLE.IMAGE.ENABLED = image
    row_cfg.DISENTANGLE.FEATURE.ENABLED = feature
    folder = name.replace("+", "plus_").replace(" ", "_").lower()
    row_cfg.OUTPUT_DIR = os.path.join(cfg.OUTPUT_DIR, folder)
    row_cfg.freeze()
    return row_cfg


def run_ablation(cfg):
    """Train and evaluate each row; returns a list of dicts (row, metrics in %, minutes)."""
    results = []
    for name, image, feature in ROWS:
        logger.info("ablation row %s: image level %s, feature level %s", name, image, feature)
        started = time.time()
        metrics = do_train(_row_cfg(cfg, name, image, feature))
        row = {"row": name, **{key: 100.0 * metrics[key] for key in COLUMNS},
               "minutes": (time.time() - started) / 60.0}
        results.append(row)
        write_ablation_tables(cfg.OUTPUT_DIR, results)
    return results


def format_markdown(results):
    lines = ["| row | mAP | rank-1 | rank-5 | rank-10 | mINP | minutes |", "|---|---|---|---|---|---|---|"]
    for row in results:
        values = " | ".join(f"{row[key]:.1f}" for key in COLUMNS)
        lines.append(f"| {row['row']} | {values} | {row['minutes']:.1f} |")
    return "\n".join(lines)


def write_ablation_tables(output_dir, results):
    """OUTPUT_DIR/ablation.md and ablation.csv, rewritten after every row so a stopped run keeps its rows."""
    atomic_write_text(os.path.join(output_dir, "ablation.md"), format_markdown(results) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=("row",) + COLUMNS + ("minutes",))
    writer.writeheader()
    for row in results:
        writer.writerow({key: (f"{value:.4f}" if isinstance(value, float) else value) for key, value in row.items()})
    atomic_write_text(os.path.join(output_dir, "ablation.csv"), buffer.getvalue())
