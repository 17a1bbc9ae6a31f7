"""Disentanglement diagnostics, measured at every evaluation (SOLVER.DIAGNOSTICS).

On a fixed set of un-augmented training images (identities drawn in turn
from each domain, up to 4 images each), split by identity into two halves:
- domain_probe_feature: a fresh linear probe fitted on one half's test-time
  features predicts the other half's domain. Chance is domain_chance (the
  largest domain's share of that half); lower means a more domain-invariant
  feature, the point of both levels.
With the image level on, also:
- domain_probe_c: the same probe on pooled c (mean and max of each channel).
  Chance is best: c should not tell the domain.
- swap_domain_acc: the share of cross-domain swaps x_ij, as the re-ID model
  sees them (DISENTANGLE.IMAGE.SWAP_IMAGE), that an independent classifier,
  trained on real source images only (never on swaps, and not C_dom),
  assigns to domain j. judge_real_acc is that classifier's accuracy
  on the held-out half of the set, which it never trained on, so that a low
  swap_domain_acc cannot hide a classifier that fails on real images too.
- swap_id_rank1: rank-1 of each swap x_ij, as a query against the set's real
  images other than x_i, under the current re-ID model: whether a swap keeps
  its vehicle. real_id_rank1 is the same for the real x_i, its ceiling.
- mi_grad_ratio: the norm of img_mi's gradient on the encoders over
  img_rec's, both weighted: whether the MINE term acts at all.
"""
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from data.image_dataset import ImageDataset
from data.transforms import build_transforms, input_size
from layers.image_disentangle_loss import l1_distance, mutual_information_penalty
from modeling.domain_classifier import DomainClassifier
from modeling.domain_pairing import pair_across_domains
from utils.linear_probe import linear_probe_accuracy

from .runtime import derived_seed

logger = logging.getLogger("jifd.diagnostics")

IMAGES_PER_IDENTITY = 4
MAX_IMAGES = 384
JUDGE_TRAIN_IMAGES = 1024
JUDGE_STEPS = 200
JUDGE_BATCH = 64


def format_diagnostics(values):
    """One log line: each diagnostic to 3 decimals."""
    return ", ".join(f"{name} {value:.3f}" for name, value in values.items())


def pick_diagnostic_records(records, seed, max_images=MAX_IMAGES, per_identity=IMAGES_PER_IDENTITY):
    """Up to ``max_images`` training records: identities with 2+ images, taken from each domain in turn.

    Returns (records, half): half[k] is 0 or 1, alternating over each domain's identities, so that
    both halves hold every domain and no identity is in both.
    """
    rng = np.random.default_rng(seed)
    by_pid = {}
    for record in records:
        by_pid.setdefault(record.pid, []).append(record)
    by_domain = {}
    for pid in sorted(by_pid):
        if len(by_pid[pid]) >= 2:
            by_domain.setdefault(by_pid[pid][0].domain, []).append(pid)
    queues = [list(rng.permutation(by_domain[domain])) for domain in sorted(by_domain)]
    picked, half, taken = [], [], [0] * len(queues)
    while len(picked) < max_images and any(queues):
        for position, queue in enumerate(queues):
            if not queue or len(picked) >= max_images:
                continue
            images = by_pid[int(queue.pop(0))]
            chosen = rng.permutation(len(images))[:per_identity]
            picked += [images[index] for index in sorted(chosen)]
            half += [taken[position] % 2] * len(chosen)
            taken[position] += 1
    return picked, torch.tensor(half)


def _load(records, cfg):
    dataset = ImageDataset(records, build_transforms(cfg, is_train=False), target_size=input_size(cfg, False),
                           draft=cfg.INPUT.JPEG_DRAFT, is_train=False, strict=False)
    return torch.stack([dataset[index]["images"] for index in range(len(dataset))])


def _probe(features, labels, half, num_classes):
    fit, test = half == 0, half == 1
    return linear_probe_accuracy(features[fit], labels[fit], features[test], labels[test], num_classes)


def _rank1(queries, query_pids, gallery, gallery_pids, excluded):
    """Rank-1 of each query against the gallery with gallery[excluded[q]] left out (cosine distance)."""
    similarity = F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).t()
    similarity[torch.arange(len(queries)), excluded] = float("-inf")
    return float((gallery_pids[similarity.argmax(dim=1)] == query_pids).float().mean())


class Diagnostics:
    """``diagnostics(model) -> dict`` of the numbers above; built once, before training."""

    def __init__(self, cfg, data, device_setup, image_level=None):
        started = time.time()
        self.device_setup = device_setup
        self.image_level = image_level
        self.batch_size = cfg.TEST.IMS_PER_BATCH
        self.num_domains = data.num_domains
        seed = derived_seed(cfg.SOLVER.SEED, "diagnostics")
        records, self.half = pick_diagnostic_records(data.train_records, seed)
        self.pids = torch.tensor([record.pid for record in records])
        self.domains = torch.tensor([record.domain for record in records])
        self.images = _load(records, cfg)
        held_out = self.domains[self.half == 1]
        self.chance = float(torch.bincount(held_out, minlength=self.num_domains).max()) / max(1, len(held_out))
        self.judge = None
        if image_level is not None:
            held_out = {id(record) for record, half in zip(records, self.half.tolist()) if half == 1}
            self.judge = self._train_judge(cfg, [r for r in data.train_records if id(r) not in held_out], seed)
            generator = torch.Generator().manual_seed(seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.partner = pair_across_domains(self.domains)
            self.shuffle = torch.randperm(len(records), generator=generator)
        logger.info("diagnostics on %d training images of %d identities (set up in %.1f s)",
                    len(records), len(set(self.pids.tolist())), time.time() - started)

    def _train_judge(self, cfg, records, seed):
        """The independent domain classifier, trained on real images at the generator's size."""
        rng = np.random.default_rng(seed)
        picked = [records[index] for index in sorted(rng.permutation(len(records))[:JUDGE_TRAIN_IMAGES])]
        disentangler = self.image_level.disentangler
        device = disentangler.pixel_mean.device
        with torch.no_grad():
            images = torch.cat([disentangler.from_reid(chunk.to(device))
                                for chunk in _load(picked, cfg).split(self.batch_size)])
        domains = torch.tensor([record.domain for record in picked], device=device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            judge = DomainClassifier(self.num_domains).to(device)
            optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)
            judge.train()
            for _ in range(JUDGE_STEPS):
                batch = torch.randint(len(picked), (JUDGE_BATCH,)).to(device)
                x = images[batch]
                flip = (torch.rand(len(batch)) < 0.5).to(device)
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
                loss = F.cross_entropy(judge(x), domains[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return judge.eval()

    @torch.no_grad()
    def _features(self, model, images):
        feats = []
        for chunk in images.split(self.batch_size):
            with self.device_setup.autocast():
                feats.append(model(self.device_setup.images(chunk)).float().cpu())
        return torch.cat(feats)

    def __call__(self, model):
        started = time.time()
        was_training = model.training
        model.eval()
        features = self._features(model, self.images)
        result = {"domain_probe_feature": _probe(features, self.domains, self.half, self.num_domains),
                  "domain_chance": self.chance}
        if self.image_level is not None:
            result.update(self._image_level_diagnostics(model, features))
        model.train(was_training)
        result["seconds"] = time.time() - started
        return result

    def _image_level_diagnostics(self, model, real_features):
        net = self.image_level.disentangler
        was_training = net.training
        net.eval()
        device = net.pixel_mean.device
        size = self.images.shape[-2:]
        codes, swapped_features, swap_calls, real_calls = [], [], [], []
        with torch.no_grad():
            x = torch.cat([net.from_reid(chunk.to(device)) for chunk in self.images.split(self.batch_size)])
            s = net.encode_domain(x)
            for index in torch.arange(len(x)).split(self.batch_size):
                c = net.encode_id(x[index])
                codes.append(net.pool_id(c).float().cpu())
                # The swaps as the re-ID model sees them (DISENTANGLE.IMAGE.SWAP_IMAGE).
                swaps = net.decode(c, s[self.partner[index]])
                if self.image_level.swap_onto_real:
                    seen = net.swap_onto(self.images[index].to(device), swaps, net.decode(c, s[index]))
                else:
                    seen = net.to_reid(swaps, size)
                swap_calls.append(self.judge(net.from_reid(seen)).argmax(dim=1).cpu())
                real_calls.append(self.judge(x[index]).argmax(dim=1).cpu())
                swapped_features.append(self._features(model, seen))
        cross = self.domains[self.partner] != self.domains
        swap_calls, real_calls = torch.cat(swap_calls), torch.cat(real_calls)
        own = torch.arange(len(x))
        result = {
            "domain_probe_c": _probe(torch.cat(codes), self.domains, self.half, self.num_domains),
            "swap_domain_acc": float((swap_calls == self.domains[self.partner])[cross].float().mean()),
            "judge_real_acc": float((real_calls == self.domains)[self.half == 1].float().mean()),
            "swap_id_rank1": _rank1(torch.cat(swapped_features), self.pids, real_features, self.pids, own),
            "real_id_rank1": _rank1(real_features, self.pids, real_features, self.pids, own),
            "mi_grad_ratio": self._mi_grad_ratio(net, x[:JUDGE_BATCH]),
        }
        net.train(was_training)
        return result

    def _mi_grad_ratio(self, net, x):
        criterion = self.image_level.criterion
        if not criterion.w_mi or not criterion.w_rec:
            return float("nan")
        encoders = list(net.id_encoder.parameters()) + list(net.domain_encoder.parameters())
        with torch.enable_grad():
            c, s = net.encode_id(x), net.encode_domain(x)
            rec = criterion.w_rec * l1_distance(net.decode(c, s), x)
            shuffle = self.shuffle[self.shuffle < len(x)].to(x.device)
            mi = criterion.w_mi * mutual_information_penalty(net.statistics_net, net.pool_id(c), s, shuffle)
            norms = []
            for term in (mi, rec):
                grads = torch.autograd.grad(term, encoders, allow_unused=True, retain_graph=True)
                norms.append(torch.sqrt(sum(g.float().pow(2).sum() for g in grads if g is not None)))
        return float(norms[0] / norms[1].clamp(min=1e-12))
