"""tools/visualize_ranks.py's engine: the worst queries of a checkpoint, one PNG each."""
import json
import logging
import os

from data import make_test_data
from data.image_loading import BadImageError, read_image
from utils.atomic_io import atomic_write_text
from utils.errors import UserError
from utils.file_faults import make_folder, reported_write_faults
from utils.query_ranking import rank_queries
from utils.rank_visualization import draw_ranking

from .feature_extraction import extract_features
from .runtime import resolve_device, resolve_precision
from .tester import build_test_model

logger = logging.getLogger("jifd.visualize")

TOP_K = 10
TILE_SIZE = (128, 128)


def _thumbnail(path):
    try:
        # Decoded reduced (JPEG draft) like the loader does: only a tile's worth of pixels is shown.
        return read_image(path, target_size=TILE_SIZE[::-1])
    except BadImageError as err:
        logger.warning("%s; drawn as a crossed-out tile", err)
        return None


def _label(record):
    return f"id {record.pid} cam {record.camid}"


def draw_query(ranking, query_index, query_records, gallery_records):
    """The PIL picture of one query's top TOP_K, with its AP in the header."""
    query = query_records[query_index]
    shown = [int(g) for g in ranking.top_index[query_index] if g >= 0]
    matches = [bool(m) for m in ranking.top_match[query_index][:len(shown)]]
    header = (f"AP {100.0 * ranking.ap[query_index]:.1f}%   query {os.path.basename(query.path)} "
              f"({_label(query)})   top {len(shown)}: green = same id, other camera; red = other id")
    captions = ["query"] + [f"{rank}. {_label(gallery_records[g])}" for rank, g in enumerate(shown, 1)]
    return draw_ranking(_thumbnail(query.path), [_thumbnail(gallery_records[g].path) for g in shown],
                        matches, header, captions, tile_size=TILE_SIZE)


def visualize_ranks(cfg, num_queries, out_dir):
    """Write ranks_NNN_*.png for the ``num_queries`` lowest-AP queries (NNN = 000 for the worst) and
    ranks.json listing them in that order; returns that list."""
    make_folder(out_dir, "--out")
    device = resolve_device(cfg.MODEL.DEVICE)
    precision = resolve_precision(cfg, device)
    model = precision.prepare_model(build_test_model(cfg))
    data = make_test_data(cfg)
    extracted = extract_features(model, data.test_loader, precision, flip=cfg.TEST.FLIP)
    nq = data.num_query
    ranking = rank_queries(extracted.features[:nq], extracted.features[nq:], extracted.pids[:nq],
                           extracted.pids[nq:], extracted.camids[:nq], extracted.camids[nq:], top_k=TOP_K,
                           distance=cfg.TEST.DISTANCE, feat_norm=cfg.TEST.FEAT_NORM == "yes",
                           memory_mb=cfg.TEST.EVAL_MEMORY_MB)
    order = ranking.worst_first()
    if not len(order):
        raise UserError(f"none of the {nq} queries has a true match in the gallery (same identity, other "
                        "camera): there is no AP to rank them by")
    if len(order) < nq:
        logger.info("%d of %d queries have no true match in the gallery; they have no AP and are not drawn",
                    nq - len(order), nq)
    listing = []
    for position, query_index in enumerate(order[:num_queries]):
        query = data.query_records[query_index]
        name = f"ranks_{position:03d}_{os.path.splitext(os.path.basename(query.path))[0]}.png"
        with reported_write_faults(os.path.join(out_dir, name)):
            draw_query(ranking, query_index, data.query_records, data.gallery_records).save(
                os.path.join(out_dir, name))
        listing.append({
            "file": name,
            "query": query.path,
            "ap": float(ranking.ap[query_index]),
            "top": [data.gallery_records[g].path for g in ranking.top_index[query_index] if g >= 0],
            "matches": [bool(m) for m, g in zip(ranking.top_match[query_index], ranking.top_index[query_index])
                        if g >= 0],
        })
    atomic_write_text(os.path.join(out_dir, "ranks.json"), json.dumps(listing, indent=2))
    logger.info("wrote %d pictures, worst query first (AP %.1f%% .. %.1f%%), and ranks.json to %s", len(listing),
                100.0 * listing[0]["ap"], 100.0 * listing[-1]["ap"], out_dir)
    return listing
