"""tools/visualize_features.py's engine: a t-SNE map of a checkpoint's features, by domain and by identity.

The points are the training images of each source and the target's query +
gallery images, each a domain; from each, whole identities are taken in a
seeded random order until ``per_domain`` images, so that every shown
identity has its images together. Features are the evaluator's (TEST.FLIP,
TEST.NECK_FEAT), L2-normalised when evaluation normalises them.
"""
import logging
import os

import numpy as np
import torch.nn.functional as F

from data.dataset_presets import display_name, load_split
from utils.errors import UserError
from utils.feature_plot import save_feature_map, tsne_2d

from .evaluator import normalises_features
from .feature_extraction import extract_features, records_loader
from .runtime import resolve_device, resolve_precision
from .tester import build_test_model

logger = logging.getLogger("jifd.visualize")

CHOICES = ("both", "source", "test")


def sample_identities(records, per_domain, seed=0):
    """Records of whole identities, taken in a seeded random order while they fit in ``per_domain`` images
    (at least one identity), in their original order."""
    by_pid = {}
    for record in records:
        by_pid.setdefault(record.pid, []).append(record)
    order = np.random.default_rng(seed).permutation(sorted(by_pid))
    taken, count = set(), 0
    for pid in order.tolist():
        if taken and count + len(by_pid[pid]) > per_domain:
            continue
        taken.add(pid)
        count += len(by_pid[pid])
    return [record for record in records if record.pid in taken]


def domain_records(cfg, what):
    """[(domain name, records)]: each source's training split and/or the target's query + gallery."""
    domains = []
    if what in ("both", "source"):
        domains += [(f"{display_name(cfg, name)} train", load_split(cfg, name, "train"))
                    for name in cfg.DATASETS.SOURCES]
    if what in ("both", "test"):
        target = cfg.DATASETS.TARGET
        domains.append((f"{display_name(cfg, target)} test",
                        load_split(cfg, target, "query") + load_split(cfg, target, "gallery")))
    return domains


def visualize_features(cfg, out, what="both", per_domain=300, num_ids=12, seed=0):
    """Write the two-panel t-SNE PNG to ``out``; returns (points N x 2, domain index per point, identities)."""
    if what not in CHOICES:
        raise UserError(f"--what {what}: choose one of {', '.join(CHOICES)}")
    device = resolve_device(cfg.MODEL.DEVICE)
    precision = resolve_precision(cfg, device)
    model = precision.prepare_model(build_test_model(cfg))
    names, records, domains = [], [], []
    for index, (name, found) in enumerate(domain_records(cfg, what)):
        picked = sample_identities(found, per_domain, seed)
        names.append(name)
        records += picked
        domains += [index] * len(picked)
    if len(records) < 5:
        raise UserError(f"only {len(records)} images to draw; t-SNE needs at least 5")
    logger.info("features of %d images (%s)", len(records), ", ".join(
        f"{name}: {domains.count(index)}" for index, name in enumerate(names)))
    feats = extract_features(model, records_loader(cfg, records), precision, flip=cfg.TEST.FLIP).features
    if normalises_features(cfg):
        feats = F.normalize(feats, dim=1)
    points = tsne_2d(feats.numpy(), seed)
    identities = [(domain, record.pid) for domain, record in zip(domains, records)]
    rng = np.random.default_rng(seed)
    distinct = sorted(set(identities))
    highlighted = [distinct[i] for i in sorted(rng.choice(len(distinct), min(num_ids, len(distinct)),
                                                          replace=False))]
    title = f"t-SNE of the test features of {os.path.basename(cfg.TEST.WEIGHT)}: {len(records)} images"
    save_feature_map(out, points, domains, identities, names, highlighted, title)
    logger.info("wrote %s", out)
    return points, np.asarray(domains), identities
