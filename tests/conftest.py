"""Shared fixtures: one generated demo tree per session, and a small-run config."""
import pytest

from config import get_default_cfg
from data.demo import generate_demo_data
from tool_runs import one_thread


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """The demo datasets (veri/, vehiclex/, opri/) in the real layouts, generated once."""
    root = tmp_path_factory.mktemp("demo_data")
    generate_demo_data(str(root), seed=0)
    return str(root)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module of small-tensor tests (tool_runs.one_thread)."""
    with one_thread():
        yield


def small_run_cfg(root, output_dir, *overrides):
    """A CPU-sized run on the demo data: resnet18 at 32 x 32, a few epochs."""
    cfg = get_default_cfg()
    cfg.merge_from_list([
        "MODEL.DEVICE", "cpu", "MODEL.NAME", "resnet18", "MODEL.PRETRAIN_CHOICE", "none",
        "INPUT.SIZE_TRAIN", [32, 32], "INPUT.SIZE_TEST", [32, 32], "INPUT.PADDING", 2,
        "DATASETS.ROOT_DIR", root, "DATASETS.SOURCES", ["veri"], "DATASETS.TARGET", "opri",
        "DATASETS.CHECK_COUNTS", False,
        "DATALOADER.NUM_WORKERS", 0,
        "SOLVER.MAX_EPOCHS", 4, "SOLVER.STEPS", [3], "SOLVER.WARMUP_EPOCHS", 1, "SOLVER.IMS_PER_BATCH", 32,
        "SOLVER.CHECKPOINT_PERIOD", 2, "SOLVER.EVAL_PERIOD", 4, "SOLVER.LOG_PERIOD", 10,
        "SOLVER.PROGRESS_BAR", False,
        "TEST.IMS_PER_BATCH", 128,
        "DISENTANGLE.IMAGE.SIZE", [32, 32], "DISENTANGLE.IMAGE.BASE_CHANNELS", 8,
        "DISENTANGLE.IMAGE.VIS_PERIOD", 0,
        "OUTPUT_DIR", str(output_dir),
    ])
    cfg.merge_from_list(list(overrides))
    return cfg


@pytest.fixture
def run_cfg(demo_root, tmp_path):
    """``run_cfg(KEY, VALUE, ...)``: a small-run config writing into this test's tmp_path."""
    return lambda *overrides: small_run_cfg(demo_root, tmp_path / "run", *overrides)
