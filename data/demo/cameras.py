"""The demo cameras: each camera's fixed viewpoint, framing, lighting and background.

Each camera has its own set-up, so that cameras matter: the vehicle is seen
from its own angle, in its own light and colour cast, in front of its own
scene (a street, a plain studio backdrop or a toll booth).
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .parts import GLASS, ngon, rect
from .styles import CAMERA_SEED, STYLES, random_stream


@dataclass(frozen=True)
class Camera:
    azimuth: float  # degrees; 0 sees the left side, -90 the front, 90 the rear
    elevation: float  # degrees above the horizon
    distance: float  # camera distance in vehicle sizes (perspective strength)
    fill: float  # fraction of the image the vehicle spans
    long_side: int  # pixels
    light: tuple  # unit vector towards the light (world frame)
    gains: tuple  # per-channel colour cast times brightness
    quality: int  # JPEG quality
    background: tuple  # (polygon in [0, 1]^2 image coordinates, rgb) in drawing order


def _muted(rng, low, high, tint=14.0):
    grey = rng.uniform(low, high)
    return tuple(int(np.clip(grey + rng.normal(0, tint), 0, 255)) for _ in range(3))


def _street(rng):
    horizon = rng.uniform(0.2, 0.55)
    sky = (int(rng.uniform(120, 190)), int(rng.uniform(140, 200)), int(rng.uniform(170, 230)))
    items = [(rect(-1, 2, -1, horizon), sky)]
    x = rng.uniform(-0.2, 0.0)
    while x < 1.0:
        width = rng.uniform(0.15, 0.4)
        top = horizon - rng.uniform(0.05, horizon)
        if rng.random() < 0.3:
            items.append((ngon(x + width / 2, horizon - width * 0.3, width * 0.45, 10),
                          (int(rng.uniform(30, 70)), int(rng.uniform(80, 130)), int(rng.uniform(30, 60)))))
        else:
            items.append((rect(x, x + width, top, horizon), _muted(rng, 90, 200)))
        x += width + rng.uniform(0.0, 0.1)
    items.append((rect(-1, 2, horizon, 2), _muted(rng, 70, 120)))
    line = (235, 235, 230) if rng.random() < 0.7 else (230, 200, 60)
    for _ in range(int(rng.integers(1, 4))):
        x0 = rng.uniform(-0.3, 1.0)
        lean = rng.uniform(-0.6, 0.6)
        items.append(([(x0, horizon), (x0 + 0.02, horizon), (x0 + 0.1 + 2 * lean, 2.0), (x0 + 2 * lean, 2.0)], line))
    return tuple(items)


def _plain(rng):
    colour = _muted(rng, 90, 235)
    if rng.random() < 0.5:
        return ((rect(-1, 2, -1, 2), colour),)
    horizon = rng.uniform(0.3, 0.6)
    return ((rect(-1, 2, -1, horizon), colour), (rect(-1, 2, horizon, 2), _muted(rng, 80, 200)))


def _toll_booth(rng):
    # One operator's stations: the same materials and booth colours
    # everywhere, laid out differently at each camera.
    horizon = rng.uniform(0.35, 0.6)
    items = [(rect(-1, 2, -1, horizon), _muted(rng, 150, 180, tint=4.0)),
             (rect(-1, 2, horizon, 2), _muted(rng, 160, 180, tint=3.0))]
    canopy = rng.uniform(0.08, 0.2)
    items.append((rect(-1, 2, -1, canopy), _muted(rng, 55, 75, tint=3.0)))
    for k in range(int(rng.integers(2, 5))):
        x = rng.uniform(0.05, 0.85)
        items.append((rect(x, x + 0.1, canopy * 0.4, canopy * 0.7), (250, 250, 235)))
    left = rng.random() < 0.5
    x0 = rng.uniform(0.0, 0.1) if left else rng.uniform(0.7, 0.82)
    booth = ((236, 236, 230), (230, 200, 50))[int(rng.integers(2))]
    bottom = horizon + rng.uniform(0.1, 0.25)
    items.append((rect(x0, x0 + 0.2, canopy + 0.05, bottom), booth))
    items.append((rect(x0 + 0.03, x0 + 0.17, canopy + 0.12, canopy + 0.3), GLASS))
    items.append((rect(x0 - 0.01, x0 + 0.21, canopy + 0.02, canopy + 0.07), (60, 60, 64)))
    bar_y = horizon + rng.uniform(-0.1, 0.05)
    bar_x0, bar_x1 = (x0 + 0.2, x0 + 0.75) if left else (x0 - 0.55, x0)
    segments = 7
    step = (bar_x1 - bar_x0) / segments
    for k in range(segments):
        colour = (210, 30, 30) if k % 2 == 0 else (245, 245, 245)
        items.append((rect(bar_x0 + k * step, bar_x0 + (k + 1) * step, bar_y, bar_y + 0.025), colour))
    pillar = rng.uniform(0.25, 0.7)
    for k in range(6):
        colour = (230, 190, 30) if k % 2 == 0 else (25, 25, 25)
        y = canopy + (bottom - canopy) * k / 6
        items.append((rect(pillar, pillar + 0.04, y, y + (bottom - canopy) / 6), colour))
    lane = rng.uniform(0.1, 0.9)
    items.append(([(lane, horizon), (lane + 0.015, horizon), (lane + 0.1, 2.0), (lane + 0.04, 2.0)],
                  (230, 200, 60)))
    return tuple(items)


_BACKGROUNDS = {"street": _street, "plain": _plain, "toll": _toll_booth}
# Opri's toll-booth cameras are mounted alike: three-quarter views of either
# side, from the front or the rear.
_TOLL_AZIMUTHS = (-45.0, -135.0, 45.0, 135.0)


@lru_cache(maxsize=1024)
def make_camera(seed, dataset, cam):
    """The fixed set-up of camera ``cam`` of ``dataset``."""
    style = STYLES[dataset]
    rng = random_stream(seed, dataset, CAMERA_SEED, cam)
    if dataset == "opri":
        azimuth = _TOLL_AZIMUTHS[int(rng.integers(len(_TOLL_AZIMUTHS)))] + rng.normal(0, 8)
    else:
        azimuth = rng.uniform(-180, 180)
    elevation = rng.uniform(*style["elevation"])
    light = np.array([rng.normal(), rng.normal(), abs(rng.normal()) + 0.6])
    spread = style["cast"]
    cast = np.clip(1.0 + rng.normal(0, spread, 3), 1 - 2 * spread, 1 + 2 * spread)
    brightness = rng.uniform(*style["brightness"])
    low, high = style["long_side"]
    q_low, q_high = style["quality"]
    return Camera(
        azimuth=float(azimuth), elevation=float(elevation), distance=float(rng.uniform(*style["distance"])),
        fill=float(rng.uniform(0.84, 0.96)), long_side=int(rng.integers(low, high + 1)),
        light=tuple(light / np.linalg.norm(light)), gains=tuple(cast / cast.mean() * brightness),
        quality=int(rng.integers(q_low, q_high + 1)), background=_BACKGROUNDS[style["background"]](rng))
