"""tools/check_gpu.py on the CPU path (this machine has no GPU): every check runs, at the small size, and
says what it could not check. The CUDA path (fp16 + GradScaler, channels_last, GPU evaluation, nccl) is
not executed by any test."""
import pytest
import torch

import engine.gpu_check as gpu_check
from engine.runtime import resolve_device_setup
from tool_runs import run_tool_in_process

BASELINE, JIFD = "configs/baseline_veri2opri.yml", "configs/jifd_veri+vehiclex2opri.yml"


@pytest.mark.slow
def test_the_cpu_path_runs_every_check_and_says_what_needs_a_gpu():
    # The full JIFD config: every optimiser the step drives, and, in two processes, DDP with the image
    # level's second forward pass (L_gen).
    code, out, err = run_tool_in_process("check_gpu.py", "--cpu", "--configs", JIFD, "--iterations", 2)
    assert code == 0, out + err
    lines = out.splitlines()
    assert "The checks run on the CPU at a small size (resnet18, 64 x 64, batch 16" in lines[0]
    assert "fp16 with the GradScaler, channels_last, evaluation on the GPU and nccl need a CUDA machine" in lines[0]
    assert lines[1].startswith(f"{JIFD}: resnet18 64x64, batch 16, 1938 identities, JIFD levels: image, feature")
    assert lines[2].startswith("  [ok] training: 2 timed iterations: "), lines[2]
    assert "images/s, peak process RSS" in lines[2] and "never updated" not in lines[2]
    assert lines[3].startswith("  [ok] bfloat16 vs fp32 loss: same weights and batch: total ")
    assert lines[4].startswith("  [ok] evaluation: blocked vs dense evaluator on the CPU (600 queries x 1500 gallery")
    assert lines[5].startswith(f"  [ok] two processes (gloo): 2 DDP iterations of {JIFD} on different batches")
    assert lines[5].endswith("weights equal on both processes")
    assert lines[6] == "4 of 4 checks passed"


def test_checks_fail_outside_their_tolerance_and_when_an_optimiser_does_not_step(monkeypatch):
    cfg = gpu_check.check_cfg(BASELINE, "cpu")
    cfg.defrost()
    cfg.SOLVER.BASE_LR = 0.0
    device_setup = resolve_device_setup(cfg, torch.device("cpu"))
    sizes = gpu_check._sizes(cfg)
    batch = gpu_check.generated_batch(cfg, *sizes)
    report = gpu_check.Report(device="cpu")
    monkeypatch.setitem(gpu_check.LOSS_TOLERANCE, torch.bfloat16, 0.0)
    assert not gpu_check.check_precision(report, cfg, device_setup, sizes, batch)
    assert not gpu_check.check_training(report, cfg, device_setup, sizes, batch, iterations=1)
    assert [check.name for check in report.failed] == ["bfloat16 vs fp32 loss", "training"]
    assert "(tolerance 0%)" in report.failed[0].detail
    assert report.failed[1].detail.endswith("; never updated: model")


@pytest.mark.parametrize("argument", ["0", "-2"])
def test_iterations_must_be_positive(argument):
    code, _, err = run_tool_in_process("check_gpu.py", "--iterations", argument)
    assert code == 2 and err.strip() == f"error: --iterations must be at least 1, got {argument}"
