"""Every YAML in configs/ loads, and each protocol file says what its name says."""
import glob
import os

import pytest

from config import load_cfg

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
PROTOCOLS = {"veri2opri": ["veri"], "vehiclex2opri": ["vehiclex"], "veri+vehiclex2opri": ["veri", "vehiclex"]}
ROWS = {"baseline": (False, False), "image": (True, False), "feature": (False, True), "jifd": (True, True)}


def test_every_config_loads():
    paths = sorted(glob.glob(os.path.join(CONFIG_DIR, "*.yml")))
    assert {os.path.basename(path) for path in paths} >= {"demo.yml", "demo_jifd.yml", "bench_jifd.yml"}
    for path in paths:
        load_cfg(path)


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocol_config_matches_its_name(row, protocol):
    path = os.path.join(CONFIG_DIR, f"{row}_{protocol}.yml")
    cfg = load_cfg(path)
    assert list(cfg.DATASETS.SOURCES) == PROTOCOLS[protocol] and cfg.DATASETS.TARGET == "opri"
    assert (cfg.DISENTANGLE.IMAGE.ENABLED, cfg.DISENTANGLE.FEATURE.ENABLED) == ROWS[row]
    assert cfg.MODEL.NAME == "resnet50" and tuple(cfg.INPUT.SIZE_TRAIN) == (256, 256)
    assert cfg.OUTPUT_DIR.endswith(f"{row}_{protocol}")
