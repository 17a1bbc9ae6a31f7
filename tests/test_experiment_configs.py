"""Every YAML in configs/ loads, and each protocol file says what its name says."""
import glob
import os

import pytest

from config import load_cfg

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
PROTOCOLS = {"veri2opri": ["veri"], "vehiclex2opri": ["vehiclex"], "veri+vehiclex2opri": ["veri", "vehiclex"]}
ROWS = {"baseline": (False, False), "image": (True, False), "feature": (False, True), "jifd": (True, True)}
# method.md's target numbers: JIFD's for the method rows, BoT's for the baseline row.
PAPER_JIFD = {"veri2opri": "25.0 / 35.3 / 44.7 / 49.0", "vehiclex2opri": "22.9 / 32.2 / 42.8 / 47.0",
              "veri+vehiclex2opri": "25.5 / 35.4 / 44.4 / 48.8"}
PAPER_BOT = {"veri2opri": "18.3 / 27.8 / 35.9 / 39.7", "vehiclex2opri": "16.5 / 25.0 / 34.1 / 38.1",
             "veri+vehiclex2opri": "19.8 / 29.3 / 38.2 / 42.2"}


def test_every_config_loads():
    paths = sorted(glob.glob(os.path.join(CONFIG_DIR, "*.yml")))
    assert {os.path.basename(path) for path in paths} >= {"demo.yml", "demo_jifd.yml", "bench_jifd.yml"}
    for path in paths:
        load_cfg(path)


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocol_config_matches_its_name_and_names_the_paper_numbers(row, protocol):
    path = os.path.join(CONFIG_DIR, f"{row}_{protocol}.yml")
    cfg = load_cfg(path)
    assert list(cfg.DATASETS.SOURCES) == PROTOCOLS[protocol] and cfg.DATASETS.TARGET == "opri"
    assert (cfg.DISENTANGLE.IMAGE.ENABLED, cfg.DISENTANGLE.FEATURE.ENABLED) == ROWS[row]
    assert cfg.MODEL.NAME == "resnet50" and tuple(cfg.INPUT.SIZE_TRAIN) == (256, 256)
    assert cfg.OUTPUT_DIR.endswith(f"{row}_{protocol}")
    with open(path) as handle:
        header = handle.read().split("MODEL:")[0]
    assert (PAPER_BOT if row == "baseline" else PAPER_JIFD)[protocol] in header
