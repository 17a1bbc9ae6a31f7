"""Test time: the setup every test-time tool starts from, testing a checkpoint (tools/test.py) and writing
features (tools/extract_features.py)."""
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from data import TestData, make_test_data, records_loader
from data.dataset_presets import get_preset, split_records
from data.reid_folder import folder_records
from modeling import build_model
from modeling.weight_loading import load_reid_weights
from utils.errors import UserError
from utils.evaluation_cost import estimate_evaluation_cost
from utils.file_faults import make_folder, reported_write_faults
from utils.metrics_report import format_metrics_table, write_metrics_json
from utils.re_ranking import check_re_ranking_fits
from utils.visualization import plot_cmc

from .evaluator import evaluate, extract_features
from .run_folder import CONFIG_NAME
from .runtime import DeviceSetup, resolve_device, resolve_device_setup

logger = logging.getLogger("jifd.test")


def build_test_model(cfg):
    """The configured network with TEST.WEIGHT loaded; no ImageNet file needed."""
    if not cfg.TEST.WEIGHT:
        raise UserError("TEST.WEIGHT is empty: give the checkpoint to test, e.g. TEST.WEIGHT logs/run/model_final.pth")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.PRETRAIN_CHOICE = "none"
    # The classifier is not used at test time: a placeholder, which load_reid_weights(for_test=True) leaves unloaded.
    model = build_model(cfg, num_classes=1)
    load_reid_weights(model, cfg.TEST.WEIGHT, logger=logger, config_key="TEST.WEIGHT", for_test=True)
    return model


@dataclass
class TestRun:
    """What a test-time tool works with: the network with TEST.WEIGHT loaded, where and how it computes,
    and the target's query + gallery (None when the tool reads other images)."""

    model: torch.nn.Module
    device_setup: DeviceSetup
    data: TestData = None


def prepare_test(cfg, with_data=True, device_setup=None):
    """The test-time setup of every test-time tool: MODEL.DEVICE and SOLVER.AMP resolved (or ``device_setup``),
    the network built and TEST.WEIGHT loaded into it, and, ``with_data``, the target's test loader."""
    device_setup = device_setup or resolve_device_setup(cfg, resolve_device(cfg.MODEL.DEVICE))
    model = device_setup.prepare_model(build_test_model(cfg))
    return TestRun(model, device_setup, make_test_data(cfg) if with_data else None)


def check_not_a_training_run(output_dir):
    """Refuse to write test results where a training run keeps its own (its folder holds config.yaml)."""
    if os.path.isfile(os.path.join(output_dir, CONFIG_NAME)):
        raise UserError(f"OUTPUT_DIR {output_dir} is a training run's folder (it holds {CONFIG_NAME}); "
                        "testing there would overwrite its metrics.json and cmc.png. Give another OUTPUT_DIR, "
                        "or leave it out to write to <the config's OUTPUT_DIR>/test_<weight name>/")


def do_test(cfg):
    """Evaluate TEST.WEIGHT; print the table, write metrics.json and cmc.png to OUTPUT_DIR."""
    check_not_a_training_run(cfg.OUTPUT_DIR)
    run = prepare_test(cfg)
    num_query, num_gallery = run.data.num_query, len(run.data.gallery_records)
    logger.info(estimate_evaluation_cost(num_query, num_gallery, run.model.in_planes, cfg.TEST.EVAL_MEMORY_MB))
    if cfg.TEST.RE_RANKING == "yes":
        check_re_ranking_fits(num_query, num_gallery, run.model.in_planes, cfg.TEST.RE_RANKING_K1,
                              cfg.TEST.RE_RANKING_K2)
    metrics = evaluate(cfg, run.model, run.data, run.device_setup)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    write_metrics_json(cfg.OUTPUT_DIR, metrics, cfg.DATASETS.TARGET, cfg.TEST.WEIGHT)
    plot_cmc(cfg.OUTPUT_DIR, metrics, label=cfg.DATASETS.TARGET)
    logger.info("%s", format_metrics_table(metrics, f"{cfg.DATASETS.TARGET} query/gallery, {cfg.TEST.WEIGHT}"))
    return metrics


def check_output_file(path, what="--out"):
    """Refuse, before any work, an output file that could not be written: a folder, or under a file."""
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a folder: give the path of the file to write")
    make_folder(os.path.dirname(os.path.abspath(path)), f"the folder of {what}")


def save_features(path, extracted):
    """Write ``extracted`` as a .npz with arrays features (N x D), pids, camids, paths (N each)."""
    partial = f"{path}.partial"
    # Written aside then renamed, so that an interrupted run leaves no truncated file under the real name.
    with reported_write_faults(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(partial, "wb") as handle:
            np.savez(handle, features=extracted.features.numpy(), pids=extracted.pids, camids=extracted.camids,
                     paths=np.asarray(extracted.paths, dtype=str))
        os.replace(partial, path)
    return path


def extract_to_file(cfg, out, folder="", split="", dataset=""):
    """Features of ``folder`` or of ``split`` (of ``dataset``) written to ``out``; returns the ExtractedFeatures."""
    check_output_file(out)
    run = prepare_test(cfg, with_data=False)
    if folder:
        preset = get_preset(cfg, dataset or cfg.DATASETS.TARGET)
        records = folder_records(folder, preset.pattern, preset.config_key("PATTERN"))
    else:
        records = split_records(cfg, split, dataset)
    logger.info("extracting features of %d images%s", len(records),
                " and their mirrors (TEST.FLIP)" if cfg.TEST.FLIP else "")
    extracted = extract_features(run.model, records_loader(cfg, records), run.device_setup, flip=cfg.TEST.FLIP)
    save_features(out, extracted)
    logger.info("wrote %s: %d x %d features", out, *extracted.features.shape)
    return extracted
