"""One generic reader for re-ID split folders (VeRi, VehicleX, Opri, Market-1501, ...).

Every dataset is a flat folder of images whose base names carry the identity
and the camera, e.g. VeRi's ``0002_c002_00030600_0.jpg``, or a list file
naming them (data/reid_list.py). A per-dataset regex with the named groups
``pid`` and ``camid`` (config key DATASETS.<NAME>.PATTERN) reads them, so a
copy named differently needs a new pattern, not new code. A pattern without
``camid`` is for datasets without cameras (VehicleID): every image is then
its own camera, so evaluation drops no gallery image as same-camera.
"""
import logging
import os
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from config import ConfigError
from utils.errors import UserError

logger = logging.getLogger("jifd.data")

# Only these are images; anything else in a split folder (a list file, an
# archive left by unpacking) is not data and is skipped without a warning.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Identity used by re-ID datasets for distractor images that belong to no one.
JUNK_PID = -1
# Bad file names are warned one by one up to this many, then summarised,
# so that a wrong pattern does not flood the log with thousands of lines.
MAX_NAME_WARNINGS = 5
# Without a camid group, an image's camera is its position in its split, and the gallery's count from here,
# so that no query and gallery image share a camera.
GALLERY_CAMERA_BASE = 1 << 30
# Identities and cameras become int64 tensors when a batch is collated.
_LARGEST_NUMBER = 2 ** 63 - 1
# Identity and camera of an image whose file name does not follow the dataset's pattern (folder_records).
UNKNOWN_LABEL = -1


class ImageRecord(NamedTuple):
    """One image: where it is and what it shows.

    ``source`` is the index of its dataset in DATASETS.SOURCES (-1 for test
    images) and ``domain`` the domain label of the image-level module.
    """

    path: str
    pid: int
    camid: int
    source: int = 0
    domain: int = 0


def compile_pattern(pattern, pattern_key, required=("pid",)):
    """The file-name regex, checked for the ``required`` named groups.

    Compiled ASCII-only: \\d must not read full-width or other Unicode digits as ids.
    """
    try:
        regex = re.compile(pattern, re.ASCII)
    except re.error as err:
        raise ConfigError(f"{pattern_key} = {pattern!r} is not a valid regular expression ({err})") from None
    missing = set(required) - set(regex.groupindex)
    if missing:
        raise ConfigError(
            f"{pattern_key} = {pattern!r} lacks the named group(s) {', '.join(sorted(missing))}; "
            f"write them as {' and '.join(f'(?P<{group}>...)' for group in sorted(missing))}")
    return regex


def label(match, position, camera_base=0):
    """(pid, camid) of a pattern match; without a camid group the camera is the image's position."""
    camid = int(match["camid"]) if "camid" in match.re.groupindex else camera_base + position
    return int(match["pid"]), camid


@dataclass
class FolderScan:
    """What a split folder (or list file) holds, by file name alone (nothing is decoded)."""

    records: list = field(default_factory=list)
    names: list = field(default_factory=list)
    bad_names: list = field(default_factory=list)
    # Names whose identity or camera number does not fit in int64.
    huge_numbers: list = field(default_factory=list)
    # (name, why) of the entries named like images that are not files: broken links, folders.
    not_files: list = field(default_factory=list)
    junk: int = 0
    other_files: int = 0
    # A list file's scan: names and bad_names are its lines.
    from_list: bool = False
    # Lines of a list file that CAMERA_FILE gives no camera for.
    no_camera: list = field(default_factory=list)

    def add(self, name, path, pid, camid):
        """Keep the record of the file (or line) ``name``, or count it as junk or as too large a number."""
        if max(abs(pid), abs(camid)) > _LARGEST_NUMBER:
            self.huge_numbers.append(name)
        elif pid == JUNK_PID:
            self.junk += 1
        else:
            self.records.append(ImageRecord(path, pid, camid))


def _not_a_file(entry):
    if entry.is_symlink() and not os.path.exists(entry.path):
        return "a broken symbolic link"
    return "a folder" if entry.is_dir() else "not a regular file"


def scan_split_folder(folder, regex, camera_base=0):
    """Images of ``folder`` sorted by name, parsed with the compiled file-name ``regex``."""
    with os.scandir(folder) as entries:
        entries = [entry for entry in entries if not entry.name.startswith(".")]
    files = [entry.name for entry in entries if entry.is_file()]
    scan = FolderScan(names=sorted(name for name in files if name.lower().endswith(IMAGE_EXTENSIONS)))
    scan.other_files = len(files) - len(scan.names)
    scan.not_files = sorted((entry.name, _not_a_file(entry)) for entry in entries
                            if not entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS))
    for position, name in enumerate(scan.names):
        match = regex.fullmatch(name)
        if match is None:
            scan.bad_names.append(name)
            continue
        scan.add(name, os.path.join(folder, name), *label(match, position, camera_base))
    return scan


def read_split_folder(folder, pattern, *, folder_key, pattern_key, strict=False):
    """Records (source 0, domain 0) of every image in ``folder``, sorted by path.

    ``folder_key`` and ``pattern_key`` are the config keys named in messages.
    Junk images (pid -1) are dropped. A base name that the pattern does not
    match is warned and skipped, or an error when ``strict``.
    """
    if not os.path.isdir(folder):
        raise UserError(f"image folder not found: {folder} (set {folder_key})")
    scan = scan_split_folder(folder, compile_pattern(pattern, pattern_key))
    return checked_records(scan, folder, pattern, pattern_key, strict)


def _item(scan, where, name):
    return f"line {name!r} of {where}" if scan.from_list else os.path.join(where, name)


def skipped_entries(scan, pattern, pattern_key):
    """(name, reason) of every entry (or line) of ``scan`` named like an image that gives no record (junk and
    lines without a camera aside)."""
    what = "line" if scan.from_list else "file name"
    return ([(name, f"{what} does not match {pattern_key} = {pattern!r}") for name in scan.bad_names]
            + [(name, f"its identity or camera number does not fit in 64 bits ({pattern_key})")
               for name in scan.huge_numbers]
            + scan.not_files)


def checked_records(scan, where, pattern, pattern_key, strict=False):
    """The records of the scan of a folder or a list file ``where``; the entries (or lines) that give no record
    are warned and skipped, or an error when ``strict``."""
    skipped = skipped_entries(scan, pattern, pattern_key)
    if strict and skipped:
        name, reason = skipped[0]
        raise UserError(f"{_item(scan, where, name)}: {reason} (DATASETS.STRICT is on)")
    for name, reason in skipped[:MAX_NAME_WARNINGS]:
        logger.warning("skipped %s: %s", _item(scan, where, name), reason)
    if len(skipped) > MAX_NAME_WARNINGS:
        logger.warning("skipped %d more %s in %s, for the reasons above (%s, or not image files)",
                       len(skipped) - MAX_NAME_WARNINGS, "lines" if scan.from_list else "files", where, pattern_key)
    if scan.no_camera:
        if strict:
            raise UserError(f"{_item(scan, where, scan.no_camera[0])}: the camera file gives it no camera "
                            "(DATASETS.STRICT is on)")
        logger.warning("skipped %d line(s) of %s that the camera file gives no camera, e.g. %r",
                       len(scan.no_camera), where, scan.no_camera[0])
    if scan.junk:
        logger.info("dropped %d junk images (pid %d) in %s", scan.junk, JUNK_PID, where)
    if not scan.records:
        raise UserError(no_records_message(where, scan, pattern, pattern_key))
    return scan.records


def no_records_message(where, scan, pattern, pattern_key):
    """Why a split folder or list file gave no usable image."""
    if scan.from_list:
        if not scan.names:
            return f"{where} lists no image"
        if scan.bad_names:
            return (f"none of the {len(scan.names)} lines of {where} matches {pattern_key} = {pattern!r} "
                    f"(e.g. {scan.bad_names[0]!r})")
        if scan.no_camera:
            return f"the camera file gives no line of {where} a camera (e.g. {scan.no_camera[0]!r})"
    elif not scan.names:
        others = f" (only {scan.other_files} non-image file(s))" if scan.other_files else ""
        return f"no .jpg/.jpeg/.png images in {where}{others}; expected names matching {pattern_key} = {pattern!r}"
    elif scan.bad_names:
        return (f"none of the {len(scan.names)} images in {where} matches {pattern_key} = {pattern!r} "
                f"(e.g. {scan.bad_names[0]})")
    return f"every image in {where} is junk (pid {JUNK_PID}); nothing to use ({pattern_key} = {pattern!r})"


def folder_records(folder, pattern, pattern_key):
    """Every image directly in ``folder``, sorted by name, labelled by ``pattern`` where it matches.

    Unlike a dataset split, nothing is dropped: names the pattern does not
    read, and junk images, keep their place with pid/camid -1 (UNKNOWN_LABEL)
    or the junk pid, so that the features cover the whole folder.
    """
    if not os.path.isdir(folder):
        raise UserError(f"--folder {folder}: no such directory")
    regex = compile_pattern(pattern, pattern_key)
    names = sorted(entry.name for entry in os.scandir(folder)
                   if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise UserError(f"--folder {folder}: no .jpg/.jpeg/.png images in it")
    records = []
    for position, name in enumerate(names):
        match = regex.fullmatch(name)
        pid, camid = label(match, position) if match else (UNKNOWN_LABEL, UNKNOWN_LABEL)
        records.append(ImageRecord(os.path.join(folder, name), pid, camid, source=-1, domain=-1))
    unlabelled = sum(r.pid == UNKNOWN_LABEL and r.camid == UNKNOWN_LABEL for r in records)
    if unlabelled:
        logger.info("%d of %d images in %s do not match %s; their pid and camid are %d",
                    unlabelled, len(records), folder, pattern_key, UNKNOWN_LABEL)
    return records
