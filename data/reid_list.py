"""Splits given as list files (VehicleID, VeRi-Wild): one image per line, read by the dataset's PATTERN.

A line such as VeRi-Wild's ``00001/000001`` or VehicleID's ``0000001 12``
is matched whole (leading and trailing blanks removed) by the pattern; its
group ``path`` (the whole line without one) names the image under IMAGE_DIR,
with IMAGE_SUFFIX appended. Cameras come from the group ``camid``, from a
camera file (VeRi-Wild's vehicle_info.txt: ``00001/000001;30;...``) matched
by CAMERA_PATTERN, or, with neither, from the line's position (each image
its own camera). Lines are kept in file order; nothing is decoded here.
"""
import os

from utils.errors import UserError

from .reid_folder import FolderScan, compile_pattern, label


def _lines(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the list file {path}: {err}") from None


def read_camera_file(path, pattern, pattern_key):
    """{path group: camid} of every line of ``path`` that ``pattern`` matches (others, e.g. a header, skipped)."""
    regex = compile_pattern(pattern, pattern_key, required=("path", "camid"))
    cameras = {}
    for line in _lines(path):
        match = regex.fullmatch(line)
        if match is not None:
            cameras[match["path"]] = int(match["camid"])
    if not cameras:
        raise UserError(f"no line of the camera file {path} matches {pattern_key} = {pattern!r}")
    return cameras


def scan_split_list(list_file, regex, image_dir, suffix="", cameras=None, camera_base=0):
    """The images that ``list_file`` names, parsed with the compiled ``regex``; with ``cameras`` (and no camid
    group) a line's camera is looked up there, and a line it lacks is kept aside in ``no_camera``."""
    scan = FolderScan(names=_lines(list_file), from_list=True)
    looked_up = cameras is not None and "camid" not in regex.groupindex
    for position, line in enumerate(scan.names):
        match = regex.fullmatch(line)
        if match is None:
            scan.bad_names.append(line)
            continue
        relative = match["path"] if "path" in regex.groupindex else line
        pid, camid = label(match, position, camera_base)
        if looked_up:
            if relative not in cameras:
                scan.no_camera.append(line)
                continue
            camid = cameras[relative]
        scan.add(line, os.path.join(image_dir, relative + suffix), pid, camid)
    return scan
