"""tools/ablate.py: rows per seed, ablation.csv / ablation.md, paired statistics, resuming a stopped run."""
import csv
import importlib.util
import json
import math
import pathlib
import sys

import pytest

import engine.ablation as ablation
from config import load_cfg
from data.demo import plan_shots, resolve_counts
from utils.paired_statistics import mean_std, paired_difference, student_t_quantile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_student_t_quantiles_match_the_tables():
    for df, expected in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)


def test_paired_difference_by_hand():
    mean, std = mean_std([3.0, 4.0, 5.0])
    assert (mean, std) == (4.0, 1.0)
    # differences 2, 3, 4: mean 3, sd 1, half-width t(0.975, 2) x 1 / sqrt(3)
    mean, low, high = paired_difference([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])
    half = 4.302653 / math.sqrt(3)
    assert mean == 3.0
    assert low == pytest.approx(3.0 - half, abs=1e-4) and high == pytest.approx(3.0 + half, abs=1e-4)
    assert paired_difference([1.0], [0.0]) == (1.0, -math.inf, math.inf)
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [0.0])


def _result(row, seed, map_value, validation=None):
    result = {"row": row, "seed": seed, "minutes": 1.5, "mAP": map_value, "rank1": map_value + 0.1,
              "rank5": 0.8, "rank10": 0.9, "mINP": 0.1}
    if validation is not None:
        result["validation"] = {key: validation for key in ablation.COLUMNS}
        result["diagnostics"] = {"domain_probe_feature": 0.9}
    return result


def test_tables_have_the_exact_columns_and_paired_intervals(tmp_path):
    results = []
    for seed in range(3):
        results.append(_result("baseline", seed, 0.20 + 0.01 * seed, validation=0.3))
        # Two points higher on every seed, whatever the seed's level: a clear paired gain.
        results.append(_result("+image", seed, 0.22 + 0.01 * seed + 0.001 * (seed == 1), validation=0.31))
        results.append(_result("+feature", seed, 0.20 + 0.01 * seed - 0.001 * seed, validation=0.3))
    ablation.write_ablation_tables(str(tmp_path), results)
    with open(tmp_path / "ablation.csv") as handle:
        assert handle.readline().strip() == "row,seed,mAP,rank1,rank5,rank10,mINP,minutes"
        handle.seek(0)
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9
    assert {(row["row"], row["seed"]) for row in rows} == {(r, str(s)) for r in ("baseline", "+image", "+feature")
                                                          for s in range(3)}
    assert all(0.0 <= float(row[key]) <= 1.0 for row in rows for key in ablation.COLUMNS)
    markdown = (tmp_path / "ablation.md").read_text()
    assert "| baseline | 3 | 21.0 ± 1.0 |" in markdown
    image_line = next(line for line in markdown.splitlines() if line.startswith("| +image | 3"))
    assert "(higher)" in image_line and "+2.0 [" in image_line
    feature_line = next(line for line in markdown.splitlines() if line.startswith("| +feature | 3"))
    assert "(higher)" not in feature_line
    assert "Validation" in markdown and "Diagnostics" in markdown
    assert (tmp_path / "validation.csv").read_text().splitlines()[0] == ",".join(ablation.CSV_FIELDS)


def test_rows_share_a_seed_and_image_rows_share_a_warm_up(tmp_path, monkeypatch):
    cfg = load_cfg(str(ROOT / "configs" / "bench_jifd.yml"), ["OUTPUT_DIR", str(tmp_path)])
    seen = []

    def fake_train(row_cfg):
        seen.append(row_cfg)
        return {"mAP": 0.5, "rank1": 0.6, "rank5": 0.7, "rank10": 0.8, "mINP": 0.2}

    monkeypatch.setattr(ablation, "do_train", fake_train)
    results = ablation.run_ablation(cfg, seeds=2)
    assert [(r.SOLVER.SEED, r.DISENTANGLE.IMAGE.ENABLED, r.DISENTANGLE.FEATURE.ENABLED, r.MODEL.MIXSTYLE.ENABLED)
            for r in seen] == [(seed, *ablation.ROWS[name]) for seed in (0, 1) for name in ablation.ROWS]
    assert seen[0].OUTPUT_DIR == str(tmp_path / "seed_0" / "baseline")
    caches = {r.DISENTANGLE.IMAGE.WARMUP_CACHE for r in seen if r.SOLVER.SEED == 1 and r.DISENTANGLE.IMAGE.ENABLED}
    assert caches == {str(tmp_path / "seed_1" / "generator_warmup.pt")}
    assert len(results) == 10
    # A second run on the same folder reads the finished rows instead of training them again.
    seen.clear()
    again = ablation.run_ablation(cfg, seeds=3, rows=["baseline", "full"])
    assert [(r.SOLVER.SEED, r.OUTPUT_DIR.rsplit("/", 1)[1]) for r in seen] == [(2, "baseline"), (2, "full")]
    assert json.loads((tmp_path / "seed_0" / "full" / ablation.ROW_RECORD).read_text())["mAP"] == 0.5
    assert len(again) == 6


def test_ablate_tool_takes_seeds_and_overrides_in_any_order(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ablate_tool", ROOT / "tools" / "ablate.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    calls = []
    monkeypatch.setattr(tool, "run_ablation", lambda cfg, seeds, rows: calls.append((cfg, seeds, rows)) or [])
    monkeypatch.setattr(tool, "format_markdown", lambda results: "")
    for argv in (["--seeds", "3", "OUTPUT_DIR", str(tmp_path), "SOLVER.SEED", "5"],
                 ["OUTPUT_DIR", str(tmp_path), "--seeds", "3", "SOLVER.SEED", "5"]):
        monkeypatch.setattr(sys, "argv", ["ablate.py", "--config_file", str(ROOT / "configs" / "bench_jifd.yml"),
                                          "--rows", "baseline,+image", *argv])
        tool.main()
        cfg, seeds, rows = calls[-1]
        assert (seeds, rows, cfg.SOLVER.SEED, cfg.OUTPUT_DIR) == (3, ["baseline", "+image"], 5, str(tmp_path))


def test_bench_preset_has_a_test_set_that_can_resolve_two_points():
    counts = resolve_counts(preset="bench")
    shots = [shot for shot in plan_shots(0, counts) if shot.dataset == "opri"]
    queries = [shot for shot in shots if shot.split == "query"]
    gallery = [shot for shot in shots if shot.split == "gallery"]
    assert len({shot.pid for shot in queries}) >= 200
    assert len(gallery) >= 5 * len(queries)
    # The sources, and so the cost of training, are the demo's.
    demo = resolve_counts()
    for key in ("veri_train_ids", "vehiclex_ids", "veri_images_per_id", "vehiclex_images_per_id"):
        assert counts[key] == demo[key]
    veri = [shot for shot in plan_shots(0, counts) if shot.dataset == "veri" and shot.split == "query"]
    assert len({shot.pid for shot in veri}) == counts["veri_test_ids"] == 100
