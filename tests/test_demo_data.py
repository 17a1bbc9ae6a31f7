"""The generated demo datasets: real layouts and names, determinism, splits, ensure_demo_data."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from config import ConfigError, get_default_cfg
from data.demo import MARKER_NAME, ensure_demo_data, generate_demo_data, read_marker, render_image
from tool_runs import files_under, run_tool_in_process
from utils.errors import UserError

# A tree of a few dozen images: 2-3 identities per split, few images each.
TINY = dict(scale=0.05, veri_images_per_id=4, veri_cameras=4, vehiclex_images_per_id=3, vehiclex_cameras=3,
            opri_train_images_per_id=2, opri_gallery_min=2, opri_gallery_max=3, opri_cameras=4)
SPLIT_DIRS = {"veri": ("image_train", "image_query", "image_test"), "vehiclex": ("image_train",),
              "opri": ("image_train", "image_query", "image_test")}


def _parse(root, dataset, split_dir, pattern):
    """[(pid, camid, name)] of a split folder, read with the configured pattern."""
    rows = []
    for name in sorted(os.listdir(os.path.join(root, dataset, split_dir))):
        match = re.match(pattern, name)
        assert match, f"{dataset}/{split_dir}/{name} does not match {pattern}"
        rows.append((int(match["pid"]), int(match["camid"]), name))
    return rows


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tiny_demo"))
    summary = generate_demo_data(root, seed=3, workers=1, **TINY)
    return root, summary


def test_layout_and_names_follow_the_real_datasets(tiny_tree):
    root, summary = tiny_tree
    cfg = get_default_cfg()
    assert sorted(os.listdir(root)) == sorted([MARKER_NAME, "opri", "vehiclex", "veri"])
    for dataset, dirs in SPLIT_DIRS.items():
        assert sorted(os.listdir(os.path.join(root, dataset))) == sorted(dirs)
        pattern = cfg.DATASETS[dataset.upper()].PATTERN
        for split, split_dir in zip(("train", "query", "gallery"), dirs):
            rows = _parse(root, dataset, split_dir, pattern)
            assert len(rows) == summary["datasets"][dataset][split]["images"] > 0
            assert all(pid >= 1 for pid, _, _ in rows)
            low, high = {"veri": (1, 20), "vehiclex": (6, 36), "opri": (1, 64)}[dataset]
            assert all(low <= cam <= high for _, cam, _ in rows)
    veri_name = re.compile(r"^\d{4}_c\d{3}_\d{8}_\d+\.jpg$")
    assert all(veri_name.match(n) for d in ("image_train", "image_test") for n in os.listdir(f"{root}/veri/{d}"))
    assert all(re.match(r"^\d{4}_c\d{3}_\d+\.jpg$", n) for n in os.listdir(f"{root}/vehiclex/image_train"))
    with Image.open(os.path.join(root, "veri", "image_train", os.listdir(f"{root}/veri/image_train")[0])) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
    assert read_marker(root)["seed"] == 3


@pytest.mark.parametrize("dataset", ["veri", "opri"])
def test_query_ids_are_test_ids_with_a_match_on_another_camera(tiny_tree, dataset):
    root, _ = tiny_tree
    pattern = get_default_cfg().DATASETS.VERI.PATTERN
    train = {pid for pid, _, _ in _parse(root, dataset, "image_train", pattern)}
    query = _parse(root, dataset, "image_query", pattern)
    gallery = _parse(root, dataset, "image_test", pattern)
    gallery_names = {name for _, _, name in gallery}
    assert not train & {pid for pid, _, _ in gallery}
    assert {pid for pid, _, _ in query} <= {pid for pid, _, _ in gallery}
    assert not gallery_names & {name for _, _, name in query}
    for pid, cam, _ in query:
        assert any(g_pid == pid and g_cam != cam for g_pid, g_cam, _ in gallery), (dataset, pid, cam)
    if dataset == "opri":
        pids = [pid for pid, _, _ in query]
        assert len(pids) == len(set(pids)), "Opri has one query per identity"


def test_opri_images_are_larger_than_veri_and_vehiclex(tiny_tree):
    root, _ = tiny_tree

    def long_sides(dataset, split_dir):
        folder = os.path.join(root, dataset, split_dir)
        sides = []
        for name in os.listdir(folder):
            with Image.open(os.path.join(folder, name)) as image:
                sides.append(max(image.size))
        return sides

    small = long_sides("veri", "image_train") + long_sides("vehiclex", "image_train")
    large = long_sides("opri", "image_query") + long_sides("opri", "image_test")
    assert 96 <= min(small) and max(small) <= 128
    assert min(large) >= 192 and max(large) <= 256


def test_same_seed_same_bytes_whatever_the_workers_and_other_seed_differs(tmp_path, tiny_tree):
    root, _ = tiny_tree
    again = generate_demo_data(str(tmp_path / "again"), seed=3, workers=2, **TINY)
    assert again["seed"] == 3
    first, second = files_under(root), files_under(str(tmp_path / "again"))
    assert first.keys() == second.keys()
    assert all(first[path] == second[path] for path in first)
    generate_demo_data(str(tmp_path / "other"), seed=4, workers=1, **TINY)
    other = files_under(str(tmp_path / "other"))
    assert set(other.values()).isdisjoint(value for path, value in first.items() if path.endswith(".jpg"))
    for dataset in ("veri", "vehiclex", "opri"):
        image, _ = render_image(3, dataset, 1, 6, 0)
        assert np.array_equal(np.asarray(image), np.asarray(render_image(3, dataset, 1, 6, 0)[0]))
        assert not np.array_equal(np.asarray(image), np.asarray(render_image(4, dataset, 1, 6, 0)[0]))


def _cfg(root, seed=0):
    cfg = get_default_cfg()
    cfg.merge_from_list(["DATASETS.ROOT_DIR", str(root), "DATASETS.DEMO_SEED", seed])
    return cfg


def test_ensure_demo_data_generates_once_and_again_for_a_new_seed(tmp_path):
    root = tmp_path / "datasets"
    ensure_demo_data(_cfg(root, seed=1), **TINY)
    assert read_marker(str(root))["seed"] == 1
    before = {path: os.stat(os.path.join(root, path)).st_mtime_ns for path in files_under(str(root))}
    ensure_demo_data(_cfg(root, seed=1), **TINY)
    after = {path: os.stat(os.path.join(root, path)).st_mtime_ns for path in files_under(str(root))}
    assert before == after
    ensure_demo_data(_cfg(root, seed=2), **TINY)
    assert read_marker(str(root))["seed"] == 2
    assert sorted(os.listdir(root)) == sorted([MARKER_NAME, "opri", "vehiclex", "veri"])


def test_ensure_demo_data_uses_the_configured_folder_names(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.merge_from_list(["DATASETS.VERI.FOLDER", "VeRi", "DATASETS.OPRI.GALLERY_DIR", "gallery"])
    ensure_demo_data(cfg, **TINY)
    assert sorted(os.listdir(tmp_path)) == sorted([MARKER_NAME, "VeRi", "opri", "vehiclex"])
    assert sorted(os.listdir(tmp_path / "opri")) == ["gallery", "image_query", "image_train"]


def test_ensure_demo_data_leaves_a_users_datasets_alone(tmp_path):
    for dataset, dirs in SPLIT_DIRS.items():
        for split_dir in dirs:
            os.makedirs(tmp_path / dataset / split_dir)
    ensure_demo_data(_cfg(tmp_path), **TINY)
    assert not os.path.exists(tmp_path / MARKER_NAME)
    assert os.listdir(tmp_path / "veri" / "image_train") == []


def test_ensure_demo_data_refuses_to_mix_with_a_users_folder(tmp_path):
    os.makedirs(tmp_path / "veri" / "image_train")
    with pytest.raises(UserError, match="veri exists and is not generated demo data"):
        ensure_demo_data(_cfg(tmp_path), **TINY)
    assert sorted(os.listdir(tmp_path)) == ["veri"]


def test_ensure_demo_data_checks_the_file_name_patterns(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.merge_from_list(["DATASETS.VEHICLEX.PATTERN", r"^(?P<pid>\d+)-(?P<camid>\d+)\.jpg$"])
    with pytest.raises(ConfigError, match="DATASETS.VEHICLEX.PATTERN"):
        ensure_demo_data(cfg, **TINY)
    assert os.listdir(tmp_path) == []


def test_make_demo_data_tool(tmp_path):
    code, out, _ = run_tool_in_process("make_demo_data.py", "--root", tmp_path / "demo", "--seed", "5", "--scale",
                                       "0.02", "--workers", "1")
    assert code == 0
    assert "veri: train 3 ids / 24 images" in out and "vehiclex: train 2 ids / 20 images" in out
    assert read_marker(str(tmp_path / "demo"))["seed"] == 5
    code, _, err = run_tool_in_process("make_demo_data.py", "--root", tmp_path / "bad", "--scale", "0")
    assert code == 2 and err.strip() == "error: --scale must be positive, got 0.0"
    assert not os.path.exists(tmp_path / "bad")


def test_a_missing_split_comes_back_alone_and_a_users_files_are_kept(tmp_path):
    root = tmp_path / "datasets"
    ensure_demo_data(_cfg(root, seed=1), **TINY)
    query = root / "opri" / "image_query"
    original = {name: (query / name).read_bytes() for name in os.listdir(query)}
    mine = root / "veri" / "image_train" / "my_notes.txt"
    mine.write_text("mine")
    for name in os.listdir(query):
        os.remove(query / name)
    os.rmdir(query)
    others = {path: os.stat(os.path.join(root, path)).st_mtime_ns for path in files_under(str(root))
              if path != MARKER_NAME}

    ensure_demo_data(_cfg(root, seed=1), **TINY)
    assert {name: (query / name).read_bytes() for name in os.listdir(query)} == original
    assert mine.read_text() == "mine"
    assert all(os.stat(os.path.join(root, path)).st_mtime_ns == stamp for path, stamp in others.items())
    assert len(read_marker(str(root))["files"]) == len(files_under(str(root))) - 2  # the marker and my_notes.txt


def test_replacing_a_tree_that_holds_a_users_file_deletes_nothing(tmp_path):
    root = tmp_path / "datasets"
    ensure_demo_data(_cfg(root, seed=1), **TINY)
    mine = root / "opri" / "image_test" / "0001_c001_00000000_9.jpg"
    mine.write_bytes(b"my own photo")
    before = files_under(str(root))
    with pytest.raises(UserError, match=rf"holds demo data of seed 1 with files the demo generator did not write, "
                                        rf"e\.g\. {re.escape(str(mine))}; nothing was deleted"):
        ensure_demo_data(_cfg(root, seed=2), **TINY)
    assert files_under(str(root)) == before
