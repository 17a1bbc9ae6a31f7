"""Generated demo datasets: drawn vehicles in the real folder layouts.

None of the real datasets can be downloaded on the build machines, so the
demo, the tests and the benchmarks use trees of generated JPEGs that are laid
out and named exactly like VeRi-776, VehicleX and Opri.

Why the images look the way they do:
- Identity lives in the vehicle: body shape (car, van, bus, truck and their
  variants), colours and markings. Body colours are drawn with real-world
  frequencies (white, silver and black dominate), so many identities share a
  colour and only shape and markings tell them apart.
- Each camera has its own viewpoint (the vehicle is a set of extruded 3D
  parts, projected), framing, lighting and background, so that cameras matter.
- Each dataset has its own rendering style (the domain gap): VeRi is
  photo-like (texture, noise, blur), VehicleX is flat synthetic, Opri shows
  trucks only, at toll booths, in larger images (which exercises the JPEG
  draft decoding of the loader).
- Trucks are among VeRi's and VehicleX's identities too, so that what a model
  learns there can transfer to Opri.

Every image draws its randomness from its own generator seeded with (seed,
dataset, identity, camera, index): the files do not depend on the order or
the number of processes that render them.
"""
import json
import logging
import math
import os
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from config import ConfigError, get_default_cfg
from config.dataset_table import SPLIT_KEYS
from utils.errors import UserError

logger = logging.getLogger("jifd.data")

# Bump when the pictures change, so that ensure_demo_data regenerates old trees.
GENERATOR_VERSION = 2
MARKER_NAME = ".jifd_demo_seed"
DATASET_NAMES = ("veri", "vehiclex", "opri")

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

# Camera numbers each dataset draws its cameras from (VeRi 1..20, VehicleX 6..36, Opri 1..64).
_CAMERA_RANGES = {"veri": (1, 20), "vehiclex": (6, 36), "opri": (1, 64)}
_DOMAIN_CODES = {"veri": 1, "vehiclex": 2, "opri": 3}
# Seed tags keep the random streams of plans, identities, cameras and images apart.
_PLAN, _IDENTITY, _CAMERA, _IMAGE = 11, 12, 13, 14

# (name, rgb, weight): body colours with roughly real-world frequencies.
BODY_COLOURS = (
    ("white", (232, 232, 228), 0.20),
    ("silver", (176, 179, 184), 0.13),
    ("black", (32, 32, 36), 0.13),
    ("grey", (108, 110, 115), 0.08),
    ("red", (186, 32, 30), 0.10),
    ("blue", (34, 68, 168), 0.10),
    ("green", (38, 118, 58), 0.06),
    ("yellow", (228, 196, 40), 0.06),
    ("orange", (228, 116, 30), 0.05),
    ("brown", (112, 72, 42), 0.04),
    ("sky", (112, 170, 220), 0.03),
    ("purple", (108, 48, 128), 0.02),
    ("teal", (24, 140, 138), 0.01),
    ("pink", (222, 112, 160), 0.01),
    ("lime", (150, 200, 44), 0.01),
)
_COLOUR_RGB = np.array([c[1] for c in BODY_COLOURS], dtype=np.float64)
_COLOUR_WEIGHTS = np.array([c[2] for c in BODY_COLOURS]) / sum(c[2] for c in BODY_COLOURS)
GLASS = (44, 54, 70)
TYRE = (26, 26, 28)
CHASSIS = (48, 48, 50)
LIGHT = (245, 240, 210)
TAIL_LIGHT = (200, 30, 30)
AMBER = (240, 160, 30)

# Per dataset: image long side (px); vehicle kinds and their weights; the
# spread of the cameras (elevation in degrees, distance in vehicle sizes,
# colour cast, brightness); how far a shot strays from its camera's set-up
# (view jitter in degrees, scene jitter as a share of the image); the look.
# Opri's booths sit under a lit canopy and their cameras are mounted alike,
# so they vary less than street cameras, while trucks stop anywhere in a lane.
_MIXED = (("car", 0.25), ("van", 0.18), ("bus", 0.12), ("truck", 0.45))
STYLES = {
    "veri": {
        "long_side": (104, 128), "kinds": _MIXED,
        "elevation": (5, 35), "distance": (2.5, 6.0), "cast": 0.08, "brightness": (0.7, 1.2),
        "view_jitter": 6.0, "scene_jitter": 0.2,
        "flat": False, "noise": (3.0, 8.0), "blur": (0.3, 0.9), "texture": 0.14, "quality": (80, 92),
        "background": "street"},
    "vehiclex": {
        "long_side": (96, 112), "kinds": _MIXED,
        "elevation": (5, 35), "distance": (2.5, 6.0), "cast": 0.05, "brightness": (0.85, 1.15),
        "view_jitter": 6.0, "scene_jitter": 0.1,
        "flat": True, "noise": (0.0, 0.0), "blur": (0.0, 0.0), "texture": 0.0, "quality": (95, 95),
        "background": "plain"},
    "opri": {
        "long_side": (208, 256), "kinds": (("truck", 1.0),),
        "elevation": (15, 30), "distance": (3.5, 6.0), "cast": 0.04, "brightness": (0.85, 1.1),
        "view_jitter": 12.0, "scene_jitter": 0.3,
        "flat": False, "noise": (2.0, 5.0), "blur": (0.3, 0.8), "texture": 0.08, "quality": (88, 94),
        "background": "toll"},
}
_SUPERSAMPLE = 2


# -----------------------------------------------------------------------------
# Vehicles: parts extruded along the width, with markings on their faces
# -----------------------------------------------------------------------------
@dataclass
class Part:
    """A prism: a side profile (x along the length, z up; counter-clockwise)
    extruded across the width from y0 to y1.

    side_marks are polygons in (x, z) drawn on both side faces; edge_marks[i]
    are polygons in (s, t) on the face of profile edge i (s across the width,
    t along the edge, upwards on vertical faces); edge_colours[i] recolours
    the face of edge i (glass, a contrasting roof).
    """

    profile: list
    y0: float
    y1: float
    colour: tuple
    side_marks: list = field(default_factory=list)
    edge_marks: dict = field(default_factory=dict)
    edge_colours: dict = field(default_factory=dict)


def _box(x0, x1, z0, z1, y0, y1, colour):
    # Edges: 0 bottom, 1 front, 2 top, 3 rear.
    return Part([(x0, z0), (x1, z0), (x1, z1), (x0, z1)], y0, y1, colour)


_FRONT, _TOP, _REAR = 1, 2, 3


def _rect(a0, a1, b0, b1):
    return [(a0, b0), (a1, b0), (a1, b1), (a0, b1)]


def _ngon(cx, cz, radius, sides=12, phase=0.0):
    return [(cx + radius * math.cos(phase + 2 * math.pi * k / sides),
             cz + radius * math.sin(phase + 2 * math.pi * k / sides)) for k in range(sides)]


def _pick_colour(rng, exclude=(), evenness=1.0):
    """Index of a body colour, by frequency (flattened by ``evenness`` < 1), not in ``exclude``."""
    weights = _COLOUR_WEIGHTS ** evenness
    weights[list(exclude)] = 0.0
    return int(rng.choice(len(weights), p=weights / weights.sum()))


# Fleet liveries: well-separated colours, used evenly.
_LIVERY_COLOURS = tuple(k for k, colour in enumerate(BODY_COLOURS) if colour[0] in (
    "white", "silver", "black", "red", "blue", "green", "yellow", "orange", "purple", "teal", "pink"))


def _pick_livery(rng, exclude=()):
    choices = [k for k in _LIVERY_COLOURS if k not in exclude]
    return choices[int(rng.integers(len(choices)))]


def _rgb(index):
    return tuple(int(v) for v in _COLOUR_RGB[index])


def _logo(rng, cx, cz, size):
    """A logo polygon: disc, diamond, triangle or square."""
    shape = rng.integers(4)
    if shape == 0:
        return _ngon(cx, cz, size, 14)
    if shape == 1:
        return _ngon(cx, cz, size * 1.15, 4)
    if shape == 2:
        return _ngon(cx, cz, size * 1.2, 3, math.pi / 2)
    return _ngon(cx, cz, size * 1.1, 4, math.pi / 4)


def _side_markings(rng, x0, x1, z0, z1, body_index):
    """1-2 markings inside the side rectangle [x0, x1] x [z0, z1]."""
    marks = []
    length, height = x1 - x0, z1 - z0
    kinds = rng.choice(["stripe", "stripes", "band", "logo", "text", "swoosh", "lower"],
                       size=int(rng.integers(1, 3)), replace=False)
    for kind in kinds:
        colour = _rgb(_pick_colour(rng, exclude=[body_index]))
        if kind == "stripe":
            zc = z0 + height * rng.uniform(0.2, 0.8)
            half = height * rng.uniform(0.05, 0.1)
            marks.append((_rect(x0, x1, zc - half, zc + half), colour))
        elif kind == "stripes":
            zc = z0 + height * rng.uniform(0.25, 0.7)
            half = height * 0.05
            for offset in (-0.14, 0.14):
                zs = zc + offset * height
                marks.append((_rect(x0, x1, zs - half, zs + half), colour))
        elif kind == "band":
            xc = x0 + length * rng.uniform(0.3, 0.7)
            half = length * rng.uniform(0.06, 0.12)
            marks.append((_rect(xc - half, xc + half, z0, z1), colour))
        elif kind == "logo":
            size = min(height * rng.uniform(0.22, 0.34), length * 0.3)
            xc = x0 + length * rng.uniform(0.3, 0.7)
            marks.append((_logo(rng, xc, z0 + height * 0.5, size), colour))
        elif kind == "text":
            zc = z0 + height * rng.uniform(0.3, 0.75)
            blocks = int(rng.integers(3, 7))
            width = length * rng.uniform(0.4, 0.8)
            start = x0 + (length - width) * rng.uniform(0.2, 0.8)
            step = width / blocks
            for k in range(blocks):
                if rng.random() < 0.85:
                    marks.append((_rect(start + k * step, start + (k + 0.7) * step,
                                        zc - height * 0.08, zc + height * 0.08), colour))
        elif kind == "swoosh":
            xa = x0 + length * rng.uniform(0.0, 0.3)
            xb = x0 + length * rng.uniform(0.6, 1.0)
            lean = length * 0.15
            marks.append(([(xa, z0 + height * 0.1), (xa + length * 0.1, z0 + height * 0.1),
                           (xb, z1 - height * 0.15), (xb - lean * 0.5, z1 - height * 0.15)], colour))
        else:
            marks.append((_rect(x0, x1, z0, z0 + height * rng.uniform(0.25, 0.45)), colour))
    return marks


def _front_face(lights=True, grille=True, plate=True, band=(0.0, 1.0)):
    """Lights, grille and plate, squeezed into the height band (t) of the face."""
    marks = []
    if lights:
        marks += [(_rect(0.04, 0.22, 0.55, 0.78), LIGHT), (_rect(0.78, 0.96, 0.55, 0.78), LIGHT)]
    if grille:
        marks.append((_rect(0.3, 0.7, 0.35, 0.8), CHASSIS))
    if plate:
        marks.append((_rect(0.38, 0.62, 0.06, 0.24), (235, 235, 225)))
    low, high = band
    return [([(s, low + t * (high - low)) for s, t in polygon], colour) for polygon, colour in marks]


def _rear_face():
    return [(_rect(0.03, 0.16, 0.45, 0.75), TAIL_LIGHT), (_rect(0.84, 0.97, 0.45, 0.75), TAIL_LIGHT),
            (_rect(0.38, 0.62, 0.1, 0.3), (235, 235, 225))]


def _wheels(xs, radius, width, rim):
    parts = []
    for x in xs:
        for y0, y1 in ((-0.03, 0.27), (width - 0.27, width + 0.03)):
            tyre = Part(_ngon(x, radius, radius, 12), y0, y1, TYRE)
            tyre.side_marks = [(_ngon(x, radius, radius * 0.55, 10), rim),
                               (_ngon(x, radius, radius * 0.18, 6), CHASSIS)]
            parts.append(tyre)
    return parts


def _rim_colour(rng):
    return ((190, 192, 196), (40, 40, 42), (150, 120, 60), (200, 40, 30))[int(rng.integers(4))]


def _car(rng):
    body_index = _pick_colour(rng)
    body = _rgb(body_index)
    variant = rng.choice(["sedan", "hatch", "suv"])
    length = rng.uniform(4.0, 4.8)
    width = rng.uniform(1.72, 1.86)
    z0 = 0.3
    belt = z0 + rng.uniform(0.5, 0.62) + (0.15 if variant == "suv" else 0.0)
    roof = belt + rng.uniform(0.5, 0.6)
    hood = length * rng.uniform(0.22, 0.3)
    screen = rng.uniform(0.55, 0.8) * (0.6 if variant == "suv" else 1.0)
    roof_front = length - hood - screen
    if variant == "sedan":
        trunk = length * rng.uniform(0.14, 0.2)
        roof_rear = trunk + 0.55
        rear_top = belt + 0.05
    else:
        trunk = 0.02
        roof_rear = rng.uniform(0.2, 0.45) if variant == "hatch" else 0.08
        rear_top = belt + 0.05
    profile = [(0.0, z0), (length, z0), (length, belt - 0.05), (length - 0.1, belt),
               (length - hood, belt + 0.05), (roof_front, roof), (roof_rear, roof),
               (trunk, rear_top), (0.02, belt), (0.0, belt - 0.05)]
    car = Part(profile, 0.0, width, body)
    car.edge_colours = {4: GLASS, 6: GLASS}
    car.edge_marks = {1: _front_face(), 9: _rear_face()}
    # Side windows follow the pillars; 2 or 3 panes.
    panes = int(rng.integers(2, 4)) if variant != "sedan" else 2
    top, bottom = roof - 0.07, belt + 0.1
    a0, a1 = trunk + (roof_rear - trunk) * 0.15, length - hood - 0.1

    def at(frac, z):
        lo = a0 + (roof_rear - a0) * (z - bottom) / (top - bottom) * 0.85
        hi = a1 + (roof_front - a1) * (z - bottom) / (top - bottom) * 0.85
        return lo + (hi - lo) * frac

    for k in range(panes):
        f0, f1 = k / panes + 0.02, (k + 1) / panes - 0.02
        car.side_marks.append(([(at(f0, bottom), bottom), (at(f1, bottom), bottom),
                                (at(f1, top), top), (at(f0, top), top)], GLASS))
    extras = _side_markings(rng, 0.15, length - 0.15, z0 + 0.08, belt - 0.08, body_index)
    car.side_marks = extras + car.side_marks
    if rng.random() < 0.3:
        stripe_colour = _rgb(_pick_colour(rng, exclude=[body_index]))
        car.edge_marks[5] = [(_rect(0.38, 0.62, 0.0, 1.0), stripe_colour)]
        car.edge_marks[3] = [(_rect(0.38, 0.62, 0.0, 1.0), stripe_colour)]
    elif rng.random() < 0.3:
        car.edge_colours[5] = _rgb(_pick_colour(rng, exclude=[body_index]))
    parts = [car]
    item = rng.choice(["none", "rack", "taxi", "box"], p=[0.55, 0.2, 0.12, 0.13])
    mid = (roof_front + roof_rear) / 2
    if item == "rack":
        parts.append(_box(roof_rear + 0.1, roof_front - 0.1, roof, roof + 0.08, 0.15, width - 0.15, CHASSIS))
    elif item == "taxi":
        parts.append(_box(mid - 0.2, mid + 0.2, roof, roof + 0.16, width / 2 - 0.3, width / 2 + 0.3, AMBER))
    elif item == "box":
        colour = _rgb(_pick_colour(rng))
        parts.append(_box(roof_rear + 0.15, roof_front - 0.05, roof, roof + 0.3, 0.3, width - 0.3, colour))
    radius = rng.uniform(0.3, 0.36) + (0.05 if variant == "suv" else 0.0)
    parts += _wheels((length * 0.18, length * 0.8), radius, width, _rim_colour(rng))
    return parts


def _van(rng):
    body_index = _pick_colour(rng)
    body = _rgb(body_index)
    length = rng.uniform(4.8, 5.8)
    width = rng.uniform(1.9, 2.0)
    z0 = 0.32
    height = rng.uniform(2.0, 2.6)
    nose = rng.uniform(0.5, 0.9)
    profile = [(0.0, z0), (length, z0), (length, z0 + 0.65), (length - nose, z0 + 0.95),
               (length - nose - 0.7, height), (0.0, height)]
    van = Part(profile, 0.0, width, body)
    van.edge_colours = {3: GLASS}
    van.edge_marks = {1: _front_face(plate=False), 5: _rear_face()}
    cab_back = length - nose - 1.1
    van.side_marks = _side_markings(rng, 0.2, cab_back - 0.2, z0 + 0.15, height - 0.15, body_index)
    van.side_marks.append(([(cab_back + 0.1, z0 + 1.0), (length - nose - 0.2, z0 + 1.0),
                            (length - nose - 0.6, height - 0.2), (cab_back + 0.1, height - 0.2)], GLASS))
    if rng.random() < 0.5:
        # Passenger van: a row of rear windows.
        panes = int(rng.integers(2, 4))
        step = (cab_back - 0.4) / panes
        for k in range(panes):
            van.side_marks.append((_rect(0.3 + k * step, 0.3 + (k + 0.8) * step,
                                         z0 + 1.0, height - 0.25), GLASS))
    parts = [van]
    item = rng.choice(["none", "rack", "ladder"], p=[0.5, 0.3, 0.2])
    if item == "rack":
        parts.append(_box(0.3, cab_back, height, height + 0.1, 0.15, width - 0.15, CHASSIS))
    elif item == "ladder":
        parts.append(_box(0.2, cab_back + 0.3, height, height + 0.08, width * 0.6, width * 0.85, (200, 200, 205)))
    parts += _wheels((length * 0.17, length * 0.8), rng.uniform(0.32, 0.38), width, _rim_colour(rng))
    return parts


def _bus(rng):
    body_index = _pick_colour(rng)
    body = _rgb(body_index)
    length = rng.uniform(9.5, 12.0)
    width = 2.5
    z0 = 0.35
    height = rng.uniform(2.9, 3.3)
    profile = [(0.0, z0), (length, z0), (length, height - 0.15), (length - 0.2, height), (0.0, height)]
    bus = Part(profile, 0.0, width, body)
    display = (20, 20, 20)
    bus.edge_marks = {
        1: _front_face(grille=False) + [(_rect(0.04, 0.96, 0.42, 0.86), GLASS),
                                        (_rect(0.15, 0.85, 0.88, 0.98), display),
                                        (_rect(0.25, 0.6, 0.9, 0.96), AMBER)],
        4: _rear_face() + [(_rect(0.1, 0.9, 0.55, 0.85), GLASS)],
    }
    belt = z0 + (height - z0) * rng.uniform(0.38, 0.48)
    top = height - 0.3
    livery = _side_markings(rng, 0.2, length - 0.2, z0 + 0.1, belt - 0.1, body_index)
    panes = int(rng.integers(4, 9))
    step = (length - 1.6) / panes
    windows = [(_rect(0.4 + k * step, 0.4 + (k + 0.86) * step, belt, top), GLASS) for k in range(panes)]
    bus.side_marks = livery + windows
    if rng.random() < 0.5:
        bus.side_marks.append((_rect(0.0, length, top + 0.05, height - 0.05),
                               _rgb(_pick_colour(rng, exclude=[body_index]))))
    parts = [bus]
    if rng.random() < 0.6:
        parts.append(_box(length * 0.3, length * 0.6, height, height + 0.25, 0.5, width - 0.5, (200, 200, 204)))
    parts += _wheels((length * 0.2, length * 0.78), 0.5, width, _rim_colour(rng))
    return parts


def _livery(rng, x0, x1, z0, z1, accent):
    """A fleet livery on a side rectangle: one large pattern in ``accent``.

    Returns (side marks, band) where band is the (t0, t1) height band that
    the pattern paints on the end faces, or None.
    """
    length, height = x1 - x0, z1 - z0
    kind = rng.choice(["lower", "upper", "front", "rear", "diagonal", "stripe", "stripes", "logo", "plain"],
                      p=[0.14, 0.12, 0.1, 0.1, 0.12, 0.14, 0.1, 0.1, 0.08])
    if kind == "lower":
        share = rng.uniform(0.3, 0.5)
        return [(_rect(x0, x1, z0, z0 + share * height), accent)], (0.0, share)
    if kind == "upper":
        share = rng.uniform(0.25, 0.4)
        return [(_rect(x0, x1, z1 - share * height, z1), accent)], (1.0 - share, 1.0)
    if kind in ("front", "rear"):
        share = rng.uniform(0.3, 0.5)
        xa, xb = (x1 - share * length, x1) if kind == "front" else (x0, x0 + share * length)
        return [(_rect(xa, xb, z0, z1), accent)], (0.0, 1.0) if kind == "rear" else None
    if kind == "diagonal":
        xa = x0 + length * rng.uniform(0.1, 0.4)
        width = length * rng.uniform(0.15, 0.25)
        lean = length * 0.25
        return [([(xa, z0), (xa + width, z0), (xa + width + lean, z1), (xa + lean, z1)], accent)], (0.35, 0.65)
    if kind == "stripe":
        centre, half = rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.15)
        return [(_rect(x0, x1, z0 + (centre - half) * height, z0 + (centre + half) * height), accent)], \
            (centre - half, centre + half)
    if kind == "stripes":
        marks = [(_rect(x0, x1, z0 + a * height, z0 + (a + 0.12) * height), accent) for a in (0.25, 0.6)]
        return marks, (0.25, 0.37)
    if kind == "logo":
        size = min(height * rng.uniform(0.32, 0.42), length * 0.3)
        return [(_logo(rng, x0 + length * rng.uniform(0.3, 0.7), z0 + height / 2, size), accent)], (0.4, 0.6)
    return [], None


def _truck(rng):
    # Trucks wear fleet liveries (cargo and accent colours); half of the
    # fleets paint cab and cargo alike.
    cargo_index = _pick_livery(rng)
    cab_index = cargo_index if rng.random() < 0.5 else _pick_colour(rng, evenness=0.5)
    accent_index = _pick_livery(rng, exclude=[cargo_index])
    cab_colour, cargo_colour, accent = _rgb(cab_index), _rgb(cargo_index), _rgb(accent_index)
    cargo = rng.choice(["box", "container", "flatbed", "tipper"], p=[0.45, 0.25, 0.12, 0.18])
    width = 2.5
    cargo_length = rng.uniform(4.5, 11.0)
    cab_length = rng.uniform(1.8, 2.3)
    cab_height = rng.uniform(2.7, 3.2)
    deck = rng.uniform(1.05, 1.3)
    cab_x0 = cargo_length + 0.3
    cab_x1 = cab_x0 + cab_length
    parts = [_box(0.1, cab_x1 - 0.2, 0.55, deck, 0.35, width - 0.35, CHASSIS)]
    cab = Part([(cab_x0, 0.5), (cab_x1, 0.5), (cab_x1, cab_height - 0.2), (cab_x1 - 0.2, cab_height),
                (cab_x0, cab_height)], 0.0, width, cab_colour)
    cab.edge_marks = {_FRONT: [(_rect(0.05, 0.95, 0.6, 0.95), GLASS)] + _front_face(plate=False, band=(0.0, 0.55))}
    cab.side_marks = [([(cab_x1 - 1.1, cab_height * 0.6), (cab_x1 - 0.15, cab_height * 0.6),
                        (cab_x1 - 0.25, cab_height - 0.25), (cab_x1 - 1.1, cab_height - 0.25)], GLASS)]
    if rng.random() < 0.5:
        cab.side_marks.insert(0, (_rect(cab_x0, cab_x1, 0.9, 1.5), accent))
        cab.edge_marks[_FRONT].insert(0, (_rect(0.0, 1.0, 0.15, 0.3), accent))
    parts.append(cab)
    if rng.random() < 0.35:
        hood = _box(cab_x1, cab_x1 + 1.5, 0.5, 1.7, 0.25, width - 0.25, cab_colour)
        hood.edge_marks = {_FRONT: _front_face(plate=False)}
        parts.append(hood)
    roof_item = rng.choice(["none", "deflector", "lightbar", "horns"], p=[0.35, 0.35, 0.15, 0.15])
    if roof_item == "deflector":
        colour = cab_colour if rng.random() < 0.6 else accent
        parts.append(Part([(cab_x0 + 0.1, cab_height), (cab_x1 - 0.3, cab_height),
                           (cab_x0 + 0.5, cab_height + 0.6), (cab_x0 + 0.1, cab_height + 0.6)],
                          0.2, width - 0.2, colour))
    elif roof_item == "lightbar":
        parts.append(_box(cab_x1 - 0.5, cab_x1 - 0.25, cab_height, cab_height + 0.15, 0.3, width - 0.3, AMBER))
    elif roof_item == "horns":
        parts.append(_box(cab_x0 + 0.4, cab_x1 - 0.6, cab_height, cab_height + 0.2, 0.9, width - 0.9,
                          (205, 205, 210)))
    if cargo == "flatbed":
        parts.append(_box(0.0, cargo_length, deck, deck + 0.25, 0.0, width, cargo_colour))
        blocks = int(rng.integers(1, 4))
        step = cargo_length / blocks
        for k in range(blocks):
            height = rng.uniform(1.0, 2.0)
            block = _box(k * step + 0.15, (k + 1) * step - 0.15, deck + 0.25, deck + 0.25 + height,
                         0.15, width - 0.15, accent)
            block.side_marks = [(_rect(k * step + 0.15, (k + 1) * step - 0.15, deck + 0.25 + height * 0.45,
                                       deck + 0.25 + height * 0.55), CHASSIS)]
            parts.append(block)
    else:
        top = deck + rng.uniform(1.0, 1.6) if cargo == "tipper" else rng.uniform(3.4, 4.0)
        load = _box(0.0, cargo_length, deck, top, 0.0, width, cargo_colour)
        marks, band = _livery(rng, 0.0, cargo_length, deck, top, accent)
        if cargo != "box":
            # Container ribs and tipper panels, in a darker shade of the body.
            ribs = max(5, int(cargo_length * (2.2 if cargo == "container" else 0.6)))
            shade = tuple(int(v * 0.72) for v in cargo_colour)
            marks = [(_rect(cargo_length * k / ribs, cargo_length * k / ribs + 0.1, deck, top), shade)
                     for k in range(1, ribs)] + marks
        load.side_marks = marks
        ends = [] if band is None else [(_rect(0.0, 1.0, band[0], band[1]), accent)]
        load.edge_marks = {_REAR: ends + [(_rect(0.49, 0.51, 0.05, 0.95), CHASSIS),
                                          (_rect(0.02, 0.98, 0.0, 0.04), TAIL_LIGHT)],
                           _FRONT: list(ends)}
        if cargo == "tipper":
            load.edge_colours = {_TOP: tuple(int(v * 0.35) for v in cargo_colour)}
        parts.append(load)
    radius = rng.uniform(0.48, 0.55)
    rear_axles = [cargo_length * f for f in ((0.15, 0.3) if cargo_length > 7 else (0.2,))]
    parts += _wheels(rear_axles + [cab_x0 + cab_length * 0.55], radius, width, _rim_colour(rng))
    return parts


_BUILDERS = {"car": _car, "van": _van, "bus": _bus, "truck": _truck}


@lru_cache(maxsize=4096)
def make_identity(seed, dataset, pid):
    """The parts of identity ``pid`` of ``dataset``: the same vehicle in every image."""
    rng = np.random.default_rng([seed, _DOMAIN_CODES[dataset], _IDENTITY, pid])
    kinds, weights = zip(*STYLES[dataset]["kinds"])
    kind = kinds[int(rng.choice(len(kinds), p=np.array(weights) / sum(weights)))]
    return _BUILDERS[kind](rng)


# -----------------------------------------------------------------------------
# Cameras: viewpoint, framing, lighting and background of each camera
# -----------------------------------------------------------------------------
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
    items = [(_rect(-1, 2, -1, horizon), sky)]
    x = rng.uniform(-0.2, 0.0)
    while x < 1.0:
        width = rng.uniform(0.15, 0.4)
        top = horizon - rng.uniform(0.05, horizon)
        if rng.random() < 0.3:
            items.append((_ngon(x + width / 2, horizon - width * 0.3, width * 0.45, 10),
                          (int(rng.uniform(30, 70)), int(rng.uniform(80, 130)), int(rng.uniform(30, 60)))))
        else:
            items.append((_rect(x, x + width, top, horizon), _muted(rng, 90, 200)))
        x += width + rng.uniform(0.0, 0.1)
    items.append((_rect(-1, 2, horizon, 2), _muted(rng, 70, 120)))
    line = (235, 235, 230) if rng.random() < 0.7 else (230, 200, 60)
    for _ in range(int(rng.integers(1, 4))):
        x0 = rng.uniform(-0.3, 1.0)
        lean = rng.uniform(-0.6, 0.6)
        items.append(([(x0, horizon), (x0 + 0.02, horizon), (x0 + 0.1 + 2 * lean, 2.0), (x0 + 2 * lean, 2.0)], line))
    return tuple(items)


def _plain(rng):
    colour = _muted(rng, 90, 235)
    if rng.random() < 0.5:
        return ((_rect(-1, 2, -1, 2), colour),)
    horizon = rng.uniform(0.3, 0.6)
    return ((_rect(-1, 2, -1, horizon), colour), (_rect(-1, 2, horizon, 2), _muted(rng, 80, 200)))


def _toll_booth(rng):
    # One operator's stations: the same materials and booth colours
    # everywhere, laid out differently at each camera.
    horizon = rng.uniform(0.35, 0.6)
    items = [(_rect(-1, 2, -1, horizon), _muted(rng, 150, 180, tint=4.0)),
             (_rect(-1, 2, horizon, 2), _muted(rng, 160, 180, tint=3.0))]
    canopy = rng.uniform(0.08, 0.2)
    items.append((_rect(-1, 2, -1, canopy), _muted(rng, 55, 75, tint=3.0)))
    for k in range(int(rng.integers(2, 5))):
        x = rng.uniform(0.05, 0.85)
        items.append((_rect(x, x + 0.1, canopy * 0.4, canopy * 0.7), (250, 250, 235)))
    left = rng.random() < 0.5
    x0 = rng.uniform(0.0, 0.1) if left else rng.uniform(0.7, 0.82)
    booth = ((236, 236, 230), (230, 200, 50))[int(rng.integers(2))]
    bottom = horizon + rng.uniform(0.1, 0.25)
    items.append((_rect(x0, x0 + 0.2, canopy + 0.05, bottom), booth))
    items.append((_rect(x0 + 0.03, x0 + 0.17, canopy + 0.12, canopy + 0.3), GLASS))
    items.append((_rect(x0 - 0.01, x0 + 0.21, canopy + 0.02, canopy + 0.07), (60, 60, 64)))
    bar_y = horizon + rng.uniform(-0.1, 0.05)
    bar_x0, bar_x1 = (x0 + 0.2, x0 + 0.75) if left else (x0 - 0.55, x0)
    segments = 7
    step = (bar_x1 - bar_x0) / segments
    for k in range(segments):
        colour = (210, 30, 30) if k % 2 == 0 else (245, 245, 245)
        items.append((_rect(bar_x0 + k * step, bar_x0 + (k + 1) * step, bar_y, bar_y + 0.025), colour))
    pillar = rng.uniform(0.25, 0.7)
    for k in range(6):
        colour = (230, 190, 30) if k % 2 == 0 else (25, 25, 25)
        y = canopy + (bottom - canopy) * k / 6
        items.append((_rect(pillar, pillar + 0.04, y, y + (bottom - canopy) / 6), colour))
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
    rng = np.random.default_rng([seed, _DOMAIN_CODES[dataset], _CAMERA, cam])
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


# -----------------------------------------------------------------------------
# Rendering
# -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Mesh:
    """An identity's polygons in one vertex array, so that a shot projects them at once.

    Polygon p spans vertices[starts[p]:starts[p + 1]]. Each face is (part,
    polygon, normal index, colour, marks as (polygon, colour)).
    """

    vertices: np.ndarray
    starts: np.ndarray
    normals: np.ndarray
    faces: tuple
    parts: int


def _face_polygons(part):
    """(3D polygon, outward normal, 3D marks, colour) of each face of a part."""
    profile = np.asarray(part.profile, dtype=np.float64)
    faces = []
    for y, normal in ((part.y0, (0.0, -1.0, 0.0)), (part.y1, (0.0, 1.0, 0.0))):
        polygon = np.column_stack([profile[:, 0], np.full(len(profile), y), profile[:, 1]])
        marks = [(np.column_stack([np.asarray(p)[:, 0], np.full(len(p), y), np.asarray(p)[:, 1]]), colour)
                 for p, colour in part.side_marks]
        faces.append((polygon, normal, marks, part.colour))
    count = len(profile)
    for i in range(count):
        a, b = profile[i], profile[(i + 1) % count]
        dx, dz = b - a
        length = math.hypot(dx, dz)
        if length < 1e-6:
            continue
        corner = np.array([a[0], part.y0, a[1]])
        across = np.array([0.0, part.y1 - part.y0, 0.0])
        along = np.array([dx, 0.0, dz])
        if dz < 0:
            corner, along = corner + along, -along
        polygon = np.array([corner, corner + along, corner + along + across, corner + across])
        marks = [(np.array([corner + s * across + t * along for s, t in p]), colour)
                 for p, colour in part.edge_marks.get(i, ())]
        faces.append((polygon, (dz / length, 0.0, -dx / length), marks, part.edge_colours.get(i, part.colour)))
    return faces


@lru_cache(maxsize=4096)
def _mesh(seed, dataset, pid):
    chunks, starts, normals, faces = [], [0], [], []

    def add(polygon):
        chunks.append(polygon)
        starts.append(starts[-1] + len(polygon))
        return len(starts) - 2

    parts = make_identity(seed, dataset, pid)
    for k, part in enumerate(parts):
        for polygon, normal, marks, colour in _face_polygons(part):
            face = add(polygon)
            normals.append(normal)
            faces.append((k, face, len(normals) - 1, colour, tuple((add(m), c) for m, c in marks)))
    return _Mesh(np.concatenate(chunks), np.array(starts), np.array(normals), tuple(faces), len(parts))


def _rotate(azimuth, elevation, points):
    """Camera-frame (right, up, depth) of ``points``; depth grows away from the camera."""
    phi, tilt = math.radians(azimuth), math.radians(elevation)
    x1 = points[:, 0] * math.cos(phi) - points[:, 1] * math.sin(phi)
    y1 = points[:, 0] * math.sin(phi) + points[:, 1] * math.cos(phi)
    up = points[:, 2] * math.cos(tilt) + y1 * math.sin(tilt)
    depth = y1 * math.cos(tilt) - points[:, 2] * math.sin(tilt)
    return x1, up, depth


def render_image(seed, dataset, pid, cam, index):
    """(image, JPEG quality) of shot ``index`` of identity ``pid`` by camera ``cam`` of ``dataset``."""
    style = STYLES[dataset]
    mesh = _mesh(seed, dataset, pid)
    camera = make_camera(seed, dataset, cam)
    rng = np.random.default_rng([seed, _DOMAIN_CODES[dataset], _IMAGE, pid, cam, index])
    low, high = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    centre = (low + high) / 2
    azimuth = camera.azimuth + rng.normal(0, style["view_jitter"])
    elevation = camera.elevation + rng.normal(0, style["view_jitter"] / 3)
    distance = camera.distance * float(np.linalg.norm(high - low))
    shadow = np.array([[low[0] - 0.2, low[1] - 0.2, 0.0], [high[0] + 0.2, low[1] - 0.2, 0.0],
                       [high[0] + 0.2, high[1] + 0.2, 0.0], [low[0] - 0.2, high[1] + 0.2, 0.0]])
    right, up, depth = _rotate(azimuth, elevation, np.concatenate([mesh.vertices, shadow]) - centre)
    shrink = distance / (distance + depth)
    screen = np.column_stack([right * shrink, -up * shrink])
    normal_depth = _rotate(azimuth, elevation, mesh.normals)[2]

    body = screen[:len(mesh.vertices)]
    extent = body.max(axis=0) - body.min(axis=0)
    aspect = extent[0] / extent[1]
    long_side = camera.long_side
    short = int(np.clip(long_side / max(aspect, 1 / aspect) * rng.uniform(1.0, 1.15), 0.45 * long_side, long_side))
    width, height = (long_side, short) if aspect >= 1 else (short, long_side)
    fill = camera.fill * rng.uniform(0.95, 1.03)
    scale = _SUPERSAMPLE * fill * min(width / extent[0], height / extent[1])
    jitter = rng.uniform(-0.5, 0.5, 2) * (1 - fill) * np.array([width, height])
    offset = _SUPERSAMPLE * (np.array([width, height]) / 2 + jitter) - (body.max(axis=0) + body.min(axis=0)) / 2 * scale
    screen = screen * scale + offset

    canvas = Image.new("RGB", (width * _SUPERSAMPLE, height * _SUPERSAMPLE))
    draw = ImageDraw.Draw(canvas)
    # Vehicles stop at different places: the crop moves over the camera's scene.
    pixels = np.array(canvas.size, dtype=np.float64)
    move = style["scene_jitter"]
    zoom = rng.uniform(1 - move / 2, 1 + move / 2)
    shift = rng.uniform(-move, move, 2)
    for polygon, colour in camera.background:
        window = (np.asarray(polygon) - 0.5) * zoom + 0.5 + shift
        draw.polygon((window * pixels).ravel().tolist(), fill=colour)
    draw.polygon(screen[len(mesh.vertices):].ravel().tolist(), fill=(28, 28, 30))

    # Painter's order: parts by their nearest point, far first; faces within a part by mean depth.
    starts = mesh.starts
    counts = np.diff(starts)
    nearest_of_polygon = np.minimum.reduceat(depth[:starts[-1]], starts[:-1])
    mean_of_polygon = np.add.reduceat(depth[:starts[-1]], starts[:-1]) / counts
    nearest = np.full(mesh.parts, np.inf)
    for part, polygon, _, _, _ in mesh.faces:
        nearest[part] = min(nearest[part], nearest_of_polygon[polygon])
    ambient, diffuse = (0.78, 0.28) if style["flat"] else (0.55, 0.55)
    light = np.maximum(0.0, mesh.normals @ np.array(camera.light))
    shade = ambient + diffuse * light
    visible = [face for face in mesh.faces if -normal_depth[face[2]] > 0.03]
    visible.sort(key=lambda face: (-nearest[face[0]], face[0], -mean_of_polygon[face[1]]))
    for _, polygon, normal, colour, marks in visible:
        factor = shade[normal]
        for poly, paint in ((polygon, colour),) + marks:
            draw.polygon(screen[starts[poly]:starts[poly + 1]].ravel().tolist(),
                         fill=tuple(min(255, int(c * factor)) for c in paint))

    image = canvas.reduce(_SUPERSAMPLE)
    blur = rng.uniform(*style["blur"])
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(image, dtype=np.float32)
    gains = np.array(camera.gains, dtype=np.float32) * np.float32(rng.uniform(0.93, 1.07))
    pixels = pixels * gains
    if style["texture"] > 0:
        field_small = rng.normal(0, 1, (5, 5)).astype(np.float32)
        field_image = Image.fromarray(field_small, mode="F").resize((width, height), Image.BICUBIC)
        pixels *= (1.0 + style["texture"] * np.asarray(field_image))[..., None]
    noise = rng.uniform(*style["noise"])
    if noise > 0:
        pixels += rng.normal(0, noise, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8)), camera.quality


# -----------------------------------------------------------------------------
# Plans: which identity, camera and split each file is
# -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Shot:
    """One file to render: where it goes and what it shows."""

    dataset: str
    split: str
    name: str
    pid: int
    cam: int
    index: int


def layout_from_cfg(cfg):
    """Each demo dataset's folder and split folders, from its entry in the dataset table (cfg.DATASETS)."""
    layout = {}
    for dataset in DATASET_NAMES:
        node = cfg.DATASETS[dataset.upper()]
        layout[dataset] = {"folder": node.FOLDER or dataset,
                           **{split: node[key] for split, key in SPLIT_KEYS.items() if node[key]}}
    return layout


DEFAULT_LAYOUT = layout_from_cfg(get_default_cfg())


def _spread(rng, total, cams):
    """Images per camera: at least one on each, the rest at random."""
    extra = rng.multinomial(total - len(cams), np.full(len(cams), 1.0 / len(cams)))
    return {int(cam): 1 + int(n) for cam, n in zip(cams, extra)}


def _identity_cameras(rng, cams, images):
    smallest = min(3, len(cams), images)
    count = int(rng.integers(smallest, min(len(cams), images) + 1))
    return sorted(rng.choice(cams, count, replace=False).tolist())


def _veri_name(pid, cam, index, rng_start):
    return f"{pid:04d}_c{cam:03d}_{rng_start + 25 * index:08d}_0.jpg"


def _choose_cameras(rng, dataset, count):
    low, high = _CAMERA_RANGES[dataset]
    return sorted(rng.choice(np.arange(low, high + 1), count, replace=False).tolist())


def _plan_veri(seed, counts):
    code = _DOMAIN_CODES["veri"]
    rng = np.random.default_rng([seed, code, _PLAN])
    total = counts["veri_train_ids"] + counts["veri_test_ids"]
    pids = rng.permutation(np.arange(1, total + 1))
    train = set(pids[:counts["veri_train_ids"]].tolist())
    cams = _choose_cameras(rng, "veri", counts["veri_cameras"])
    shots = []
    for pid in range(1, total + 1):
        prng = np.random.default_rng([seed, code, _PLAN, pid])
        id_cams = _identity_cameras(prng, cams, counts["veri_images_per_id"])
        per_cam = _spread(prng, counts["veri_images_per_id"], id_cams)
        query_cams = set()
        if pid not in train:
            wanted = min(counts["veri_query_cameras"], len(id_cams) - 1)
            query_cams = set(prng.choice(id_cams, wanted, replace=False).tolist())
        for cam, n in per_cam.items():
            start = int(prng.integers(0, 90_000_000))
            for index in range(n):
                split = "train" if pid in train else ("query" if cam in query_cams and index == 0 else "gallery")
                shots.append(Shot("veri", split, _veri_name(pid, cam, index, start), pid, cam, index))
    return shots


def _plan_vehiclex(seed, counts):
    code = _DOMAIN_CODES["vehiclex"]
    rng = np.random.default_rng([seed, code, _PLAN])
    cams = _choose_cameras(rng, "vehiclex", counts["vehiclex_cameras"])
    shots = []
    for pid in range(1, counts["vehiclex_ids"] + 1):
        prng = np.random.default_rng([seed, code, _PLAN, pid])
        id_cams = _identity_cameras(prng, cams, counts["vehiclex_images_per_id"])
        number = int(prng.integers(0, 50))
        for cam, n in _spread(prng, counts["vehiclex_images_per_id"], id_cams).items():
            for index in range(n):
                shots.append(Shot("vehiclex", "train", f"{pid:04d}_c{cam:03d}_{number}.jpg", pid, cam, index))
                number += 1
    return shots


def _plan_opri(seed, counts):
    code = _DOMAIN_CODES["opri"]
    rng = np.random.default_rng([seed, code, _PLAN])
    total = counts["opri_train_ids"] + counts["opri_test_ids"]
    pids = rng.permutation(np.arange(1, total + 1))
    train = set(pids[:counts["opri_train_ids"]].tolist())
    cams = _choose_cameras(rng, "opri", counts["opri_cameras"])
    shots = []
    for pid in range(1, total + 1):
        prng = np.random.default_rng([seed, code, _PLAN, pid])
        if pid in train:
            images = counts["opri_train_images_per_id"]
            plan = {cam: ("train", n) for cam, n in _spread(prng, images, _identity_cameras(prng, cams, images)).items()}
        else:
            # Opri: one query per identity, its gallery images on other cameras.
            query_cam = int(prng.choice(cams))
            others = [cam for cam in cams if cam != query_cam]
            images = int(prng.integers(counts["opri_gallery_min"], counts["opri_gallery_max"] + 1))
            gallery_cams = sorted(prng.choice(others, int(prng.integers(min(2, len(others), images),
                                                                        min(4, len(others), images) + 1)),
                                              replace=False).tolist())
            plan = {cam: ("gallery", n) for cam, n in _spread(prng, images, gallery_cams).items()}
            plan[query_cam] = ("query", 1)
        for cam in sorted(plan):
            split, n = plan[cam]
            start = int(prng.integers(0, 90_000_000))
            for index in range(n):
                shots.append(Shot("opri", split, _veri_name(pid, cam, index, start), pid, cam, index))
    return shots


_PLANNERS = {"veri": _plan_veri, "vehiclex": _plan_vehiclex, "opri": _plan_opri}


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
    checks = {"veri_cameras": 2, "vehiclex_cameras": 1, "opri_cameras": 2, "veri_images_per_id": 2,
              "vehiclex_images_per_id": 1, "opri_train_images_per_id": 1, "opri_gallery_min": 1,
              "veri_test_ids": 1, "opri_test_ids": 1, "veri_query_cameras": 1}
    for key, smallest in checks.items():
        if resolved[key] < smallest:
            raise ValueError(f"{key} must be at least {smallest}, got {resolved[key]}")
    if resolved["opri_gallery_max"] < resolved["opri_gallery_min"]:
        raise ValueError("opri_gallery_max must be at least opri_gallery_min")
    for dataset, key in (("veri", "veri_cameras"), ("vehiclex", "vehiclex_cameras"), ("opri", "opri_cameras")):
        low, high = _CAMERA_RANGES[dataset]
        if resolved[key] > high - low + 1:
            raise ValueError(f"{key} must be at most {high - low + 1} (cameras {low}..{high}), got {resolved[key]}")
    return resolved


def plan_shots(seed, counts):
    """Every file of the three datasets, in a fixed order."""
    return [shot for dataset in DATASET_NAMES for shot in _PLANNERS[dataset](seed, counts)]


# -----------------------------------------------------------------------------
# Writing the trees
# -----------------------------------------------------------------------------
def _write_shots(args):
    seed, directory, shots = args
    for shot in shots:
        image, quality = render_image(seed, shot.dataset, shot.pid, shot.cam, shot.index)
        image.save(os.path.join(directory, shot.dataset, shot.split, shot.name), quality=quality)
    return len(shots)


def read_marker(root):
    """The marker of a generated tree under ``root`` (a dict), or None."""
    path = os.path.join(root, MARKER_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _files_under(root, folder):
    """Paths, relative to ``root``, of every file and link under ``root/folder``."""
    found = []
    for parent, folders, names in os.walk(os.path.join(root, folder)):
        links = [name for name in folders if os.path.islink(os.path.join(parent, name))]
        found += [os.path.relpath(os.path.join(parent, name), root) for name in names + links]
    return found


def _clear_previous(root, layout):
    """Remove the files of an earlier generated tree, and only those: a tree that holds any other
    file (or whose marker does not list its files) is refused before anything is deleted."""
    marker = read_marker(root)
    if marker:
        folders = marker.get("folders", [])
        written = set(marker.get("files", []))
        present = [path for folder in folders for path in _files_under(root, folder)]
        foreign = sorted(path for path in present if path not in written)
        if foreign or "files" not in marker:
            what = (f"files the demo generator did not write, e.g. {os.path.join(root, foreign[0])}" if foreign
                    else "no list of the files it wrote (an older generator's tree)")
            raise UserError(
                f"{root} holds demo data of seed {marker.get('seed')} with {what}; nothing was deleted. Move "
                f"your files out of {', '.join(folders)}, or delete those folders yourself, or set "
                "DATASETS.ROOT_DIR (--root) to another folder")
        for path in present:
            os.remove(os.path.join(root, path))
        for folder in folders:
            for parent, _, _ in os.walk(os.path.join(root, folder), topdown=False):
                os.rmdir(parent)
        os.remove(os.path.join(root, MARKER_NAME))
    for entry in layout.values():
        path = os.path.join(root, entry["folder"])
        if os.path.exists(path):
            raise UserError(
                f"{path} exists and is not generated demo data; give an empty folder for the demo data "
                f"(DATASETS.ROOT_DIR, or --root of tools/make_demo_data.py)")


def _missing(root, layout, shot):
    entry = layout[shot.dataset]
    return not os.path.isdir(os.path.join(root, entry["folder"], entry[shot.split]))


def generate_demo_data(root, seed=0, scale=1.0, layout=None, workers=None, preset="demo", only_missing=False,
                       **counts):
    """Write the three demo datasets under ``root``; returns a summary dict.

    ``preset`` (PRESETS) and then ``counts`` override DEFAULT_COUNTS (after
    ``scale`` multiplies the identity counts); ``layout`` maps each dataset to its folder and split
    folders (DEFAULT_LAYOUT); ``workers`` processes render (default: all
    cores). An earlier generated tree under ``root`` is replaced, file by file
    (see _clear_previous); with ``only_missing`` it is kept and only its
    missing split folders are written, with the files the same seed gives.
    """
    started = time.perf_counter()
    layout = layout or DEFAULT_LAYOUT
    resolved = resolve_counts(scale, preset, **counts)
    shots = plan_shots(seed, resolved)
    os.makedirs(root, exist_ok=True)
    previous = read_marker(root) if only_missing else None
    if only_missing:
        shots = [shot for shot in shots if _missing(root, layout, shot)]
    else:
        _clear_previous(root, layout)
    staging = os.path.join(root, ".jifd_demo_staging")
    if os.path.isdir(staging):
        shutil.rmtree(staging)
    for shot in shots:
        os.makedirs(os.path.join(staging, shot.dataset, shot.split), exist_ok=True)
    workers = workers or os.cpu_count() or 1
    chunk = 64
    jobs = [(seed, staging, shots[k:k + chunk]) for k in range(0, len(shots), chunk)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_shots, jobs))
    else:
        for job in jobs:
            _write_shots(job)

    summary = {"root": os.path.abspath(root), "seed": seed, "version": GENERATOR_VERSION, "preset": preset,
               "counts": resolved, "folders": [], "datasets": {},
               "files": sorted(set(previous.get("files", []) if previous else [])
                               | {os.path.join(layout[shot.dataset]["folder"], layout[shot.dataset][shot.split],
                                               shot.name) for shot in shots})}
    for dataset in DATASET_NAMES:
        entry = layout[dataset]
        target = os.path.join(root, entry["folder"])
        os.makedirs(target, exist_ok=only_missing)
        splits = {}
        for split in ("train", "query", "gallery"):
            picked = [shot for shot in shots if shot.dataset == dataset and shot.split == split]
            if not picked:
                continue
            os.replace(os.path.join(staging, dataset, split), os.path.join(target, entry[split]))
            splits[split] = {"dir": entry[split], "images": len(picked),
                             "ids": len({shot.pid for shot in picked}),
                             "cameras": len({shot.cam for shot in picked})}
        summary["folders"].append(entry["folder"])
        summary["datasets"][dataset] = splits
    shutil.rmtree(staging)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    marker = {key: summary[key] for key in ("seed", "version", "preset", "counts", "folders", "files")}
    with open(os.path.join(root, MARKER_NAME), "w") as handle:
        json.dump(marker, handle, indent=1, sort_keys=True)
    return summary


def _check_patterns(cfg):
    """The configured file-name patterns must read the generated names."""
    examples = {"veri": _veri_name(1, 1, 0, 30600), "vehiclex": "0001_c006_33.jpg", "opri": _veri_name(1, 1, 0, 30600)}
    for dataset, name in examples.items():
        pattern = cfg.DATASETS[dataset.upper()].PATTERN
        if not re.match(pattern, name):
            raise ConfigError(
                f"DATASETS.{dataset.upper()}.PATTERN = {pattern!r} does not match the demo data's "
                f"file names (e.g. {name}), which follow the real dataset's naming")


def ensure_demo_data(cfg, scale=1.0, **counts):
    """Generate the demo datasets under cfg.DATASETS.ROOT_DIR unless they are there.

    Nothing happens when the folders exist and are either a generated tree of
    seed cfg.DATASETS.DEMO_SEED and preset cfg.DATASETS.DEMO_PRESET or a
    user's own data (no marker). A generated tree of that seed and preset
    with split folders missing gets only those back. A generated tree of
    another seed, preset or generator version is replaced, unless it holds
    files the generator did not write: then nothing is deleted and the run
    stops with a message. ``scale`` and ``counts`` size a new tree
    (generate_demo_data).
    """
    root = cfg.DATASETS.ROOT_DIR
    seed = int(cfg.DATASETS.DEMO_SEED)
    preset = cfg.DATASETS.DEMO_PRESET
    layout = layout_from_cfg(cfg)
    _check_patterns(cfg)
    needed = [os.path.join(root, entry["folder"], entry[split])
              for entry in layout.values() for split in ("train", "query", "gallery") if split in entry]
    complete = all(os.path.isdir(path) for path in needed)
    marker = read_marker(root)
    if complete and marker is None:
        logger.info("%s already holds the datasets; not generating demo data", root)
        return
    same_tree = (marker is not None and marker.get("seed") == seed and marker.get("version") == GENERATOR_VERSION
                 and marker.get("preset", "demo") == preset
                 and sorted(marker.get("folders", [])) == sorted(entry["folder"] for entry in layout.values()))
    if same_tree and complete:
        logger.info("demo data of seed %d found under %s", seed, root)
        return
    if same_tree and "files" in marker:
        missing = [path for path in needed if not os.path.isdir(path)]
        logger.info("regenerating the missing split folder(s) of the %s data (seed %d): %s", preset, seed,
                    ", ".join(missing))
        summary = generate_demo_data(root, seed=seed, layout=layout, preset=preset, only_missing=True,
                                     **marker["counts"])
        logger.info("demo data written in %.1f s: %s", summary["seconds"], describe_summary(summary))
        return
    logger.info("generating the %s datasets (seed %d) under %s", preset, seed, root)
    summary = generate_demo_data(root, seed=seed, scale=scale, layout=layout, preset=preset, **counts)
    logger.info("demo data written in %.1f s: %s", summary["seconds"], describe_summary(summary))


def describe_summary(summary):
    """One line per dataset: ids and images of each split."""
    parts = []
    for dataset, splits in summary["datasets"].items():
        sizes = ", ".join(f"{split} {info['ids']} ids / {info['images']} images" for split, info in splits.items())
        parts.append(f"{dataset}: {sizes}")
    return "; ".join(parts)
