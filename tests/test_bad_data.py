"""What a user sees when the data, the config, a checkpoint or the loss is bad: one line, no traceback.

The tools run in this process (tool_runs.run_tool_in_process: the same entry point, run_cli and exit
code as a subprocess; test_config and test_run_hygiene run train.py and test.py as processes) on the
tiny hand-made trees of tiny_datasets.py.
"""
import json
import os
import re

import pytest
import torch

from conftest import small_run_cfg
from modeling import build_model
from tiny_datasets import BAD_NAME, NOT_AN_IMAGE, TRUNCATED, TRUNCATED_GALLERY, make_tree
from tool_runs import assert_user_error, run_tool_in_process, write_config


def tiny_config(tmp, name, root, *overrides):
    cfg = small_run_cfg(root, os.path.join(tmp, name), "SOLVER.IMS_PER_BATCH", 16, "SOLVER.MAX_EPOCHS", 1,
                        "SOLVER.ITERS_PER_EPOCH", 1, "SOLVER.WARMUP_EPOCHS", 0, "SOLVER.LOG_PERIOD", 1, *overrides)
    return write_config(cfg, os.path.join(tmp, f"{name}.yml"))


def _cases(tmp):
    """name -> (tool, arguments), built on trees and files under ``tmp``."""
    good = make_tree(os.path.join(tmp, "good"))
    empty = make_tree(os.path.join(tmp, "empty"))
    for name in os.listdir(os.path.join(empty, "veri", "image_train")):
        os.remove(os.path.join(empty, "veri", "image_train", name))
    strict = ("DATASETS.STRICT", True)
    resnet18 = os.path.join(tmp, "resnet18.pth")
    torch.manual_seed(0)
    model_cfg = small_run_cfg(good, tmp)
    torch.save(build_model(model_cfg, num_classes=4).state_dict(), resnet18)
    cut_short = os.path.join(tmp, "cut_short.pth")
    with open(resnet18, "rb") as whole, open(cut_short, "wb") as cut:
        cut.write(whole.read(os.path.getsize(resnet18) // 2))
    typo_yaml = os.path.join(tmp, "misspelt.yml")
    with open(typo_yaml, "w") as handle:
        handle.write("SOLVER:\n  BASE_LRR: 0.1\n")

    def train(name, root, *overrides):
        return "train.py", ["--config_file", tiny_config(tmp, name, root, *overrides)]

    return {
        # One of the 4 gallery images is unreadable: allowed here by TEST.MAX_UNREADABLE.
        "faults_skipped": train("faults_skipped", make_tree(os.path.join(tmp, "all_faults"), (
            "truncated", "not_an_image", "bad_name", "truncated_gallery")), "TEST.MAX_UNREADABLE", 0.25),
        # Epoch 1 at lr 1e-3, epoch 2 at 1e30: its first update makes the weights huge, its second loss NaN.
        "nan_loss": train("nan_loss", good, "SOLVER.MAX_EPOCHS", 2, "SOLVER.ITERS_PER_EPOCH", 2,
                          "SOLVER.WARMUP_EPOCHS", 1, "SOLVER.BASE_LR", 1e30, "SOLVER.WARMUP_FACTOR", 1e-33,
                          "SOLVER.CHECKPOINT_PERIOD", 1),
        "missing_folder": train("missing_folder", os.path.join(tmp, "nowhere")),
        "empty_folder": train("empty_folder", empty),
        "bad_name_strict": train("bad_name", make_tree(os.path.join(tmp, "bad_name"), ("bad_name",)), *strict),
        "truncated_strict": train("truncated", make_tree(os.path.join(tmp, "truncated"), ("truncated",)),
                                  *strict),
        "not_an_image_strict": train("not_an_image", make_tree(os.path.join(tmp, "not_an_image"),
                                                               ("not_an_image",)), *strict),
        "typo_command_line": ("train.py", ["--config_file", tiny_config(tmp, "typo", good), "SOLVER.BASE_LRR", 1]),
        "typo_yaml": ("train.py", ["--config_file", typo_yaml]),
        "other_architecture": ("test.py", ["--config_file", tiny_config(tmp, "arch", good), "MODEL.NAME", "resnet50",
                                           "TEST.WEIGHT", resnet18]),
        "cut_short_weights": ("test.py", ["--config_file", tiny_config(tmp, "cut_short", good),
                                          "TEST.WEIGHT", cut_short]),
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """(tmp folder, run): ``run(name)`` is the (exit code, stdout, stderr) of that case's tool run."""
    tmp = str(tmp_path_factory.mktemp("bad_data"))
    built = _cases(tmp)

    def run(name):
        tool, args = built[name]
        return run_tool_in_process(tool, *args)

    return tmp, run


def test_missing_dataset_folder(cases):
    tmp, run = cases
    assert_user_error(run("missing_folder"), "dataset folder not found",
                      os.path.join(tmp, "nowhere", "veri"), "DATASETS.ROOT_DIR", "DATASETS.VERI.FOLDER")


def test_empty_folder(cases):
    tmp, run = cases
    assert_user_error(run("empty_folder"), "no .jpg/.jpeg/.png images in",
                      os.path.join(tmp, "empty", "veri", "image_train"), "DATASETS.VERI.PATTERN")


def test_badly_named_file_is_an_error_when_strict(cases):
    tmp, run = cases
    assert_user_error(run("bad_name_strict"),
                      os.path.join(tmp, "bad_name", "veri", "image_train", BAD_NAME),
                      "does not match DATASETS.VERI.PATTERN", "DATASETS.STRICT")


def test_truncated_jpeg_is_an_error_when_strict(cases):
    tmp, run = cases
    assert_user_error(run("truncated_strict"),
                      f"unreadable image {os.path.join(tmp, 'truncated', 'veri', 'image_train', TRUNCATED)}",
                      "truncated", "DATASETS.STRICT")


def test_non_image_jpg_is_an_error_when_strict(cases):
    tmp, run = cases
    assert_user_error(run("not_an_image_strict"),
                      f"unreadable image {os.path.join(tmp, 'not_an_image', 'veri', 'image_train', NOT_AN_IMAGE)}",
                      "cannot identify image file", "DATASETS.STRICT")


@pytest.mark.slow
def test_bad_files_are_skipped_named_and_counted_and_unmatched_queries_reported(cases):
    # training: another image of the same identity; test: a blank image, both warned and counted
    tmp, run = cases
    code, out, err = run("faults_skipped")
    assert code == 0, err[-3000:]
    assert "Traceback" not in out + err
    train = os.path.join(tmp, "all_faults", "veri", "image_train")
    assert f"skipped {os.path.join(train, BAD_NAME)}: file name does not match DATASETS.VERI.PATTERN" in out
    assert f"unreadable image {os.path.join(train, TRUNCATED)}: image file is truncated" in out
    assert f"unreadable image {os.path.join(train, NOT_AN_IMAGE)}: cannot identify image file" in out
    assert "(2 unreadable training file(s) so far" in out
    gallery = os.path.join(tmp, "all_faults", "opri", "image_test")
    assert f"unreadable image {os.path.join(gallery, TRUNCATED_GALLERY)}: image file is truncated" in out
    assert "using a blank image in its place" in out
    assert "0 unreadable query and 1 unreadable gallery image(s) were replaced by blank images" in out
    assert "1 of 3 queries have no gallery image of their identity on another camera" in out
    assert "(query ids 3)" in out
    with open(os.path.join(tmp, "faults_skipped", "metrics.json")) as handle:
        metrics = json.load(handle)
    assert (metrics["unreadable_query"], metrics["unreadable_gallery"]) == (0, 1)


TYPO_HINT = "unknown config key SOLVER.BASE_LRR; did you mean SOLVER.BASE_LR?"


def test_config_typo_on_the_command_line(cases):
    _, run = cases
    assert_user_error(run("typo_command_line"), f"command line: {TYPO_HINT}")


def test_config_typo_in_the_yaml_file(cases):
    tmp, run = cases
    assert_user_error(run("typo_yaml"), f"{os.path.join(tmp, 'misspelt.yml')}: {TYPO_HINT}")


def test_checkpoint_of_another_architecture(cases):
    tmp, run = cases
    assert_user_error(run("other_architecture"), os.path.join(tmp, "resnet18.pth"),
                      "does not fit this model", "MODEL.NAME")


def test_checkpoint_cut_short(cases):
    tmp, run = cases
    assert_user_error(run("cut_short_weights"), os.path.join(tmp, "cut_short.pth"),
                      "not a readable PyTorch weights file", "truncated")


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(cases):
    tmp, run = cases
    out = os.path.join(tmp, "nan_loss")
    line = assert_user_error(run("nan_loss"), "at epoch 2, iteration 2/2 (global iteration 4)",
                             f"Last good checkpoint: {os.path.join(out, 'checkpoint_1.pt')}", "SOLVER.BASE_LR")
    assert re.search(r"loss term '(id|triplet|center)' is (nan|inf|-inf) at", line), line
    assert torch.load(os.path.join(out, "checkpoint_1.pt"), weights_only=True)["trainer"]["iteration"] == 2
    assert not os.path.exists(os.path.join(out, "checkpoint_2.pt"))
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
