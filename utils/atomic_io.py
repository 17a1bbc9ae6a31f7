"""Writes that a kill at any moment cannot leave half-done."""
import os
import tempfile

import torch


def _replace_atomically(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp_", dir=directory)
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
