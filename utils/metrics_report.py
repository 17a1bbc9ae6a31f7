"""How results reach the user: a console table and metrics.json (the CMC plot: utils.visualization)."""
import json
import os

from .atomic_io import atomic_write_text

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
