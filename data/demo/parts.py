"""The pieces demo vehicles are built from: extruded parts, body colours, markings, lights and wheels.

A vehicle is a set of parts, each a side profile extruded across the width,
with markings (stripes, logos, lettering, windows, lights) painted on its
faces. Body colours are drawn with real-world frequencies (white, silver and
black dominate), so many identities share a colour and only shape and
markings tell them apart.
"""
import math
from dataclasses import dataclass, field

import numpy as np

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


# The profile edges of a box: 0 bottom, 1 front, 2 top, 3 rear.
FRONT, TOP, REAR = 1, 2, 3


def box(x0, x1, z0, z1, y0, y1, colour):
    return Part([(x0, z0), (x1, z0), (x1, z1), (x0, z1)], y0, y1, colour)


def rect(a0, a1, b0, b1):
    return [(a0, b0), (a1, b0), (a1, b1), (a0, b1)]


def ngon(cx, cz, radius, sides=12, phase=0.0):
    return [(cx + radius * math.cos(phase + 2 * math.pi * k / sides),
             cz + radius * math.sin(phase + 2 * math.pi * k / sides)) for k in range(sides)]


def pick_colour(rng, exclude=(), evenness=1.0):
    """Index of a body colour, by frequency (flattened by ``evenness`` < 1), not in ``exclude``."""
    weights = _COLOUR_WEIGHTS ** evenness
    weights[list(exclude)] = 0.0
    return int(rng.choice(len(weights), p=weights / weights.sum()))


# Fleet liveries: well-separated colours, used evenly.
_LIVERY_COLOURS = tuple(k for k, colour in enumerate(BODY_COLOURS) if colour[0] in (
    "white", "silver", "black", "red", "blue", "green", "yellow", "orange", "purple", "teal", "pink"))


def pick_livery(rng, exclude=()):
    choices = [k for k in _LIVERY_COLOURS if k not in exclude]
    return choices[int(rng.integers(len(choices)))]


def rgb(index):
    return tuple(int(v) for v in _COLOUR_RGB[index])


def logo(rng, cx, cz, size):
    """A logo polygon: disc, diamond, triangle or square."""
    shape = rng.integers(4)
    if shape == 0:
        return ngon(cx, cz, size, 14)
    if shape == 1:
        return ngon(cx, cz, size * 1.15, 4)
    if shape == 2:
        return ngon(cx, cz, size * 1.2, 3, math.pi / 2)
    return ngon(cx, cz, size * 1.1, 4, math.pi / 4)


def side_markings(rng, x0, x1, z0, z1, body_index):
    """1-2 markings inside the side rectangle [x0, x1] x [z0, z1]."""
    marks = []
    length, height = x1 - x0, z1 - z0
    kinds = rng.choice(["stripe", "stripes", "band", "logo", "text", "swoosh", "lower"],
                       size=int(rng.integers(1, 3)), replace=False)
    for kind in kinds:
        colour = rgb(pick_colour(rng, exclude=[body_index]))
        if kind == "stripe":
            zc = z0 + height * rng.uniform(0.2, 0.8)
            half = height * rng.uniform(0.05, 0.1)
            marks.append((rect(x0, x1, zc - half, zc + half), colour))
        elif kind == "stripes":
            zc = z0 + height * rng.uniform(0.25, 0.7)
            half = height * 0.05
            for offset in (-0.14, 0.14):
                zs = zc + offset * height
                marks.append((rect(x0, x1, zs - half, zs + half), colour))
        elif kind == "band":
            xc = x0 + length * rng.uniform(0.3, 0.7)
            half = length * rng.uniform(0.06, 0.12)
            marks.append((rect(xc - half, xc + half, z0, z1), colour))
        elif kind == "logo":
            size = min(height * rng.uniform(0.22, 0.34), length * 0.3)
            xc = x0 + length * rng.uniform(0.3, 0.7)
            marks.append((logo(rng, xc, z0 + height * 0.5, size), colour))
        elif kind == "text":
            zc = z0 + height * rng.uniform(0.3, 0.75)
            blocks = int(rng.integers(3, 7))
            width = length * rng.uniform(0.4, 0.8)
            start = x0 + (length - width) * rng.uniform(0.2, 0.8)
            step = width / blocks
            for k in range(blocks):
                if rng.random() < 0.85:
                    marks.append((rect(start + k * step, start + (k + 0.7) * step,
                                        zc - height * 0.08, zc + height * 0.08), colour))
        elif kind == "swoosh":
            xa = x0 + length * rng.uniform(0.0, 0.3)
            xb = x0 + length * rng.uniform(0.6, 1.0)
            lean = length * 0.15
            marks.append(([(xa, z0 + height * 0.1), (xa + length * 0.1, z0 + height * 0.1),
                           (xb, z1 - height * 0.15), (xb - lean * 0.5, z1 - height * 0.15)], colour))
        else:
            marks.append((rect(x0, x1, z0, z0 + height * rng.uniform(0.25, 0.45)), colour))
    return marks


def front_face(lights=True, grille=True, plate=True, band=(0.0, 1.0)):
    """Lights, grille and plate, squeezed into the height band (t) of the face."""
    marks = []
    if lights:
        marks += [(rect(0.04, 0.22, 0.55, 0.78), LIGHT), (rect(0.78, 0.96, 0.55, 0.78), LIGHT)]
    if grille:
        marks.append((rect(0.3, 0.7, 0.35, 0.8), CHASSIS))
    if plate:
        marks.append((rect(0.38, 0.62, 0.06, 0.24), (235, 235, 225)))
    low, high = band
    return [([(s, low + t * (high - low)) for s, t in polygon], colour) for polygon, colour in marks]


def rear_face():
    return [(rect(0.03, 0.16, 0.45, 0.75), TAIL_LIGHT), (rect(0.84, 0.97, 0.45, 0.75), TAIL_LIGHT),
            (rect(0.38, 0.62, 0.1, 0.3), (235, 235, 225))]


def wheels(xs, radius, width, rim):
    parts = []
    for x in xs:
        for y0, y1 in ((-0.03, 0.27), (width - 0.27, width + 0.03)):
            tyre = Part(ngon(x, radius, radius, 12), y0, y1, TYRE)
            tyre.side_marks = [(ngon(x, radius, radius * 0.55, 10), rim),
                               (ngon(x, radius, radius * 0.18, 6), CHASSIS)]
            parts.append(tyre)
    return parts


def rim_colour(rng):
    return ((190, 192, 196), (40, 40, 42), (150, 120, 60), (200, 40, 30))[int(rng.integers(4))]

