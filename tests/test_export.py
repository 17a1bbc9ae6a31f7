"""tools/export.py: ONNX and TorchScript files whose features match PyTorch's, and a check that notices
when they do not."""
import re

import onnx
import pytest
import torch

import engine.export as export
from conftest import small_run_cfg
from modeling import build_model
from tiny_datasets import make_tree
from tool_runs import run_tool, run_tool_in_process, write_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(cfg, its YAML file): resnet18 at 32 px with the feature level on and TEST.FLIP, random weights
    (G's last layer too, so that r = f - G(f) differs from f)."""
    tmp = tmp_path_factory.mktemp("export")
    cfg = small_run_cfg(make_tree(str(tmp / "data")), tmp / "run", "DISENTANGLE.FEATURE.ENABLED", True,
                        "TEST.FLIP", True)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=4)
    with torch.no_grad():
        model.feature_disentangler.decoder[-1].weight.normal_(0, 0.05)
    torch.save(model.state_dict(), tmp / "model.pth")
    cfg.TEST.WEIGHT = str(tmp / "model.pth")
    return cfg, write_config(cfg, tmp / "export.yml")


# ONNX through a process, as a user runs the tool; TorchScript in this process (the same entry point).
@pytest.mark.parametrize("fmt, suffix, run", [
    pytest.param("onnx", ".onnx", run_tool, marks=pytest.mark.slow),
    ("torchscript", ".pt", run_tool_in_process)])
def test_export_passes_its_parity_check(checkpoint, fmt, suffix, run, tmp_path):
    _, config = checkpoint
    out = tmp_path / f"model{suffix}"
    code, stdout, err = run("export.py", "--config_file", config, "--format", fmt, "--out", out)
    assert code == 0, err[-3000:]
    line = stdout.strip().splitlines()[-1]
    found = re.fullmatch(rf"{fmt} parity check passed: max abs difference (\S+) between the exported and PyTorch "
                         r"features of 3 query images of opri \(tolerance 0.0001\)", line)
    assert found, line
    assert float(found.group(1)) <= 1e-4
    if fmt == "onnx":
        graph = onnx.load(str(out)).graph
        assert [node.name for node in graph.input] == ["images"] and [node.name for node in graph.output] == ["features"]
        assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a free batch dimension


def test_parity_check_notices_a_network_that_differs(checkpoint, tmp_path, monkeypatch):
    cfg, _ = checkpoint
    deployed = export.DeployedReID

    def without_flip(model, mean, std, flip, l2_normalise):
        return deployed(model, mean, std, flip=not flip, l2_normalise=l2_normalise)

    monkeypatch.setattr(export, "DeployedReID", without_flip)
    difference, count, where = export.export_model(cfg, "torchscript", str(tmp_path / "wrong.pt"))
    assert difference > 1e-3 and (count, where) == (3, "query images of opri")
