"""tools/visualize_features.py: a t-SNE PNG of a checkpoint's source and target features."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import small_run_cfg
from data.reid_folder import ImageRecord
from engine.visualization import sample_identities
from modeling import build_model
from tiny_datasets import make_tree
from tool_runs import run_tool, write_config
from utils.visualization import DOMAIN_COLOURS


def _has_colour(picture, hex_colour, box):
    """Pixels in ``box`` of the colour, drawn at the left panel's alpha 0.7 over white."""
    rgb = 0.7 * np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) + 0.3 * 255
    pixels = np.asarray(picture.convert("RGB").crop(box)).reshape(-1, 3).astype(int)
    return int((np.abs(pixels - rgb).sum(axis=1) < 40).sum())


@pytest.mark.slow
def test_visualize_features_writes_both_panels_into_the_test_folder(tmp_path):
    cfg = small_run_cfg(make_tree(str(tmp_path / "data")), tmp_path / "run")
    torch.manual_seed(0)
    torch.save(build_model(cfg, num_classes=4).state_dict(), tmp_path / "model.pth")
    config = write_config(cfg, tmp_path / "cfg.yml")
    code, out, err = run_tool("visualize_features.py", "--config_file", config, "TEST.WEIGHT", tmp_path / "model.pth",
                              "--num_ids", 3)
    assert code == 0, err[-3000:]
    png = tmp_path / "run" / "test_model" / "features_tsne.png"
    assert out.strip().splitlines()[-1] == str(png)
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.size == (1300, 620)
        width, height = picture.size
        left = (0, 40, width // 2, height)
        # both domains drawn in the left panel: veri-style training images (16) and opri-style test images (7)
        assert _has_colour(picture, DOMAIN_COLOURS[0], left) > 50
        assert _has_colour(picture, DOMAIN_COLOURS[1], left) > 20
    with open(tmp_path / "run" / "test_model" / "visualize_features_log.txt") as handle:
        assert "features of 23 images (VeRi-776 train: 16, Opri test: 7)" in handle.read()
    assert not os.path.exists(tmp_path / "run" / "features_tsne.png")


def test_identities_are_sampled_whole_up_to_the_budget():
    records = [ImageRecord(f"{pid}_{n}.jpg", pid, 0) for pid in range(1, 7) for n in range(pid)]
    picked = sample_identities(records, per_domain=8, seed=3)
    by_pid = {pid: sum(r.pid == pid for r in picked) for pid in {r.pid for r in picked}}
    assert all(count == pid for pid, count in by_pid.items())  # whole identities
    assert 0 < len(picked) <= 8
    assert picked == [r for r in records if r.pid in by_pid]  # original order
    assert len(sample_identities(records, per_domain=1)) >= 1  # at least one identity, even a large one
