"""Each demo dataset's look: the domain gap between the three generated datasets.

Per dataset: its seed code and the camera numbers it draws from (VeRi 1..20,
VehicleX 6..36, Opri 1..64, as the real datasets number them); the image long
side (px); the vehicle kinds and their weights; the spread of the cameras
(elevation in degrees, distance in vehicle sizes, colour cast, brightness);
how far a shot strays from its camera's set-up (view jitter in degrees, scene
jitter as a share of the image); and the look (flat shading, noise, blur,
texture, JPEG quality, background). VeRi is photo-like, VehicleX flat
synthetic, Opri shows trucks only, at toll booths, in larger images (which
exercises the JPEG draft decoding of the loader). Opri's booths sit under a
lit canopy and their cameras are mounted alike, so they vary less than street
cameras, while trucks stop anywhere in a lane.

The dataset names are the entries of the dataset table (config/defaults.py)
that the generator writes; their folders and split folders come from there.
"""
import numpy as np

_MIXED = (("car", 0.25), ("van", 0.18), ("bus", 0.12), ("truck", 0.45))
STYLES = {
    "veri": {
        "code": 1, "cameras": (1, 20),
        "long_side": (104, 128), "kinds": _MIXED,
        "elevation": (5, 35), "distance": (2.5, 6.0), "cast": 0.08, "brightness": (0.7, 1.2),
        "view_jitter": 6.0, "scene_jitter": 0.2,
        "flat": False, "noise": (3.0, 8.0), "blur": (0.3, 0.9), "texture": 0.14, "quality": (80, 92),
        "background": "street"},
    "vehiclex": {
        "code": 2, "cameras": (6, 36),
        "long_side": (96, 112), "kinds": _MIXED,
        "elevation": (5, 35), "distance": (2.5, 6.0), "cast": 0.05, "brightness": (0.85, 1.15),
        "view_jitter": 6.0, "scene_jitter": 0.1,
        "flat": True, "noise": (0.0, 0.0), "blur": (0.0, 0.0), "texture": 0.0, "quality": (95, 95),
        "background": "plain"},
    "opri": {
        "code": 3, "cameras": (1, 64),
        "long_side": (208, 256), "kinds": (("truck", 1.0),),
        "elevation": (15, 30), "distance": (3.5, 6.0), "cast": 0.04, "brightness": (0.85, 1.1),
        "view_jitter": 12.0, "scene_jitter": 0.3,
        "flat": False, "noise": (2.0, 5.0), "blur": (0.3, 0.8), "texture": 0.08, "quality": (88, 94),
        "background": "toll"},
}
DATASET_NAMES = tuple(STYLES)
# Seed tags keep the random streams of plans, identities, cameras and images apart.
PLAN_SEED, IDENTITY_SEED, CAMERA_SEED, IMAGE_SEED = 11, 12, 13, 14


def random_stream(seed, dataset, tag, *keys):
    """The generator of one thing of ``dataset`` (a plan, an identity, a camera, an image), seeded by
    (seed, dataset, tag, keys) alone: the files do not depend on the order or the number of processes that
    render them."""
    return np.random.default_rng([seed, STYLES[dataset]["code"], tag, *keys])
