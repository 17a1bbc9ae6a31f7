"""Writes that a kill at any moment cannot leave half-done.

A filesystem fault (no space left, no permission) is a UserError naming the
file and the cause; the previous file, if any, stays as it was.
"""
import os
import secrets

import torch

from .file_faults import reported_write_faults

# Prefix of the temporary file beside the target: what a kill during a write leaves behind.
TEMP_PREFIX = ".tmp_"
# Read-write for everyone the umask allows (0644 under the usual 022), like any file open() creates,
# so that collaborators on shared storage can read results; tempfile.mkstemp would give 0600.
_FILE_MODE = 0o666


def _replace_atomically(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    with reported_write_faults(path):
        os.makedirs(directory, exist_ok=True)
        tmp_path = os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}_{secrets.token_hex(6)}")
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_path, path)
        except BaseException:
            if os.path.exists(tmp_path):
                os.remove(tmp_path)
            raise


def atomic_write_text(path, text):
    _replace_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_torch_save(obj, path):
    _replace_atomically(path, lambda handle: torch.save(obj, handle))
