"""Test-time tools: feature extraction to .npz, rank pictures, the CMC plot, TEST.FLIP, 4K draft decoding."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import engine.tester as tester
import utils.re_ranking as re_ranking_module
from conftest import small_run_cfg
from data import make_test_data
from data.image_loading import read_image
from engine.evaluator import extract_batch_features, extract_features
from engine.runtime import DeviceSetup
from engine.tester import build_test_model, extract_to_file
from modeling import build_model
from tiny_datasets import make_tree
from tool_runs import run_tool, write_config
from utils.errors import UserError
from utils.distances import compute_distance_matrix
from utils.ranking_statistics import rank_queries
from utils.reid_metric import NoValidQueryError, eval_func
from utils.visualization import (GAP, MATCH_COLOUR, QUERY_COLOUR, TEXT_COLOUR, TILE_BACKGROUND, WRONG_COLOUR,
                                 draw_ranking, plot_cmc)

CPU = DeviceSetup(device=torch.device("cpu"))


def _checkpoint(root, folder):
    """(cfg with TEST.WEIGHT set, its YAML file): a freshly built resnet18 saved as a BoT state dict."""
    cfg = small_run_cfg(root, folder / "run")
    torch.manual_seed(0)
    weight = folder / "model.pth"
    torch.save(build_model(cfg, num_classes=7).state_dict(), weight)
    cfg.TEST.WEIGHT = str(weight)
    return cfg, write_config(cfg, folder / "config.yml")


@pytest.fixture(scope="module")
def checkpoint_run(demo_root, tmp_path_factory):
    """A checkpoint on the demo data (_checkpoint)."""
    return _checkpoint(demo_root, tmp_path_factory.mktemp("test_tools"))


def test_test_refuses_re_ranking_that_cannot_fit_before_embedding(tmp_path, monkeypatch):
    cfg, _ = _checkpoint(make_tree(str(tmp_path / "data")), tmp_path)
    cfg = cfg.clone()
    cfg.TEST.RE_RANKING = "yes"

    def never(*args, **kwargs):
        raise AssertionError("the images were embedded")

    monkeypatch.setattr(tester, "evaluate", never)
    monkeypatch.setattr(re_ranking_module, "_physical_memory_bytes", lambda: 2 ** 20)
    with pytest.raises(UserError, match="TEST.RE_RANKING"):
        tester.do_test(cfg)


@pytest.mark.slow
def test_extract_features_tool_writes_a_split_and_a_folder_gives_the_same_features(checkpoint_run, tmp_path):
    cfg, config_file = checkpoint_run
    out = tmp_path / "query.npz"
    code, _, err = run_tool("extract_features.py", "--config_file", config_file, "--split", "query", "--out", out)
    assert code == 0, err[-3000:]

    query_dir = os.path.join(cfg.DATASETS.ROOT_DIR, "opri", "image_query")
    names = sorted(os.listdir(query_dir))
    with np.load(out) as saved:
        assert sorted(saved.files) == ["camids", "features", "paths", "pids"]
        features, pids, camids, paths = (saved[key] for key in ("features", "pids", "camids", "paths"))
    assert features.shape == (len(names), 512) and features.dtype == np.float32
    assert np.isfinite(features).all() and features.std() > 0
    assert [os.path.basename(p) for p in paths] == names
    assert pids.tolist() == [int(n.split("_")[0]) for n in names]
    assert camids.tolist() == [int(n.split("_c")[1].split("_")[0]) for n in names]

    # Any folder: a name the pattern cannot read is kept, with pid/camid -1.
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in names[:2]:
        shutil.copy(os.path.join(query_dir, name), folder / name)
    shutil.copy(os.path.join(query_dir, names[2]), folder / "zz_snapshot.jpg")
    extracted = extract_to_file(cfg, str(tmp_path / "folder.npz"), folder=str(folder))
    assert extracted.pids.tolist() == [pids[0], pids[1], -1]
    assert extracted.camids.tolist() == [camids[0], camids[1], -1]
    torch.testing.assert_close(extracted.features, torch.from_numpy(features[:3]), rtol=1e-4, atol=1e-5)
    with np.load(tmp_path / "folder.npz") as saved:
        assert saved["features"].shape == (3, 512) and saved["pids"].tolist() == [pids[0], pids[1], -1]


@pytest.mark.slow
def test_visualize_ranks_draws_the_worst_queries_first(checkpoint_run, tmp_path):
    cfg, config_file = checkpoint_run
    out = tmp_path / "ranks"
    code, _, err = run_tool("visualize_ranks.py", "--config_file", config_file, "--num_queries", 4, "--out", out)
    assert code == 0, err[-3000:]

    listing = json.loads((out / "ranks.json").read_text())
    assert [entry["file"] for entry in listing] == sorted(p for p in os.listdir(out) if p.endswith(".png"))
    assert len(listing) == 4
    for position, entry in enumerate(listing):
        assert entry["file"].startswith(f"ranks_{position:03d}_")
        with Image.open(out / entry["file"]) as picture:
            picture.verify()
        with Image.open(out / entry["file"]) as picture:
            # tiles 128 + 2 x 4 border: 6 + 136 + 18 + 10 x (136 + 6) wide, 24 + 136 + 18 high
            assert picture.format == "PNG" and picture.size == (1580, 178)
        assert len(entry["top"]) == len(entry["matches"]) == 10
    aps = [entry["ap"] for entry in listing]
    assert aps == sorted(aps)

    # The listed APs are the four lowest of the protocol's per-query APs.
    data = make_test_data(cfg)
    extracted = extract_features(build_test_model(cfg), data.test_loader, CPU)
    nq = data.num_query
    dist = compute_distance_matrix(extracted.features[:nq], extracted.features[nq:]).numpy()
    expected = []
    for i in range(nq):
        labels = (extracted.pids[i:i + 1], extracted.pids[nq:], extracted.camids[i:i + 1], extracted.camids[nq:])
        try:
            expected.append(eval_func(dist[i:i + 1], *labels)[1])
        except NoValidQueryError:
            continue
    np.testing.assert_allclose(aps, sorted(expected)[:4], rtol=1e-6)


def test_rank_queries_matches_the_protocol_per_query_in_any_block_size():
    rng = np.random.default_rng(0)
    num_query, num_gallery = 150, 300
    # Integer features: many tied distances, which must keep gallery order.
    qf = torch.from_numpy(rng.integers(0, 3, (num_query, 4)).astype(np.float32))
    gf = torch.from_numpy(rng.integers(0, 3, (num_gallery, 4)).astype(np.float32))
    q_pids, g_pids = rng.integers(0, 40, num_query), rng.integers(0, 40, num_gallery)
    q_camids, g_camids = rng.integers(0, 3, num_query), rng.integers(0, 3, num_gallery)
    q_pids[0] = 99  # an identity absent from the gallery: not counted
    g_pids[g_pids == q_pids[1]] = 98  # only same-camera entries left for query 1: not counted either
    g_pids[:2], g_camids[:2] = q_pids[1], q_camids[1]
    dist = compute_distance_matrix(qf, gf, feat_norm=False).numpy()
    blocked = rank_queries(qf, gf, q_pids, g_pids, q_camids, g_camids, top_k=10, feat_norm=False, memory_mb=0.001)
    whole = rank_queries(qf, gf, q_pids, g_pids, q_camids, g_camids, top_k=10, feat_norm=False)
    np.testing.assert_array_equal(blocked.top_index, whole.top_index)
    np.testing.assert_array_equal(blocked.ap, whole.ap)
    assert np.isnan(blocked.ap[:2]).all()
    counted = 0
    for i in range(num_query):
        try:
            _, ap = eval_func(dist[i:i + 1], q_pids[i:i + 1], g_pids, q_camids[i:i + 1], g_camids)
        except NoValidQueryError:
            assert np.isnan(blocked.ap[i]), i
            continue
        counted += 1
        assert blocked.ap[i] == pytest.approx(ap, abs=1e-12)
        order = np.argsort(dist[i], kind="stable")
        kept = order[~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))][:10]
        np.testing.assert_array_equal(blocked.top_index[i], kept)
        np.testing.assert_array_equal(blocked.top_match[i], g_pids[kept] == q_pids[i])
    worst = blocked.worst_first()
    assert len(worst) == counted > num_query // 2 and np.all(np.diff(blocked.ap[worst]) >= 0)


def test_rank_picture_frames_matches_green_and_the_rest_red():
    tile = (20, 10)
    query = Image.new("RGB", (40, 20), (255, 255, 0))
    gallery = [Image.new("RGB", (20, 10), (0, 0, 255)), None, Image.new("RGB", (10, 40), (255, 0, 255))]
    picture = draw_ranking(query, gallery, [True, False, True], "AP 50.0%", ["q", "1", "2", "3"], tile_size=tile)
    # cells 28 x 18: 6 + 28 + 18 + 3 x (28 + 6) wide, 24 + 18 + 18 high
    assert picture.size == (154, 60) and picture.mode == "RGB"
    pixels = picture.load()
    cells_x = [GAP, 52, 86, 120]
    for x, colour in zip(cells_x, [QUERY_COLOUR, MATCH_COLOUR, WRONG_COLOUR, MATCH_COLOUR]):
        # all four sides of the 4-pixel border
        for point in ((x, 24), (x + 27, 24 + 17), (x + 2, 24 + 9), (x + 26, 24 + 9), (x + 14, 24 + 16)):
            assert pixels[point] == colour, (x, point)
    assert pixels[GAP + 14, 24 + 9] == (255, 255, 0)  # the query, fitted to the tile
    assert pixels[52 + 14, 24 + 9] == (0, 0, 255)
    assert pixels[86 + 14, 24 + 5] == TILE_BACKGROUND  # an unreadable image: empty tile, crossed
    assert pixels[86 + 4, 24 + 4] == TEXT_COLOUR
    assert pixels[120 + 5, 24 + 9] == TILE_BACKGROUND and pixels[120 + 14, 24 + 9] == (255, 0, 255)
    with pytest.raises(ValueError, match="3 gallery images but 2 match flags"):
        draw_ranking(query, gallery, [True, False], "header", tile_size=tile)


def _curve_rows(path):
    """The mean row of the curve's pixels (matplotlib's first colour, #1f77b4) in each fifth of the plot's
    width, top to bottom = 100% to 0%."""
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    curve = np.abs(pixels - np.array([0x1f, 0x77, 0xb4])).sum(axis=2) < 60
    columns = np.nonzero(curve.any(axis=0))[0]
    fifths = np.array_split(np.arange(columns.min(), columns.max() + 1), 5)
    return [np.nonzero(curve[:, part])[0].mean() for part in fifths]


def test_cmc_plot_is_a_png_beside_metrics_json_that_draws_the_curve(tmp_path):
    rising = {"cmc": list(np.linspace(0.2, 1.0, 50)), "mAP": 0.25}
    path = plot_cmc(str(tmp_path), rising, label="opri")
    assert path == str(tmp_path / "cmc.png")
    with Image.open(path) as picture:
        assert picture.format == "PNG"
    # Without a label, so that the legend's sample line is not counted as the curve.
    for name in ("rising", "flat"):
        (tmp_path / name).mkdir()
    rows = _curve_rows(plot_cmc(str(tmp_path / "rising"), rising))
    # A rising CMC climbs from left to right (rows count downwards).
    assert all(later < earlier for earlier, later in zip(rows, rows[1:])), rows
    flat_rows = _curve_rows(plot_cmc(str(tmp_path / "flat"), {"cmc": [0.5] * 50, "mAP": 0.25}))
    assert max(flat_rows) - min(flat_rows) < 2
    # 50% sits between the rising curve's first (20%) and last (100%) values.
    assert rows[-1] < flat_rows[0] < rows[0]


def test_flip_averages_the_features_of_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 6, 5))
    images = torch.randn(2, 3, 4, 6)
    plain = extract_batch_features(model, images, CPU)
    flipped = extract_batch_features(model, images, CPU, flip=True)
    with torch.no_grad():
        # column j of the mirror of a 6-pixel-wide image is column 5 - j of the image
        mirrored = model(images[:, :, :, [5, 4, 3, 2, 1, 0]])
    torch.testing.assert_close(flipped, (plain + mirrored) / 2)
    assert (flipped - plain).abs().max() > 1e-3


def _photo_like(width, height, seed):
    """Gradient, noise and hard-edged shapes, as a camera's 4K frame has."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    base = np.stack(np.broadcast_arrays(120 + 80 * x, 90 + 100 * y, 160 - 60 * x * y), axis=2)
    noisy = base + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(20):
        x0, y0 = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        draw.rectangle((x0, y0, x0 + width // 8, y0 + height // 6), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img


@pytest.mark.parametrize("size, drafted", [((3840, 2160), (480, 270)), ((1024, 1024), (256, 256))])
def test_draft_decoding_of_large_jpegs_matches_full_decoding(tmp_path, size, drafted):
    path = str(tmp_path / "0001_c001_00000001_0.jpg")
    _photo_like(*size, seed=1).save(path, quality=90)
    target = (256, 256)
    small = read_image(path, target)
    assert small.size == drafted  # 4K: reduced 1/8; four times the target: 1/4
    full = read_image(path, target, draft=False)
    assert full.size == size
    difference = np.abs(np.asarray(small.resize(target, Image.BILINEAR), dtype=float)
                        - np.asarray(full.resize(target, Image.BILINEAR), dtype=float))
    assert difference.mean() < 1.5
