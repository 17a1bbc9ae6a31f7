"""The demo plans: which identity, camera and split each file is, and how it is named.

Splits and names follow the real datasets: VeRi's training identities apart
from its test identities, each test identity's queries on a few cameras and
its gallery on all of them; VehicleX a training split only; Opri one query
per test identity with its gallery on other cameras. VeRi and Opri name files
``0002_c002_00030600_0.jpg``, VehicleX ``0001_c001_33.jpg``.
"""
from dataclasses import dataclass

import numpy as np

from .styles import DATASET_NAMES, PLAN_SEED, STYLES, random_stream

DEFAULT_COUNTS = {
    "veri_train_ids": 150,
    "veri_test_ids": 30,
    "veri_images_per_id": 8,
    "veri_cameras": 10,
    "veri_query_cameras": 2,
    "vehiclex_ids": 100,
    "vehiclex_images_per_id": 10,
    "vehiclex_cameras": 12,
    "opri_train_ids": 12,
    "opri_train_images_per_id": 5,
    "opri_test_ids": 40,
    "opri_gallery_min": 5,
    "opri_gallery_max": 8,
    "opri_cameras": 12,
}
# Named sizes: "demo" trains and tests in minutes; "bench" keeps the demo's sources and
# domain gap but has an opri-style test set of 250 query identities (about 1,600 gallery
# images) and 100 veri-style test identities (a source-domain validation split), so that
# a 2-point mAP difference is not lost in the noise of a few dozen queries.
PRESETS = {
    "demo": {},
    "bench": {"opri_test_ids": 250, "veri_test_ids": 100},
}
# Counts that `scale` multiplies (identities); the others are per identity.
_SCALED_COUNTS = ("veri_train_ids", "veri_test_ids", "vehiclex_ids", "opri_train_ids", "opri_test_ids")
# The smallest value of each count that gives every split its images.
_SMALLEST = {"veri_cameras": 2, "vehiclex_cameras": 1, "opri_cameras": 2, "veri_images_per_id": 2,
             "vehiclex_images_per_id": 1, "opri_train_images_per_id": 1, "opri_gallery_min": 1,
             "veri_test_ids": 1, "opri_test_ids": 1, "veri_query_cameras": 1}


@dataclass(frozen=True)
class Shot:
    """One file to render: where it goes and what it shows."""

    dataset: str
    split: str
    name: str
    pid: int
    cam: int
    index: int


def veri_name(pid, cam, index, rng_start):
    return f"{pid:04d}_c{cam:03d}_{rng_start + 25 * index:08d}_0.jpg"


def vehiclex_name(pid, cam, number):
    return f"{pid:04d}_c{cam:03d}_{number}.jpg"


# A file name of each dataset, to check the configured patterns against.
EXAMPLE_NAMES = {"veri": veri_name(1, 1, 0, 30600), "vehiclex": vehiclex_name(1, 6, 33),
                 "opri": veri_name(1, 1, 0, 30600)}


def _spread(rng, total, cams):
    """Images per camera: at least one on each, the rest at random."""
    extra = rng.multinomial(total - len(cams), np.full(len(cams), 1.0 / len(cams)))
    return {int(cam): 1 + int(n) for cam, n in zip(cams, extra)}


def _identity_cameras(rng, cams, images):
    smallest = min(3, len(cams), images)
    count = int(rng.integers(smallest, min(len(cams), images) + 1))
    return sorted(rng.choice(cams, count, replace=False).tolist())


def _choose_cameras(rng, dataset, count):
    low, high = STYLES[dataset]["cameras"]
    return sorted(rng.choice(np.arange(low, high + 1), count, replace=False).tolist())


def _identities_and_cameras(seed, dataset, train_ids, test_ids, cameras):
    """(every pid, the training pids, the dataset's cameras), drawn from the dataset's plan stream."""
    rng = random_stream(seed, dataset, PLAN_SEED)
    total = train_ids + test_ids
    pids = rng.permutation(np.arange(1, total + 1))
    train = set(pids[:train_ids].tolist())
    return range(1, total + 1), train, _choose_cameras(rng, dataset, cameras)


def _veri_named_shots(dataset, pid, splits_by_camera, prng):
    """Shots of one identity named like VeRi's files; ``splits_by_camera``: (camera, each image's split)."""
    shots = []
    for cam, splits in splits_by_camera:
        start = int(prng.integers(0, 90_000_000))
        shots += [Shot(dataset, split, veri_name(pid, cam, index, start), pid, cam, index)
                  for index, split in enumerate(splits)]
    return shots


def _veri_splits(prng, pid, training, cams, counts):
    """VeRi: a training identity's images all train; a test identity's first image on a few of its cameras is
    a query, the rest gallery."""
    id_cams = _identity_cameras(prng, cams, counts["veri_images_per_id"])
    per_cam = _spread(prng, counts["veri_images_per_id"], id_cams)
    query_cams = set()
    if not training:
        wanted = min(counts["veri_query_cameras"], len(id_cams) - 1)
        query_cams = set(prng.choice(id_cams, wanted, replace=False).tolist())
    return [(cam, ["train" if training else ("query" if cam in query_cams and index == 0 else "gallery")
                   for index in range(n)]) for cam, n in per_cam.items()]


def _plan_vehiclex(seed, counts):
    cams = _choose_cameras(random_stream(seed, "vehiclex", PLAN_SEED), "vehiclex", counts["vehiclex_cameras"])
    shots = []
    for pid in range(1, counts["vehiclex_ids"] + 1):
        prng = random_stream(seed, "vehiclex", PLAN_SEED, pid)
        id_cams = _identity_cameras(prng, cams, counts["vehiclex_images_per_id"])
        number = int(prng.integers(0, 50))
        for cam, n in _spread(prng, counts["vehiclex_images_per_id"], id_cams).items():
            for index in range(n):
                shots.append(Shot("vehiclex", "train", vehiclex_name(pid, cam, number), pid, cam, index))
                number += 1
    return shots


def _opri_splits(prng, pid, training, cams, counts):
    """Opri: a training identity's images all train; a test identity has one query, its gallery images on
    other cameras."""
    if training:
        images = counts["opri_train_images_per_id"]
        plan = {cam: ("train", n) for cam, n in _spread(prng, images, _identity_cameras(prng, cams, images)).items()}
    else:
        query_cam = int(prng.choice(cams))
        others = [cam for cam in cams if cam != query_cam]
        images = int(prng.integers(counts["opri_gallery_min"], counts["opri_gallery_max"] + 1))
        gallery_cams = sorted(prng.choice(others, int(prng.integers(min(2, len(others), images),
                                                                    min(4, len(others), images) + 1)),
                                          replace=False).tolist())
        plan = {cam: ("gallery", n) for cam, n in _spread(prng, images, gallery_cams).items()}
        plan[query_cam] = ("query", 1)
    return [(cam, [plan[cam][0]] * plan[cam][1]) for cam in sorted(plan)]


def _plan_with_test_identities(dataset, splits_of):
    """The planner of a dataset with training and test identities, named like VeRi's files; ``splits_of``
    gives each identity's (camera, each image's split) from its own stream."""
    def plan(seed, counts):
        pids, train, cams = _identities_and_cameras(seed, dataset, counts[f"{dataset}_train_ids"],
                                                    counts[f"{dataset}_test_ids"], counts[f"{dataset}_cameras"])
        shots = []
        for pid in pids:
            prng = random_stream(seed, dataset, PLAN_SEED, pid)
            shots += _veri_named_shots(dataset, pid, splits_of(prng, pid, pid in train, cams, counts), prng)
        return shots

    return plan


_PLANNERS = {"veri": _plan_with_test_identities("veri", _veri_splits), "vehiclex": _plan_vehiclex,
             "opri": _plan_with_test_identities("opri", _opri_splits)}


def resolve_counts(scale=1.0, preset="demo", **counts):
    """DEFAULT_COUNTS with the preset's and then ``counts``' values, identities multiplied by ``scale``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown demo preset {preset!r}; known: {', '.join(PRESETS)}")
    unknown = sorted(set(counts) - set(DEFAULT_COUNTS))
    if unknown:
        raise TypeError(f"unknown demo count(s) {unknown}; known: {sorted(DEFAULT_COUNTS)}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    resolved = {**DEFAULT_COUNTS, **PRESETS[preset]}
    for key in _SCALED_COUNTS:
        resolved[key] = max(2, int(round(resolved[key] * scale)))
    resolved.update(counts)
    for key, smallest in _SMALLEST.items():
        if resolved[key] < smallest:
            raise ValueError(f"{key} must be at least {smallest}, got {resolved[key]}")
    if resolved["opri_gallery_max"] < resolved["opri_gallery_min"]:
        raise ValueError("opri_gallery_max must be at least opri_gallery_min")
    for dataset in DATASET_NAMES:
        key = f"{dataset}_cameras"
        low, high = STYLES[dataset]["cameras"]
        if resolved[key] > high - low + 1:
            raise ValueError(f"{key} must be at most {high - low + 1} (cameras {low}..{high}), got {resolved[key]}")
    return resolved


def plan_shots(seed, counts):
    """Every file of the three datasets, in a fixed order."""
    return [shot for dataset in DATASET_NAMES for shot in _PLANNERS[dataset](seed, counts)]
