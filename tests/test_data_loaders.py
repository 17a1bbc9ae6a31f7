"""make_data_loaders on small generated trees, and ImageDataset's bad-image policy."""
import logging
import os
import sys
import types

import pytest
import torch
from PIL import Image

from config import get_default_cfg
from data import make_data_loaders
from data.image_dataset import ImageDataset
from data.reid_folder import ImageRecord
from data.transforms import build_transforms
from utils.errors import UserError

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def write_jpeg(folder, name, colour, size=(40, 30)):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    Image.new("RGB", size, colour).save(path, quality=95)
    return path


def write_tree(root):
    """veri: 6 train ids x 4 images; vehiclex: 4 ids x 4; veri query 2 / gallery 4."""
    for pid in range(1, 7):
        for n in range(4):
            write_jpeg(root / "veri" / "image_train", f"{pid:04d}_c{n + 1:03d}_{n:08d}_0.jpg", COLOURS[pid - 1])
    for pid in range(1, 5):
        for n in range(4):
            write_jpeg(root / "vehiclex" / "image_train", f"{pid:04d}_c{n + 6:03d}_{n}.jpg", COLOURS[pid])
    for pid in (7, 8):
        write_jpeg(root / "veri" / "image_query", f"{pid:04d}_c001_00000001_0.jpg", COLOURS[pid - 7])
        for cam in (2, 3):
            write_jpeg(root / "veri" / "image_test", f"{pid:04d}_c{cam:03d}_00000002_0.jpg", COLOURS[pid - 7])


def make_cfg(root, sources=("veri",), **extra):
    cfg = get_default_cfg()
    cfg.merge_from_list([
        "DATASETS.ROOT_DIR", str(root), "DATASETS.SOURCES", list(sources), "DATASETS.TARGET", "veri",
        "DATASETS.CHECK_COUNTS", False, "INPUT.SIZE_TRAIN", [32, 32], "INPUT.SIZE_TEST", [32, 32],
        "SOLVER.IMS_PER_BATCH", 8, "DATALOADER.NUM_INSTANCE", 2, "DATALOADER.NUM_WORKERS", 0,
        "TEST.IMS_PER_BATCH", 4, "MODEL.DEVICE", "cpu",
    ])
    for key, value in extra.items():
        cfg.merge_from_list([key, value])
    return cfg


def test_bundle_of_two_sources(tmp_path):
    write_tree(tmp_path)
    bundle = make_data_loaders(make_cfg(tmp_path, sources=("veri", "vehiclex")))
    assert (bundle.num_classes, bundle.num_domains, bundle.num_query) == (10, 2, 2)
    assert len(bundle.train_records) == 40 and len(bundle.gallery_records) == 4
    # 40 images in chunks of 2 = 20 chunks; 4 ids per batch -> 5 batches
    assert len(bundle.train_loader) == 5
    for batch in bundle.train_loader:
        assert batch["images"].shape == (8, 3, 32, 32) and batch["images"].dtype == torch.float32
        assert set(batch["domains"].tolist()) == {0, 1}
        assert len(batch["paths"]) == 8
        for pid, domain in zip(batch["pids"].tolist(), batch["domains"].tolist()):
            assert domain == (0 if pid < 6 else 1)
    test_batches = list(bundle.test_loader)
    assert [len(b["paths"]) for b in test_batches] == [4, 2]
    paths = [p for b in test_batches for p in b["paths"]]
    assert [os.path.basename(os.path.dirname(p)) for p in paths] == ["image_query"] * 2 + ["image_test"] * 4
    assert test_batches[0]["pids"].tolist() == [7, 8, 7, 7]
    assert test_batches[0]["camids"].tolist() == [1, 1, 2, 3]


def test_worker_loading_repeats_per_epoch(tmp_path):
    write_tree(tmp_path)
    cfg = make_cfg(tmp_path, **{"DATALOADER.NUM_WORKERS": 2})

    def epoch_images(bundle, epoch):
        bundle.train_sampler.set_epoch(epoch)
        return torch.cat([b["images"] for b in bundle.train_loader])

    first, second = make_data_loaders(cfg), make_data_loaders(cfg)
    epoch1 = epoch_images(first, 1)
    assert torch.equal(epoch1, epoch_images(second, 1))
    assert not torch.equal(epoch1, epoch_images(second, 2))


def test_missing_dataset_names_root_key(tmp_path):
    with pytest.raises(UserError, match="DATASETS.ROOT_DIR"):
        make_data_loaders(make_cfg(tmp_path / "nowhere"))


def test_generate_demo_hands_the_config_to_the_demo_generator(tmp_path, monkeypatch):
    calls = []

    def fake_ensure_demo_data(cfg):
        calls.append(cfg.DATASETS.ROOT_DIR)
        write_tree(tmp_path)

    monkeypatch.setitem(sys.modules, "data.demo",
                        types.SimpleNamespace(ensure_demo_data=fake_ensure_demo_data))
    bundle = make_data_loaders(make_cfg(tmp_path, **{"DATASETS.GENERATE_DEMO": True}))
    assert calls == [str(tmp_path)] and bundle.num_classes == 6
    make_data_loaders(make_cfg(tmp_path))
    assert len(calls) == 1


def bad_image_records(tmp_path, broken_count):
    """pid 0 with 3 images, the first ``broken_count`` of them truncated; pid 1 fine."""
    records = []
    for n, colour in enumerate([(250, 0, 0), (0, 250, 0), (0, 0, 250)]):
        path = write_jpeg(tmp_path, f"0000_c001_{n}_0.jpg", colour, size=(64, 64))
        if n < broken_count:
            data = open(path, "rb").read()
            open(path, "wb").write(data[:len(data) // 2])
        records.append(ImageRecord(path, 0, 1, 0, 0))
    records.append(ImageRecord(write_jpeg(tmp_path, "0001_c001_0_0.jpg", (9, 9, 9)), 1, 1, 0, 0))
    return records


def plain_dataset(records, is_train, strict=False):
    cfg = get_default_cfg()
    cfg.INPUT.SIZE_TEST = [16, 16]
    return ImageDataset(records, build_transforms(cfg, is_train=False), target_size=(16, 16),
                        is_train=is_train, strict=strict)


def test_bad_train_image_is_replaced_by_the_same_identity(tmp_path, caplog):
    dataset = plain_dataset(bad_image_records(tmp_path, broken_count=2), is_train=True)
    with caplog.at_level(logging.WARNING, logger="jifd.data"):
        first = dataset[0]
        again = dataset[0]
        second = dataset[1]
    # both broken images fall back to the blue third image of pid 0
    assert first["pids"] == 0 and first["paths"].endswith("0000_c001_2_0.jpg")
    blue = build_transforms(get_default_cfg(), is_train=False).transforms[-1](
        torch.tensor([0.0, 0.0, 250 / 255]).view(3, 1, 1).expand(3, 16, 16))
    for sample in (first, again, second):
        assert torch.allclose(sample["images"], blue, atol=0.05)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and "0000_c001_0_0.jpg" in warned[0] and "0000_c001_1_0.jpg" in warned[1]


def test_identity_with_only_bad_images_is_an_error(tmp_path):
    dataset = plain_dataset(bad_image_records(tmp_path, broken_count=3), is_train=True)
    with pytest.raises(UserError, match="every image of identity 0"):
        dataset[2]
    assert dataset[3]["pids"] == 1


def test_bad_image_is_an_error_when_strict(tmp_path):
    records = bad_image_records(tmp_path, broken_count=1)
    with pytest.raises(UserError, match=r"0000_c001_0_0\.jpg.*STRICT"):
        plain_dataset(records, is_train=True, strict=True)[0]
    with pytest.raises(UserError, match=r"0000_c001_0_0\.jpg.*test sets must be complete"):
        plain_dataset(records, is_train=False, strict=True)[0]


def test_bad_test_image_becomes_blank_when_not_strict(tmp_path, caplog):
    dataset = plain_dataset(bad_image_records(tmp_path, broken_count=1), is_train=False)
    with caplog.at_level(logging.WARNING, logger="jifd.data"):
        sample = dataset[0]
    black = build_transforms(get_default_cfg(), is_train=False).transforms[-1](torch.zeros(3, 16, 16))
    assert torch.allclose(sample["images"], black)
    assert "0000_c001_0_0.jpg" in caplog.text and "blank" in caplog.text


def test_error_in_a_worker_reaches_the_user_as_one_line(tmp_path):
    write_tree(tmp_path)
    broken = tmp_path / "veri" / "image_query" / "0007_c001_00000001_0.jpg"
    broken.write_bytes(broken.read_bytes()[:100])
    cfg = make_cfg(tmp_path, **{"DATALOADER.NUM_WORKERS": 1, "DATASETS.STRICT": True})
    with pytest.raises(UserError) as caught:
        list(make_data_loaders(cfg).test_loader)
    message = str(caught.value)
    assert message.startswith(f"unreadable image {broken}: ") and "\n" not in message
    assert message.endswith("; test sets must be complete (DATASETS.STRICT is on)")
