"""Mixed precision: fp16 + channels_last on CUDA by default, fp32 on CPU unless bf16 is asked for."""
import math

import pytest
import torch

from ignite.engine import Engine

from config import get_default_cfg
from engine.runtime import resolve_device_setup
from engine.train_step import TrainStep
from layers import make_loss
from modeling import build_model
from solver import make_center_optimizer, make_optimizer
from tool_runs import one_thread
from utils.errors import UserError


def _setup(amp, device, channels_last=True):
    cfg = get_default_cfg()
    cfg.merge_from_list(["SOLVER.AMP", amp, "SOLVER.CHANNELS_LAST", channels_last])
    return resolve_device_setup(cfg, torch.device(device))


def test_auto_is_fp32_on_cpu_and_fp16_with_channels_last_on_cuda():
    cpu = _setup("auto", "cpu")
    assert cpu.dtype is None and not cpu.channels_last and not cpu.grad_scaler().is_enabled()
    # resolving does not touch the GPU, so the CUDA choice is checked on any machine
    cuda = _setup("auto", "cuda")
    assert cuda.dtype is torch.float16 and cuda.channels_last
    assert _setup("bf16", "cuda").dtype is torch.bfloat16
    assert not _setup("auto", "cuda", channels_last=False).channels_last
    assert _setup("off", "cuda").dtype is None


def test_fp16_on_cpu_is_refused_and_bf16_is_allowed():
    with pytest.raises(UserError, match="SOLVER.AMP = 'fp16' needs CUDA"):
        _setup("fp16", "cpu")
    bf16 = _setup("bf16", "cpu")
    assert bf16.dtype is torch.bfloat16 and not bf16.channels_last and not bf16.grad_scaler().is_enabled()
    with bf16.autocast():
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype is torch.bfloat16


def test_bf16_training_steps_on_cpu_have_finite_losses():
    # The trainer's own step with the configured precision; bf16 is slow on CPUs without bf16
    # instructions, so two steps on 8 images of 32 px.
    cfg = get_default_cfg()
    cfg.merge_from_list(["MODEL.NAME", "resnet18", "MODEL.PRETRAIN_CHOICE", "none", "SOLVER.AMP", "bf16",
                         "INPUT.SIZE_TRAIN", [32, 32]])
    torch.manual_seed(0)
    device_setup = _setup("bf16", "cpu")
    model = device_setup.prepare_model(build_model(cfg, num_classes=2))
    reid_loss = make_loss(cfg, num_classes=2)
    center_optimizer = make_center_optimizer(cfg, reid_loss.center_criterion)
    step = TrainStep(model, reid_loss, make_optimizer(cfg, model), center_optimizer, device_setup,
                     center_loss_weight=cfg.SOLVER.CENTER_LOSS_WEIGHT)
    batch = {"images": torch.randn(8, 3, 32, 32), "pids": torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]),
             "camids": torch.zeros(8, dtype=torch.long), "domains": torch.zeros(8, dtype=torch.long)}
    engine = Engine(step)
    engine.state.epoch, engine.state.epoch_length = 1, 2
    before = model.classifier.weight.detach().clone()
    for iteration in (1, 2):
        engine.state.iteration = iteration
        with one_thread():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert model(batch["images"])["cls_score"].dtype is torch.bfloat16
            logs = step(engine, batch)
        assert set(logs) == {"id", "triplet", "center", "loss", "acc"}
        assert all(math.isfinite(value) for value in logs.values()), logs
    assert model.classifier.weight.dtype is torch.float32
    assert not torch.equal(before, model.classifier.weight)
