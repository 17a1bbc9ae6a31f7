"""Testing a checkpoint on the target's query + gallery: tools/test.py's engine."""
import logging
import os

from modeling import build_model
from modeling.weight_loading import load_reid_weights
from utils.errors import UserError
from utils.metrics_report import format_metrics_table, plot_cmc, write_metrics_json
from utils.evaluation_cost import estimate_evaluation_cost
from utils.re_ranking import check_re_ranking_fits

from data import make_test_data

from .evaluator import evaluate
from .run_folder import CONFIG_NAME
from .runtime import resolve_device, resolve_precision

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


def check_not_a_training_run(output_dir):
    """Refuse to write test results where a training run keeps its own (its folder holds config.yaml)."""
    if os.path.isfile(os.path.join(output_dir, CONFIG_NAME)):
        raise UserError(f"OUTPUT_DIR {output_dir} is a training run's folder (it holds {CONFIG_NAME}); "
                        "testing there would overwrite its metrics.json and cmc.png. Give another OUTPUT_DIR, "
                        "or leave it out to write to <the config's OUTPUT_DIR>/test_<weight name>/")


def do_test(cfg):
    """Evaluate TEST.WEIGHT; print the table, write metrics.json and cmc.png to OUTPUT_DIR."""
    check_not_a_training_run(cfg.OUTPUT_DIR)
    device = resolve_device(cfg.MODEL.DEVICE)
    precision = resolve_precision(cfg, device)
    model = precision.prepare_model(build_test_model(cfg))
    data = make_test_data(cfg)
    num_gallery = len(data.gallery_records)
    logger.info(estimate_evaluation_cost(data.num_query, num_gallery, model.in_planes, cfg.TEST.EVAL_MEMORY_MB))
    if cfg.TEST.RE_RANKING == "yes":
        check_re_ranking_fits(data.num_query, num_gallery, model.in_planes, cfg.TEST.RE_RANKING_K1,
                              cfg.TEST.RE_RANKING_K2)
    metrics = evaluate(cfg, model, data, precision)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    write_metrics_json(cfg.OUTPUT_DIR, metrics, cfg.DATASETS.TARGET, cfg.TEST.WEIGHT)
    plot_cmc(cfg.OUTPUT_DIR, metrics, label=cfg.DATASETS.TARGET)
    logger.info("%s", format_metrics_table(metrics, f"{cfg.DATASETS.TARGET} query/gallery, {cfg.TEST.WEIGHT}"))
    return metrics
