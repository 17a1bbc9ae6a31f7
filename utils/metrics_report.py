"""How results reach the user: a console table, metrics.json and a CMC plot."""
import json
import os

from .atomic_io import atomic_write_text
from .file_faults import reported_write_faults

REPORTED = (("mAP", "mAP"), ("rank1", "Rank-1"), ("rank5", "Rank-5"), ("rank10", "Rank-10"), ("mINP", "mINP"))


def format_metrics_table(metrics, title="Results"):
    lines = [title, "-" * 44]
    for key, label in REPORTED:
        lines.append(f"{label:<8} {100.0 * metrics[key]:6.2f}%")
    if "num_query" in metrics:
        lines.append(f"queries {metrics['num_query']}, gallery {metrics['num_gallery']}")
    return "\n".join(lines)


def metrics_record(metrics):
    """The reported numbers of one evaluation, as plain floats and ints."""
    record = {key: float(metrics[key]) for key, _ in REPORTED}
    record["cmc"] = [float(v) for v in metrics["cmc"]]
    record["num_query"] = int(metrics["num_query"])
    record["num_gallery"] = int(metrics["num_gallery"])
    # Test images that could not be read and were evaluated as blank images.
    for key in ("unreadable_query", "unreadable_gallery"):
        if key in metrics:
            record[key] = int(metrics[key])
    return record


def write_metrics_json(output_dir, metrics, dataset, weight, validation=None, diagnostics=None):
    """OUTPUT_DIR/metrics.json in the format of shared/design/evaluation.md.

    ``validation``: (dataset name, metrics) of the source-domain validation split, written under
    "validation" like the main numbers; ``diagnostics``: a dict of numbers, written under "diagnostics".
    """
    record = metrics_record(metrics)
    record["dataset"] = dataset
    record["weight"] = weight
    if validation is not None:
        name, values = validation
        record["validation"] = {**metrics_record(values), "dataset": name}
    if diagnostics is not None:
        record["diagnostics"] = {name: float(value) for name, value in diagnostics.items()}
    path = os.path.join(output_dir, "metrics.json")
    atomic_write_text(path, json.dumps(record, indent=2))
    return path


def plot_cmc(output_dir, metrics, label=""):
    """Save the CMC curve beside metrics.json as cmc.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmc = [100.0 * v for v in metrics["cmc"]]
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(range(1, len(cmc) + 1), cmc, marker=".", label=label or None)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(f"CMC (mAP {100.0 * metrics['mAP']:.1f}%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if label:
        ax.legend(loc="lower right")
    path = os.path.join(output_dir, "cmc.png")
    try:
        with reported_write_faults(path):
            fig.savefig(path)
    finally:
        plt.close(fig)
    return path
