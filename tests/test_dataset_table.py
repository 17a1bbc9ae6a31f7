"""The dataset table: presets in their published layouts (folders or list files), and a dataset that no
preset knows, described in a YAML file alone, trained on and evaluated."""
import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from config import ConfigError, get_default_cfg, load_cfg
from data.dataset_check import check_datasets
from data.dataset_presets import draw_gallery, get_preset, load_split, load_test_set, load_train_set
from data.reid_folder import GALLERY_CAMERA_BASE, ImageRecord
from tiny_datasets import make_market_tree, make_tree, make_vehicleid_tree, make_veriwild_tree
from tool_runs import run_tool_in_process


def table_cfg(root, sources, target, *overrides):
    cfg = get_default_cfg()
    cfg.merge_from_list(["DATASETS.ROOT_DIR", str(root), "DATASETS.SOURCES", list(sources),
                         "DATASETS.TARGET", target, "DATASETS.CHECK_COUNTS", False, *overrides])
    return cfg


def _labels(records):
    return [(os.path.basename(r.path), r.pid, r.camid) for r in records]


def test_every_preset_is_an_entry_of_one_table():
    cfg = load_cfg()
    for name in ("veri", "vehiclex", "opri", "vehicleid", "veriwild", "market1501"):
        assert get_preset(cfg, name).pattern == cfg.DATASETS[name.upper()].PATTERN
    assert get_preset(cfg, "VeRi").title == "VeRi-776"
    assert get_preset(cfg, "market1501").published("gallery") == (751, 15913)
    assert get_preset(cfg, "opri").published("gallery") == (None, 54756)
    assert get_preset(cfg, "vehiclex").published("query") is None


def test_vehicleid_lists_no_cameras_and_one_gallery_image_per_vehicle(tmp_path):
    cfg = table_cfg(make_vehicleid_tree(str(tmp_path)), ["vehicleid"], "vehicleid")
    train = load_split(cfg, "vehicleid", "train")
    assert [(r.pid, r.camid) for r in train] == [(1 + i // 3, i) for i in range(9)]
    assert train[4].path == os.path.join(str(tmp_path), "vehicleid", "image", "0000004.jpg")
    query, gallery = load_test_set(cfg)
    assert sorted(r.pid for r in gallery) == [11, 12, 13]
    assert sorted(r.pid for r in query) == [11, 11, 12]
    assert not {r.path for r in query} & {r.path for r in gallery}
    # every image its own camera: no gallery image is ever dropped as same-camera
    assert len({r.camid for r in query + gallery}) == 6
    assert load_test_set(cfg)[1] == gallery  # the same draw every time


def test_draw_gallery_takes_n_per_identity_and_keeps_order():
    records = [ImageRecord(f"{i}.jpg", pid, i) for i, pid in enumerate([1, 1, 1, 2, 3, 3])]
    drawn = draw_gallery(records, 2)
    assert sorted(r.pid for r in drawn["gallery"]) == [1, 1, 2, 3, 3]
    assert [r.pid for r in drawn["query"]] == [1]
    for part in drawn.values():
        assert [r.camid for r in part] == sorted(r.camid for r in part)


def test_veriwild_reads_cameras_from_vehicle_info(tmp_path):
    cfg = table_cfg(make_veriwild_tree(str(tmp_path)), ["veriwild"], "veriwild")
    assert _labels(load_split(cfg, "veriwild", "train")) == [
        ("000001.jpg", 1, 4), ("000002.jpg", 1, 7), ("000003.jpg", 2, 4), ("000004.jpg", 2, 9)]
    query, gallery = load_test_set(cfg)
    assert _labels(query) == [("000010.jpg", 5, 1), ("000020.jpg", 6, 1)]
    assert [(r.pid, r.camid) for r in gallery] == [(5, 2), (5, 3), (6, 2), (6, 3)]
    assert gallery[1].path == os.path.join(str(tmp_path), "veriwild", "images", "00005", "000012.jpg")


def test_veriwild_line_without_a_camera_is_skipped_and_reported(tmp_path, caplog):
    cfg = table_cfg(make_veriwild_tree(str(tmp_path), unlisted_camera=True), ["veriwild"], "veriwild")
    with caplog.at_level(logging.WARNING, logger="jifd.data"):
        gallery = load_split(cfg, "veriwild", "gallery")
    assert len(gallery) == 3
    list_file = os.path.join(str(tmp_path), "veriwild", "train_test_split", "test_3000.txt")
    assert f"skipped 1 line(s) of {list_file} that the camera file gives no camera, e.g. '00006/000022'" in caplog.text
    reports = {report.title: report for report in check_datasets(cfg)}
    assert reports["VeRi-Wild gallery"].errors == [
        "1 list line(s) have no camera in DATASETS.VERIWILD.CAMERA_FILE and are skipped: 00006/000022"]
    assert (reports["VeRi-Wild train"].ids, reports["VeRi-Wild train"].images) == (2, 4)
    assert not reports["VeRi-Wild train"].errors and not reports["VeRi-Wild query"].errors


def test_market1501_as_reid_strong_baseline_reads_it(tmp_path):
    cfg = table_cfg(make_market_tree(str(tmp_path)), ["market1501"], "market1501")
    assert [(r.pid, r.camid) for r in load_split(cfg, "market1501", "train")] == [(2, 1), (2, 2), (7, 3), (7, 4)]
    query, gallery = load_test_set(cfg)
    assert [(r.pid, r.camid) for r in query] == [(1, 1), (3, 2)]
    # the junk image (-1) is dropped, the distractor (0) stays
    assert sorted((r.pid, r.camid) for r in gallery) == [(0, 6), (1, 2), (3, 5)]


def test_a_pattern_without_camid_makes_every_image_its_own_camera(tmp_path):
    root = make_tree(str(tmp_path))
    cfg = table_cfg(root, ["veri"], "opri", "DATASETS.OPRI.PATTERN", r"^(?P<pid>\d+)_c\d+_\d+_\d+\.jpg$")
    query, gallery = load_test_set(cfg)
    assert [r.camid for r in query] == [0, 1, 2]
    assert [r.camid for r in gallery] == [GALLERY_CAMERA_BASE + i for i in range(4)]


def test_sources_and_targets_mix_presets_and_own_entries(tmp_path):
    make_veriwild_tree(str(tmp_path))
    make_market_tree(str(tmp_path))
    cfg = table_cfg(str(tmp_path), ["veriwild", "market1501"], "veriwild")
    records, num_classes, num_domains = load_train_set(cfg)
    assert (len(records), num_classes, num_domains) == (8, 4, 2)


@pytest.mark.parametrize("overrides, message", [
    (["DATASETS.SOURCES", "[kitti]"], "DATASETS.SOURCES: unknown dataset 'kitti'; known: veri, vehiclex, opri, "
                                      "vehicleid, veriwild, market1501"),
    (["DATASETS.KITTI.FOLDER", "k", "DATASETS.SOURCES", "[kitti]"], "DATASETS.KITTI.PATTERN is empty"),
    (["DATASETS.KITTI.PATTERN", "(?P<pid>.)", "DATASETS.TARGET", "kitti"],
     "DATASETS.TARGET = 'kitti': kitti has no query/gallery split (DATASETS.KITTI.QUERY_DIR is empty)"),
    (["DATASETS.KITTI.FOLDER", "k", "DATASETS.KITTI.PATERN", "x"], "did you mean DATASETS.KITTI.PATTERN?"),
    (["DATASETS.VERIWILD.CAMERA_PATTERN", "", "DATASETS.TARGET", "veriwild"],
     "DATASETS.VERIWILD.CAMERA_FILE is set but DATASETS.VERIWILD.CAMERA_PATTERN is empty"),
    (["DATASETS.VALIDATION", "vehiclex"], "DATASETS.VALIDATION = 'vehiclex': VehicleX has no query/gallery split "
                                          "(DATASETS.VEHICLEX.QUERY_DIR is empty)"),
    (["DATASETS.VALIDATION", "kitti"], "DATASETS.VALIDATION: unknown dataset 'kitti'; known: veri, vehiclex, opri"),
])
def test_incomplete_entries_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_cfg("", overrides)
    assert message in str(err.value)


OWN_DATASET_YAML = """\
MODEL: {{DEVICE: cpu, NAME: resnet18, PRETRAIN_CHOICE: none}}
INPUT: {{SIZE_TRAIN: [32, 32], SIZE_TEST: [32, 32], PADDING: 2}}
DATASETS:
  ROOT_DIR: {root}
  SOURCES: [toycars]
  TARGET: toycars
  TOYCARS:
    NAME: Toy cars
    FOLDER: toy_cars
    PATTERN: '^car(?P<pid>\\d+)-cam(?P<camid>\\d+)-\\d+\\.png$'
    TRAIN_DIR: train
    QUERY_DIR: probe
    GALLERY_DIR: gallery
DATALOADER: {{NUM_WORKERS: 0, NUM_INSTANCE: 2}}
SOLVER:
  MAX_EPOCHS: 1
  ITERS_PER_EPOCH: 2
  IMS_PER_BATCH: 8
  WARMUP_EPOCHS: 0
  STEPS: [5]
  EVAL_PERIOD: 1
  PROGRESS_BAR: False
TEST: {{IMS_PER_BATCH: 16}}
OUTPUT_DIR: {out}
"""


def _toy_cars(root):
    """PNG images named car<pid>-cam<camid>-<n>.png: 4 training cars, 3 test cars seen by cameras 1 and 2."""
    rng = np.random.default_rng(0)
    layout = {"train": [(pid, 1 + n % 2, n) for pid in range(1, 5) for n in range(4)],
              "probe": [(pid, 1, 0) for pid in range(10, 13)],
              "gallery": [(pid, 2, n) for pid in range(10, 13) for n in range(2)]}
    for folder, images in layout.items():
        os.makedirs(os.path.join(root, "toy_cars", folder))
        for pid, camid, n in images:
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(root, "toy_cars", folder, f"car{pid}-cam{camid}-{n}.png"))


@pytest.mark.slow
def test_a_dataset_described_only_in_yaml_trains_and_is_evaluated(tmp_path):
    _toy_cars(str(tmp_path / "data"))
    config = tmp_path / "toy.yml"
    config.write_text(OWN_DATASET_YAML.format(root=tmp_path / "data", out=tmp_path / "run"))
    # Its own entry is the validation set too: any entry with a query and a gallery split can be.
    code, out, err = run_tool_in_process("train.py", "--config_file", config, "DATASETS.VALIDATION", "ToyCars")
    assert code == 0, err[-3000:]
    assert "=> Toy cars -> Toy cars loaded" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "toycars"
    assert (metrics["num_query"], metrics["num_gallery"]) == (3, 6)
    assert 0 <= metrics["mAP"] <= 1 and len(metrics["cmc"]) == 50
    assert metrics["validation"]["dataset"] == "ToyCars"
    assert (metrics["validation"]["num_query"], metrics["validation"]["mAP"]) == (3, metrics["mAP"])
