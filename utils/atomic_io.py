"""Writes that a kill at any moment cannot leave half-done.

A filesystem fault (no space left, no permission) is a UserError naming the
file and the cause; the previous file, if any, stays as it was.
"""
import os
import tempfile

import torch

from .file_faults import reported_write_faults

# Prefix of the temporary file beside the target: what a kill during a write leaves behind.
TEMP_PREFIX = ".tmp_"


def _replace_atomically(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    with reported_write_faults(path):
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
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
