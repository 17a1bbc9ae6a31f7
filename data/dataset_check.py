"""Checking the configured datasets without training (tools/check_dataset.py).

For the training split of every source and the query and gallery of the
target: the folder, the file names, counts against the published ones
(datasets.md), every image decoded as the loader decodes it (JPEG draft
mode, so 4K files are quick), and cameras: training identities seen by one
camera only, and queries whose identity has no gallery image on another
camera (evaluation skips those). Every run also warns about the latter.
"""
import logging
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from utils.errors import UserError

from .dataset_presets import get_preset, scan_split
from .image_loading import BadImageError, decode_image
from .reid_folder import no_records_message
from .transforms import input_size

logger = logging.getLogger("jifd.data")

# Problems of one kind are listed up to this many, then counted.
MAX_LISTED = 10


def queries_without_match(query, gallery):
    """The query records whose identity has no gallery image on another camera."""
    gallery_cameras = defaultdict(set)
    for record in gallery:
        gallery_cameras[record.pid].add(record.camid)
    return [record for record in query if not gallery_cameras[record.pid] - {record.camid}]


def _listed(items):
    shown = ", ".join(str(item) for item in items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def describe_queries_without_match(query, gallery):
    """A sentence about the queries evaluation cannot count, or None when every query has a match."""
    unmatched = queries_without_match(query, gallery)
    if not unmatched:
        return None
    ids = sorted({record.pid for record in unmatched})
    return (f"{len(unmatched)} of {len(query)} queries have no gallery image of their identity on another "
            f"camera and are skipped by the evaluation (query ids {_listed(ids)})")


def warn_queries_without_match(query, gallery, title):
    message = describe_queries_without_match(query, gallery)
    if message:
        logger.warning("%s: %s", title, message)


@dataclass
class SplitReport:
    """What was found in one split, and what is wrong with it."""

    dataset: str
    split: str
    dataset_title: str = ""
    folder: str = ""
    ids: int = 0
    images: int = 0
    cameras: int = 0
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def title(self):
        return f"{self.dataset_title or self.dataset} {self.split}"


def _decode_problem(job):
    """(error text or None, whether the file has 16 bits per channel) of one image."""
    path, target_size, draft = job
    try:
        return None, decode_image(path, target_size, draft)[1]
    except BadImageError as err:
        return str(err), False


def _decode_all(paths, target_size, draft, workers):
    """(error text or None, 16-bit) per path, decoded in ``workers`` processes (0: in this one)."""
    jobs = [(path, target_size, draft) for path in paths]
    if workers <= 0 or len(jobs) < 2:
        return [_decode_problem(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_decode_problem, jobs, chunksize=64))


def _compare_counts(report, preset, split):
    published = preset.published(split)
    if published is None:
        return
    shown = "/".join("?" if value is None else f"{value:,}" for value in published)
    report.notes.append(f"published ids/images: {shown}")
    if any(want is not None and want != got for want, got in zip(published, (report.ids, report.images))):
        report.warnings.append(f"{report.ids:,} ids / {report.images:,} images differ from the published "
                               f"{shown} (a subset or another copy?)")


def check_split(cfg, name, split, workers=0):
    """(SplitReport, records) of one split; records is empty when the split is unusable."""
    preset = get_preset(cfg, name)
    report = SplitReport(dataset=preset.name, split=split, dataset_title=preset.title)
    pattern_key = preset.config_key("PATTERN")
    try:
        report.folder, scan = scan_split(preset, split)
    except UserError as err:
        report.errors.append(str(err))
        return report, []
    if not scan.records:
        report.errors.append(no_records_message(report.folder, scan, preset.pattern, pattern_key))
        return report, []
    what = "list line(s)" if scan.from_list else "file name(s)"
    if scan.bad_names:
        report.errors.append(f"{len(scan.bad_names)} {what} do not match {pattern_key} = "
                             f"{preset.pattern!r} and are skipped: {_listed(scan.bad_names)}")
    if scan.huge_numbers:
        report.errors.append(f"{len(scan.huge_numbers)} {what} hold an identity or camera number that does "
                             f"not fit in 64 bits and are skipped: {_listed(scan.huge_numbers)}")
    if scan.not_files:
        report.errors.append(f"{len(scan.not_files)} entries named like images are not image files and are "
                             f"skipped: {_listed([f'{name} ({why})' for name, why in scan.not_files])}")
    if scan.no_camera:
        report.errors.append(f"{len(scan.no_camera)} list line(s) have no camera in "
                             f"{preset.config_key('CAMERA_FILE')} and are skipped: {_listed(scan.no_camera)}")
    if scan.junk:
        report.notes.append(f"{scan.junk} junk images (pid -1) dropped")
    if scan.other_files:
        report.notes.append(f"{scan.other_files} non-image file(s) ignored")

    decoded = _decode_all([r.path for r in scan.records], input_size(cfg, is_train=split == "train"),
                          cfg.INPUT.JPEG_DRAFT, workers)
    problems = [problem for problem, _ in decoded]
    sixteen_bit = [os.path.basename(record.path) for record, (_, deep) in zip(scan.records, decoded) if deep]
    if sixteen_bit:
        report.warnings.append(f"{len(sixteen_bit)} image(s) have 16 bits per channel and are read scaled to 8 "
                               f"bits: {_listed(sixteen_bit)}")
    unreadable = [problem for problem in problems if problem]
    if unreadable:
        report.errors.append(f"{len(unreadable)} unreadable image(s): {'; '.join(unreadable[:MAX_LISTED])}"
                             + (f"; and {len(unreadable) - MAX_LISTED} more" if len(unreadable) > MAX_LISTED
                                else ""))
    records = [record for record, problem in zip(scan.records, problems) if not problem]
    report.images = len(records)
    report.ids = len({r.pid for r in records})
    report.cameras = len({r.camid for r in records})
    _compare_counts(report, preset, split)
    if split == "train":
        cameras = defaultdict(set)
        for record in records:
            cameras[record.pid].add(record.camid)
        single = sorted(pid for pid, cams in cameras.items() if len(cams) < 2)
        if single:
            report.warnings.append(f"{len(single)} of {report.ids} identities are seen by one camera only "
                                   f"(ids {_listed(single)})")
    return report, records


def check_datasets(cfg, workers=0):
    """SplitReports of every source's train split and the target's query and gallery."""
    reports = [check_split(cfg, name, "train", workers)[0] for name in cfg.DATASETS.SOURCES]
    query_report, query = check_split(cfg, cfg.DATASETS.TARGET, "query", workers)
    gallery_report, gallery = check_split(cfg, cfg.DATASETS.TARGET, "gallery", workers)
    message = describe_queries_without_match(query, gallery) if query and gallery else None
    if message:
        # With no query left the metrics are undefined: training or testing would fail at evaluation.
        every_query = len(queries_without_match(query, gallery)) == len(query)
        (query_report.errors if every_query else query_report.warnings).append(message)
    return reports + [query_report, gallery_report]


def format_reports(reports):
    """The report as text: one block per split, problems labelled ERROR or warning."""
    lines = []
    for report in reports:
        lines.append(f"{report.title}: {report.folder or '(no folder)'}")
        if report.folder and report.images:
            lines.append(f"  {report.ids:,} ids, {report.images:,} readable images, {report.cameras} cameras")
        lines += [f"  {note}" for note in report.notes]
        lines += [f"  warning: {warning}" for warning in report.warnings]
        lines += [f"  ERROR: {error}" for error in report.errors]
    errors = sum(len(report.errors) for report in reports)
    warnings = sum(len(report.warnings) for report in reports)
    lines.append(f"{errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)


def default_workers(cfg):
    """Decoding processes: DATALOADER.NUM_WORKERS, at most the CPUs there are."""
    return min(cfg.DATALOADER.NUM_WORKERS, os.cpu_count() or 1)
