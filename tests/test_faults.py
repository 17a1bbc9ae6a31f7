"""Faults that used to end in a traceback or a silent success: each is now one line and an exit code,
or an honest report. The tools run in this process (tool_runs.run_tool_in_process) on tiny trees.
"""
import errno
import io
import json
import os
import re
import resource
import signal

import numpy as np
import pytest
import torch
from PIL import Image

import utils.atomic_io as atomic_io
from conftest import small_run_cfg
from data.dataset_check import check_datasets
from data.image_loading import read_image
from engine.trainer import do_train
from modeling import build_model
from tiny_datasets import add_jpeg, make_tree
from tool_runs import assert_user_error, one_thread, run_tool_in_process, write_config
from utils.errors import UserError
from utils.file_faults import free_bytes


def _config(tmp, name, root, *overrides):
    cfg = small_run_cfg(root, os.path.join(tmp, name), "SOLVER.IMS_PER_BATCH", 16, "SOLVER.MAX_EPOCHS", 1,
                        "SOLVER.ITERS_PER_EPOCH", 1, "SOLVER.WARMUP_EPOCHS", 0, "SOLVER.LOG_PERIOD", 1, *overrides)
    return cfg, write_config(cfg, os.path.join(tmp, f"{name}.yml"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """(tmp folder, data root, config file, weights file of the configured model)."""
    tmp = str(tmp_path_factory.mktemp("faults"))
    root = make_tree(os.path.join(tmp, "data"))
    cfg, config = _config(tmp, "run", root)
    torch.manual_seed(0)
    weights = os.path.join(tmp, "model.pth")
    torch.save(build_model(cfg, num_classes=4).state_dict(), weights)
    return tmp, root, config, weights


def _unwritable_folder(tmp_path):
    """An existing folder this process cannot write in (root ignores permission bits, not /sys's)."""
    if os.geteuid() == 0:
        return "/sys/fs"
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


def test_output_folders_that_cannot_be_written_are_named_with_the_cause(tree, tmp_path):
    tmp, _, config, weights = tree
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    unwritable = _unwritable_folder(tmp_path)
    cases = [
        (("train.py", "--config_file", config, "OUTPUT_DIR", a_file),
         f"error: OUTPUT_DIR {a_file} is a file, not a folder"),
        (("train.py", "--config_file", config, "OUTPUT_DIR", a_file / "run"),
         f"error: OUTPUT_DIR {a_file / 'run'} cannot be created: {a_file} is a file, not a folder"),
        (("test.py", "--config_file", config, "TEST.WEIGHT", weights, "OUTPUT_DIR", unwritable),
         f"error: OUTPUT_DIR {unwritable} cannot be written to: not writable (permission denied)"),
        (("extract_features.py", "--config_file", config, "TEST.WEIGHT", weights, "--split", "query",
          "--out", a_file / "query.npz"),
         f"error: the folder of --out {a_file} is a file, not a folder"),
        (("extract_features.py", "--config_file", config, "TEST.WEIGHT", weights, "--split", "query",
          "--out", tmp_path), f"error: --out {tmp_path} is a folder: give the path of the file to write"),
        (("visualize_ranks.py", "--config_file", config, "TEST.WEIGHT", weights, "--out", a_file),
         f"error: --out {a_file} is a file, not a folder"),
    ]
    for args, message in cases:
        assert assert_user_error(run_tool_in_process(*args)) == message
    assert a_file.read_text() == "not a folder"


class _DiskFullAfter(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, handle, room):
        self.handle, self.room = handle, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def fileno(self):
        return self.handle.fileno()

    def close(self):
        self.handle.close()
        super().close()


def test_a_full_disk_is_named_with_the_free_bytes_and_the_old_file_is_kept(tmp_path, monkeypatch):
    path = tmp_path / "model_final.pth"
    atomic_io.atomic_torch_save({"w": torch.zeros(4)}, str(path))
    before = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic_io.os, "fdopen", lambda fd, mode: _DiskFullAfter(real_fdopen(fd, mode), 1000))
    with pytest.raises(UserError) as raised:
        atomic_io.atomic_torch_save({"w": torch.zeros(100_000)}, str(path))
    message = str(raised.value)
    match = re.fullmatch(rf"cannot write {re.escape(str(path))}: no space left on device \(([\d,]+) bytes free\)",
                         message)
    assert match, message
    assert abs(int(match[1].replace(",", "")) - free_bytes(str(tmp_path))) < 1 << 30
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model_final.pth"]


@pytest.mark.slow
def test_a_write_fault_during_a_checkpoint_names_the_file_and_leaves_no_temporary_file(tree, tmp_path):
    # A real failing write through torch.save and ignite's saver: a file-size limit makes the kernel
    # refuse the checkpoint's bytes (EFBIG) as a full disk refuses them (ENOSPC).
    _, root, _, _ = tree
    cfg, _ = _config(str(tmp_path), "run", root, "SOLVER.CHECKPOINT_PERIOD", 1, "SOLVER.EVAL_PERIOD", 0)
    cfg.freeze()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, limits[1]))
    try:
        with one_thread(), pytest.raises(UserError) as raised:
            do_train(cfg)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    out = str(tmp_path / "run")
    assert str(raised.value) == f"cannot write {os.path.join(out, 'checkpoint_1.pt')}: file too large"
    assert not [name for name in os.listdir(out) if name.startswith(("tmp", ".tmp_", "checkpoint", "model_final"))]


def test_a_gallery_that_is_all_unreadable_gives_no_metrics(tree, tmp_path):
    tmp, root, _, weights = tree
    broken = make_tree(str(tmp_path / "data"))
    gallery = os.path.join(broken, "opri", "image_test")
    for name in os.listdir(gallery):
        with open(os.path.join(gallery, name), "wb") as handle:
            handle.write(b"gone")
    _, config = _config(str(tmp_path), "test", broken)
    out = tmp_path / "test_out"
    assert_user_error(run_tool_in_process("test.py", "--config_file", config, "TEST.WEIGHT", weights,
                                          "OUTPUT_DIR", out),
                      f"error: 4 of 4 gallery images in {gallery} are unreadable (100.0%, above TEST.MAX_UNREADABLE "
                      "= 0.01): metrics over blank stand-ins would mislead, so none were written")
    assert not (out / "metrics.json").exists() and not (out / "cmc.png").exists()


def test_weights_that_would_load_as_other_numbers_are_refused_naming_the_file(tree, tmp_path):
    _, _, config, weights = tree
    state = torch.load(weights, weights_only=True)
    as_integers = dict(state, **{"base.conv1.weight": (state["base.conv1.weight"] * 100).long()})
    torch.save(as_integers, tmp_path / "integers.pth")
    diverged = dict(state)
    diverged["bottleneck.weight"] = state["bottleneck.weight"].clone()
    diverged["bottleneck.weight"][3] = float("nan")
    torch.save(diverged, tmp_path / "nan.pth")
    assert_user_error(run_tool_in_process("test.py", "--config_file", config, "TEST.WEIGHT",
                                          tmp_path / "integers.pth"),
                      f"TEST.WEIGHT = '{tmp_path / 'integers.pth'}': base.conv1.weight holds int64 values where the "
                      "model has float32; loading would cast them")
    assert_user_error(run_tool_in_process("test.py", "--config_file", config, "TEST.WEIGHT", tmp_path / "nan.pth"),
                      f"TEST.WEIGHT = '{tmp_path / 'nan.pth'}' holds NaN or infinite values in bottleneck.weight: "
                      "the run that wrote it had diverged")


def _png16(path, grey):
    """A 16-bit greyscale PNG filled with ``grey`` (0..65535)."""
    Image.fromarray(np.full((40, 32), grey, dtype=np.uint16)).save(path)


def test_16_bit_images_decode_to_their_grey_and_check_dataset_reports_them(tree, tmp_path):
    _, root, _, _ = tree
    path = tmp_path / "grey.png"
    _png16(path, 0x8080)
    assert np.asarray(read_image(str(path))).tolist()[0][0] == [128, 128, 128]
    data = make_tree(str(tmp_path / "data"))
    _png16(os.path.join(data, "opri", "image_test", "0002_c002_00000000_7.png"), 20000)
    cfg = small_run_cfg(data, tmp_path / "out",
                        "DATASETS.OPRI.PATTERN", r"^(?P<pid>\d+)_c(?P<camid>\d+)_\d+_\d+\.(jpg|png)$")
    gallery = [report for report in check_datasets(cfg) if report.title == "Opri gallery"][0]
    assert not gallery.errors and gallery.images == 5
    assert ("1 image(s) have 16 bits per channel and are read scaled to 8 bits: 0002_c002_00000000_7.png"
            in gallery.warnings)


@pytest.mark.slow
def test_names_that_are_not_utf8_not_ascii_digits_too_large_or_not_files_are_reported(tree, tmp_path):
    data = make_tree(str(tmp_path / "data"))
    train = os.path.join(data, "veri", "image_train")
    not_utf8 = os.fsdecode(b"0001_c001_00000000_\xff.jpg")
    add_jpeg(os.path.join(train, not_utf8), 1)
    add_jpeg(os.path.join(train, "\uff10\uff10\uff10\uff11_c001_00000000_8.jpg"), 2)  # full-width 0001
    add_jpeg(os.path.join(train, "99999999999999999999_c001_00000000_0.jpg"), 3)
    os.symlink(os.path.join(train, "nowhere.jpg"), os.path.join(train, "0003_c001_00000000_9.jpg"))
    os.mkdir(os.path.join(train, "0004_c002_00000000_9.jpg"))
    cfg, config = _config(str(tmp_path), "run", data, "DATASETS.CHECK_COUNTS", False)

    code, out, err = run_tool_in_process("check_dataset.py", "--config_file", config, "--workers", 0)
    assert code == 1 and "Traceback" not in out + err, err[-3000:]
    assert "2 file name(s) do not match DATASETS.VERI.PATTERN" in out
    assert "0001_c001_00000000_\\xff.jpg" in out and "\uff10\uff10\uff10\uff11_c001_00000000_8.jpg" in out
    assert ("1 file name(s) hold an identity or camera number that does not fit in 64 bits and are skipped: "
            "99999999999999999999_c001_00000000_0.jpg") in out
    assert ("2 entries named like images are not image files and are skipped: 0003_c001_00000000_9.jpg (a broken "
            "symbolic link), 0004_c002_00000000_9.jpg (a folder)") in out
    assert "VeRi-776 train" in out and "4 ids, 16 readable images" in out

    code, out, err = run_tool_in_process("train.py", "--config_file", config)
    assert code == 0 and "Traceback" not in out + err and "Logging error" not in err, err[-3000:]
    with open(os.path.join(str(tmp_path), "run", "log.txt"), encoding="utf-8") as handle:
        log = handle.read()
    for name, reason in ((r"0001_c001_00000000_\xff.jpg", "file name does not match"),
                         ("\uff10\uff10\uff10\uff11_c001_00000000_8.jpg", "file name does not match"),
                         ("99999999999999999999_c001_00000000_0.jpg", "its identity or camera number does not fit"),
                         ("0003_c001_00000000_9.jpg", "a broken symbolic link"),
                         ("0004_c002_00000000_9.jpg", "a folder")):
        assert f"skipped {os.path.join(train, name)}: {reason}" in log, name
    with open(os.path.join(str(tmp_path), "run", "metrics.json")) as handle:
        assert json.load(handle)["num_gallery"] == 4
