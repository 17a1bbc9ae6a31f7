"""tools/check_dataset.py: counts, bad names, unreadable files and cameras, without training."""
import os

import pytest

from conftest import small_run_cfg
from data.dataset_check import check_datasets, format_reports
from tiny_datasets import BAD_NAME, NOT_AN_IMAGE, TRUNCATED, add_jpeg, make_tree
from tool_runs import run_tool, write_config


def _by_title(reports):
    return {report.title: report for report in reports}


def test_a_clean_tree_has_only_count_warnings(tmp_path):
    reports = _by_title(check_datasets(small_run_cfg(make_tree(str(tmp_path / "data")), tmp_path / "out")))
    train, query, gallery = reports["VeRi-776 train"], reports["Opri query"], reports["Opri gallery"]
    assert not any(report.errors for report in reports.values())
    assert (train.ids, train.images, train.cameras) == (4, 16, 2)
    assert (query.ids, query.images, gallery.ids, gallery.images) == (3, 3, 2, 4)
    assert train.warnings == ["4 ids / 16 images differ from the published 576/37,778 (a subset or another copy?)"]
    assert query.warnings[1] == ("1 of 3 queries have no gallery image of their identity on another camera and "
                                 "are skipped by the evaluation (query ids 3)")


@pytest.mark.slow
def test_faults_are_errors_and_the_tool_exits_non_zero(tmp_path):
    root = make_tree(str(tmp_path / "data"), ("truncated", "not_an_image", "bad_name"))
    train = os.path.join(root, "veri", "image_train")
    for index in range(2):
        add_jpeg(os.path.join(train, f"0005_c001_00000000_{index}.jpg"), 50 + index)
    cfg = small_run_cfg(root, tmp_path / "out", "DATASETS.SOURCES", ["veri", "vehiclex"])

    reports = _by_title(check_datasets(cfg))
    veri, vehiclex = reports["VeRi-776 train"], reports["VehicleX train"]
    assert veri.errors == [
        f"1 file name(s) do not match DATASETS.VERI.PATTERN = {cfg.DATASETS.VERI.PATTERN!r} and are skipped: "
        f"{BAD_NAME}",
        veri.errors[1]]
    assert veri.errors[1].startswith("2 unreadable image(s): ")
    assert f"unreadable image {os.path.join(train, TRUNCATED)}: image file is truncated" in veri.errors[1]
    assert f"unreadable image {os.path.join(train, NOT_AN_IMAGE)}: cannot identify image file" in veri.errors[1]
    assert (veri.ids, veri.images) == (5, 16)
    assert "1 of 5 identities are seen by one camera only (ids 5)" in veri.warnings
    assert vehiclex.errors == [f"dataset folder not found: {os.path.join(root, 'vehiclex')} "
                               "(set DATASETS.ROOT_DIR or DATASETS.VEHICLEX.FOLDER)"]
    assert format_reports(reports.values()).endswith("3 error(s), 5 warning(s)")

    code, out, err = run_tool("check_dataset.py", "--config_file", write_config(cfg, tmp_path / "cfg.yml"),
                              "--workers", 2)
    assert code == 1, err
    assert "Traceback" not in out + err
    assert "  ERROR: 2 unreadable image(s): " in out and out.rstrip().endswith("3 error(s), 5 warning(s)")


def test_no_query_with_a_match_is_an_error(tmp_path):
    root = make_tree(str(tmp_path / "data"))
    gallery = os.path.join(root, "opri", "image_test")
    for name in os.listdir(gallery):
        os.rename(os.path.join(gallery, name), os.path.join(gallery, name.replace("_c002_", "_c001_")))
    query = _by_title(check_datasets(small_run_cfg(root, tmp_path / "out")))["Opri query"]
    assert query.errors == ["3 of 3 queries have no gallery image of their identity on another camera and are "
                            "skipped by the evaluation (query ids 1, 2, 3)"]
