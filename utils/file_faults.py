"""Filesystem faults as one line that names the path and the cause.

A folder that is a file, a path under a file, no write permission, a full
disk: Python raises FileExistsError, NotADirectoryError, PermissionError or
OSError(ENOSPC), and torch.save wraps the latter in a RuntimeError
("unexpected pos") that never mentions space. These helpers turn them into
UserErrors that the entry points print without a traceback.
"""
import contextlib
import errno
import os
import shutil
import tempfile

from .errors import UserError


def _os_error_in(err):
    """The OSError behind ``err`` (itself, or what it was raised from or during), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def free_bytes(path):
    """Free bytes on the device that holds ``path`` (or its nearest existing parent), or None."""
    try:
        return shutil.disk_usage(_existing_ancestor(path)).free
    except OSError:
        return None


def describe_os_error(err, path):
    """The cause of a failed write at ``path``, in words; None when ``err`` holds no OSError."""
    os_error = _os_error_in(err)
    if os_error is None:
        return None
    code = os_error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = free_bytes(path)
        left = f"{free:,} bytes free" if free is not None else "free space unknown"
        what = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
        return f"{what} ({left})"
    if code in (errno.EACCES, errno.EPERM):
        return "not writable (permission denied)"
    if code == errno.EROFS:
        return "not writable (read-only file system)"
    if code == errno.ENOTDIR:
        return f"{_existing_ancestor(path)} is a file, not a folder"
    if code == errno.EISDIR:
        return "it is a folder, not a file"
    return (os_error.strerror or str(os_error)).lower()


def make_folder(path, what):
    """Create the folder ``path`` (``what`` names it, e.g. "OUTPUT_DIR") and check that files can be written in it."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UserError(f"{what} {path} is a file, not a folder")
    ancestor = _existing_ancestor(path)
    if not os.path.isdir(ancestor):
        raise UserError(f"{what} {path} cannot be created: {ancestor} is a file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"{what} {path} cannot be written to: {describe_os_error(err, path)}") from None


@contextlib.contextmanager
def reported_write_faults(path):
    """Inside the block, a filesystem fault while writing ``path`` becomes a UserError naming it and the cause."""
    try:
        yield
    except UserError:
        raise
    except (OSError, RuntimeError) as err:
        cause = describe_os_error(err, path)
        if cause is None:
            raise
        raise UserError(f"cannot write {path}: {cause}") from None
