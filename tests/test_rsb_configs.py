"""reid-strong-baseline's configs load as its users write them (fixtures in tests/fixtures/rsb/), and
one of them trains on the demo data with a few overrides."""
import json
import logging
import os

import pytest

from config import load_cfg
from tool_runs import run_tool_in_process

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "rsb")
IGNORED = ("SOLVER.CLUSTER_MARGIN", "SOLVER.RANGE_K", "SOLVER.RANGE_MARGIN", "SOLVER.RANGE_ALPHA",
           "SOLVER.RANGE_BETA", "SOLVER.RANGE_LOSS_WEIGHT")

# file -> what its RSB keys become here
EXPECTED = {
    "baseline.yml": {"METRIC_LOSS_TYPE": "triplet", "IF_LABELSMOOTH": "off", "NECK": "no", "LAST_STRIDE": 2,
                     "SAMPLER": "softmax_triplet", "WARMUP_EPOCHS": 0, "ignored": IGNORED},
    "softmax.yml": {"METRIC_LOSS_TYPE": "triplet_center", "IF_LABELSMOOTH": "on", "NECK": "bnneck",
                    "LAST_STRIDE": 1, "SAMPLER": "softmax", "WARMUP_EPOCHS": 5, "ignored": ()},
    "softmax_triplet.yml": {"METRIC_LOSS_TYPE": "triplet", "IF_LABELSMOOTH": "on", "NECK": "bnneck",
                            "LAST_STRIDE": 1, "SAMPLER": "softmax_triplet", "WARMUP_EPOCHS": 10, "ignored": IGNORED},
    "softmax_triplet_with_center.yml": {"METRIC_LOSS_TYPE": "triplet_center", "IF_LABELSMOOTH": "on",
                                        "NECK": "bnneck", "LAST_STRIDE": 1, "SAMPLER": "softmax_triplet",
                                        "WARMUP_EPOCHS": 10, "ignored": IGNORED},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rsb_config_loads_its_keys_mapped_or_ignored_by_name(name, caplog):
    expected = EXPECTED[name]
    with caplog.at_level(logging.WARNING, logger="jifd.config"):
        cfg = load_cfg(os.path.join(FIXTURES, name), ["MODEL.DEVICE_ID", "('0')"])
    assert list(cfg.DATASETS.SOURCES) == ["market1501"] and cfg.DATASETS.TARGET == "market1501"
    assert cfg.MODEL.METRIC_LOSS_TYPE == expected["METRIC_LOSS_TYPE"]
    assert cfg.MODEL.IF_LABELSMOOTH == expected["IF_LABELSMOOTH"]
    assert (cfg.MODEL.NECK, cfg.MODEL.LAST_STRIDE) == (expected["NECK"], expected["LAST_STRIDE"])
    assert cfg.DATALOADER.SAMPLER == expected["SAMPLER"]
    assert list(cfg.INPUT.SIZE_TRAIN) == [256, 128] and cfg.SOLVER.BIAS_LR_FACTOR == 1.0
    assert (cfg.TEST.RE_RANKING, cfg.TEST.FEAT_NORM) == ("no", "yes")
    # RSB's SOLVER.WARMUP_ITERS counts epochs: it loads under its new name with one deprecation warning.
    assert cfg.SOLVER.WARMUP_EPOCHS == expected["WARMUP_EPOCHS"]
    warned = [record.getMessage() for record in caplog.records if record.name == "jifd.config"]
    assert len(warned) == len(expected["ignored"]) + 2, warned
    assert sum(message.startswith("SOLVER.WARMUP_ITERS is deprecated: it is now SOLVER.WARMUP_EPOCHS")
               for message in warned) == 1, warned
    for key in expected["ignored"] + ("MODEL.DEVICE_ID",):
        assert sum(message.startswith(f"{key} = ") and "reid-strong-baseline" in message
                   for message in warned) == 1, (key, warned)


@pytest.mark.parametrize("switch, loss_type, expected", [
    ("yes", "triplet", "triplet_center"), ("'no'", "triplet_center", "triplet"), ("True", "none", "center"),
    ("no", "center", "none"),
])
def test_if_with_center_switches_the_center_loss_in_any_order(switch, loss_type, expected, tmp_path):
    path = tmp_path / "rsb.yml"
    path.write_text(f"MODEL:\n  IF_WITH_CENTER: {switch}\n  METRIC_LOSS_TYPE: {loss_type}\n")
    assert load_cfg(str(path)).MODEL.METRIC_LOSS_TYPE == expected
    assert load_cfg("", ["MODEL.IF_WITH_CENTER", switch, "MODEL.METRIC_LOSS_TYPE", loss_type]
                    ).MODEL.METRIC_LOSS_TYPE == expected


@pytest.mark.slow
def test_one_iteration_from_an_rsb_config_on_the_demo_data(demo_root, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_tool_in_process(
        "train.py", "--config-file", os.path.join(FIXTURES, "softmax_triplet_with_center.yml"),
        "MODEL.DEVICE_ID", "('0')", "DATASETS.NAMES", "('veri')", "DATASETS.ROOT_DIR", demo_root,
        "DATASETS.CHECK_COUNTS", "no", "MODEL.DEVICE", "cpu", "MODEL.NAME", "resnet18",
        "MODEL.PRETRAIN_CHOICE", "none", "INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]",
        "DATALOADER.NUM_WORKERS", 0, "SOLVER.MAX_EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 1,
        "SOLVER.IMS_PER_BATCH", 16, "SOLVER.LOG_PERIOD", 1, "SOLVER.PROGRESS_BAR", "no", "OUTPUT_DIR", out)
    assert code == 0, err[-3000:]
    log = (out / "log.txt").read_text()
    assert "Epoch[1] Iteration[1/1] id " in log and " triplet " in log and " center " in log
    for key in IGNORED + ("MODEL.DEVICE_ID",):
        assert f"{key} = " in log, key
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "veri" and metrics["num_query"] == 60
