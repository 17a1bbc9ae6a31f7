"""File-name parsing, dataset presets and the merging of training sources."""
import logging
import os

import pytest

from config import ConfigError, get_default_cfg
from data.dataset_presets import load_split, load_test_set, load_train_set, log_statistics, merge_sources
from data.reid_folder import ImageRecord, read_split_folder
from utils.errors import UserError

VERI_PATTERN = get_default_cfg().DATASETS.VERI.PATTERN
VEHICLEX_PATTERN = get_default_cfg().DATASETS.VEHICLEX.PATTERN


def touch(folder, *names):
    """Parsing only reads names, so empty files stand in for images."""
    os.makedirs(folder, exist_ok=True)
    for name in names:
        open(os.path.join(folder, name), "wb").close()
    return str(folder)


def read(folder, pattern=VERI_PATTERN, strict=False):
    return read_split_folder(folder, pattern, folder_key="DATASETS.VERI.TRAIN_DIR",
                             pattern_key="DATASETS.VERI.PATTERN", strict=strict)


def test_veri_names_give_pid_and_camid(tmp_path):
    folder = touch(tmp_path / "image_train", "0002_c002_00030600_0.jpg", "0776_c020_00084200_1.jpg")
    records = read(folder)
    assert [(r.pid, r.camid) for r in records] == [(2, 2), (776, 20)]
    assert records[0].path == os.path.join(folder, "0002_c002_00030600_0.jpg")


def test_vehiclex_names_give_pid_and_camid(tmp_path):
    folder = touch(tmp_path / "image_train", "0001_c001_33.jpg", "1362_c036_7.jpg")
    records = read(folder, VEHICLEX_PATTERN)
    assert [(r.pid, r.camid) for r in records] == [(1, 1), (1362, 36)]


def test_records_are_sorted_by_path(tmp_path):
    folder = touch(tmp_path / "s", "0010_c001_1_0.jpg", "0003_c002_1_0.jpg", "0007_c001_1_0.jpg")
    assert [r.pid for r in read(folder)] == [3, 7, 10]


def test_junk_pid_is_dropped(tmp_path):
    folder = touch(tmp_path / "s", "-1_c001_00000001_0.jpg", "0005_c003_00000002_0.jpg")
    assert [(r.pid, r.camid) for r in read(folder)] == [(5, 3)]


def test_digits_in_folder_names_do_not_confuse_parsing(tmp_path):
    folder = touch(tmp_path / "0999_c099_12_3" / "run_0042_c007" / "image_train", "0012_c004_00001000_2.jpg")
    records = read(folder)
    assert [(r.pid, r.camid) for r in records] == [(12, 4)]


def test_bad_name_is_warned_and_skipped(tmp_path, caplog):
    folder = touch(tmp_path / "s", "0002_c002_00030600_0.jpg", "car_photo.jpg")
    with caplog.at_level(logging.WARNING, logger="jifd.data"):
        records = read(folder)
    assert len(records) == 1
    assert "car_photo.jpg" in caplog.text and "DATASETS.VERI.PATTERN" in caplog.text


def test_bad_name_is_an_error_when_strict(tmp_path):
    folder = touch(tmp_path / "s", "0002_c002_00030600_0.jpg", "car_photo.jpg")
    with pytest.raises(UserError, match=r"car_photo\.jpg.*DATASETS\.VERI\.PATTERN"):
        read(folder, strict=True)


def test_non_image_files_and_dotfiles_are_ignored(tmp_path, caplog):
    folder = touch(tmp_path / "s", "0002_c002_00030600_0.jpg", "list.txt", ".DS_Store")
    with caplog.at_level(logging.WARNING, logger="jifd.data"):
        assert len(read(folder)) == 1
    assert caplog.text == ""


def test_many_bad_names_are_summarised(tmp_path, caplog):
    folder = touch(tmp_path / "s", "0002_c002_00030600_0.jpg", *[f"bad{i}.jpg" for i in range(12)])
    with caplog.at_level(logging.WARNING, logger="jifd.data"):
        read(folder)
    assert len(caplog.records) == 6
    assert "7 more files" in caplog.records[-1].getMessage()


def test_folder_without_matching_images_names_folder_and_pattern_key(tmp_path):
    folder = touch(tmp_path / "image_train", "IMG_0001.jpg")
    with pytest.raises(UserError, match=r"image_train.*DATASETS\.VERI\.PATTERN"):
        read(folder)
    empty = touch(tmp_path / "empty")
    with pytest.raises(UserError, match=r"empty.*DATASETS\.VERI\.PATTERN"):
        read(empty)


def test_pattern_without_named_groups_is_a_config_error(tmp_path):
    folder = touch(tmp_path / "s", "0002_c002_00030600_0.jpg")
    with pytest.raises(ConfigError, match=r"DATASETS\.VERI\.PATTERN.*lacks the named group\(s\) pid; write them "
                                          r"as \(\?P<pid>\.\.\.\)"):
        read(folder, r"^(\d+)_c(?P<camid>\d+)_.*\.jpg$")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        read(folder, r"^(?P<pid>\d+")


def make_cfg(root, sources=("veri",), target="veri", **extra):
    cfg = get_default_cfg()
    cfg.DATASETS.ROOT_DIR = str(root)
    cfg.DATASETS.SOURCES = list(sources)
    cfg.DATASETS.TARGET = target
    for key, value in extra.items():
        cfg.merge_from_list([key, value])
    return cfg


def test_missing_dataset_folder_names_the_config_keys(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(UserError, match=r"veri.*DATASETS\.ROOT_DIR.*DATASETS\.VERI\.FOLDER"):
        load_split(cfg, "veri", "train")


def test_missing_split_folder_names_its_key(tmp_path):
    touch(tmp_path / "veri" / "image_train", "0002_c002_00030600_0.jpg")
    cfg = make_cfg(tmp_path)
    with pytest.raises(UserError, match=r"image_query.*DATASETS\.VERI\.QUERY_DIR"):
        load_split(cfg, "veri", "query")


def test_vehiclex_train_is_found_under_aic20_folder(tmp_path):
    touch(tmp_path / "vehiclex" / "AIC20_ReID_Simulation" / "image_train", "0001_c001_33.jpg")
    records = load_split(make_cfg(tmp_path, sources=("vehiclex",)), "vehiclex", "train")
    assert [(r.pid, r.camid) for r in records] == [(1, 1)]


def test_count_differences_are_warned(tmp_path, caplog):
    touch(tmp_path / "veri" / "image_train", "0002_c002_00030600_0.jpg", "0003_c001_00030600_0.jpg")
    with caplog.at_level(logging.WARNING, logger="jifd.data"):
        load_split(make_cfg(tmp_path), "veri", "train")
    assert "2 ids / 2 images, published 576 ids / 37,778 images" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jifd.data"):
        load_split(make_cfg(tmp_path, **{"DATASETS.CHECK_COUNTS": False}), "veri", "train")
    assert caplog.text == ""


def two_source_tree(root):
    touch(root / "veri" / "image_train",
          "0005_c002_1_0.jpg", "0005_c003_1_0.jpg", "0009_c002_1_0.jpg")
    touch(root / "vehiclex" / "image_train", "0005_c002_1.jpg", "0007_c010_1.jpg")
    touch(root / "veri" / "image_query", "0001_c001_1_0.jpg")
    touch(root / "veri" / "image_test", "0001_c002_1_0.jpg", "0002_c002_1_0.jpg")


def test_two_sources_get_unique_labels_and_dataset_domains(tmp_path):
    two_source_tree(tmp_path)
    records, num_classes, num_domains = load_train_set(make_cfg(tmp_path, sources=("veri", "vehiclex")))
    # veri pids 5, 9 -> 0, 1; vehiclex pids 5, 7 -> 2, 3: the shared pid 5 stays two identities.
    assert [(r.pid, r.source, r.domain) for r in records] == [
        (0, 0, 0), (0, 0, 0), (1, 0, 0), (2, 1, 1), (3, 1, 1)]
    assert (num_classes, num_domains) == (4, 2)


def test_camera_domains_are_relabelled_per_source(tmp_path):
    two_source_tree(tmp_path)
    cfg = make_cfg(tmp_path, sources=("veri", "vehiclex"), **{"DISENTANGLE.DOMAIN_LABEL": "camera"})
    records, _, num_domains = load_train_set(cfg)
    # cameras (veri, 2), (veri, 3), (vehiclex, 2), (vehiclex, 10) -> 0, 1, 2, 3
    assert [r.domain for r in records] == [0, 1, 0, 2, 3]
    assert num_domains == 4


def test_one_source_auto_domain_is_the_camera(tmp_path):
    two_source_tree(tmp_path)
    records, num_classes, num_domains = load_train_set(make_cfg(tmp_path))
    assert [r.domain for r in records] == [0, 1, 0]
    assert (num_classes, num_domains) == (2, 2)


def test_test_set_keeps_original_labels(tmp_path):
    two_source_tree(tmp_path)
    query, gallery = load_test_set(make_cfg(tmp_path))
    assert [(r.pid, r.camid, r.source, r.domain) for r in query] == [(1, 1, -1, -1)]
    assert [(r.pid, r.camid) for r in gallery] == [(1, 2), (2, 2)]


def test_merge_sources_keeps_records_and_counts():
    per_source = [[ImageRecord("a", 3, 1)], [ImageRecord("b", 3, 1), ImageRecord("c", 1, 4)]]
    merged, num_classes, num_domains = merge_sources(per_source, "dataset")
    assert [(r.path, r.pid, r.source) for r in merged] == [("a", 0, 0), ("b", 2, 1), ("c", 1, 1)]
    assert (num_classes, num_domains) == (3, 2)


def test_statistics_table_lists_every_split(tmp_path, caplog):
    two_source_tree(tmp_path)
    cfg = make_cfg(tmp_path, sources=("veri", "vehiclex"))
    train, _, _ = load_train_set(cfg)
    query, gallery = load_test_set(cfg)
    with caplog.at_level(logging.INFO, logger="jifd.data"):
        log_statistics(cfg, train, query, gallery)
    lines = caplog.text.splitlines()
    row = next(line for line in lines if "train (all)" in line)
    assert row.split("|")[1:] == ["      4 ", "         5 ", "         4"]
    assert any("veri gallery" in line and line.split("|")[2].strip() == "2" for line in lines)
