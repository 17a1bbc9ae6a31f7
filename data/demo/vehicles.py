"""The demo vehicles: cars, vans, buses and trucks, each identity drawn once from its own seed.

Identity lives in the vehicle: body shape (car, van, bus, truck and their
variants), colours and markings. Trucks are among VeRi's and VehicleX's
identities too, so that what a model learns there can transfer to Opri,
where trucks wear fleet liveries.
"""
from functools import lru_cache

import numpy as np

from .parts import (AMBER, CHASSIS, FRONT, GLASS, REAR, TAIL_LIGHT, TOP, Part, box, front_face, logo, pick_colour,
                    pick_livery, rear_face, rect, rgb, rim_colour, side_markings, wheels)
from .styles import IDENTITY_SEED, STYLES, random_stream


def _car_windows(panes, along, heights):
    """Side windows that follow the pillars: ``panes`` panes between the rear and front screens.

    ``along``: (trunk, rear roof end, front roof end, bonnet end) along the length; ``heights``: (belt, roof).
    """
    trunk, roof_rear, roof_front, bonnet = along
    belt, roof = heights
    top, bottom = roof - 0.07, belt + 0.1
    a0, a1 = trunk + (roof_rear - trunk) * 0.15, bonnet - 0.1

    def at(frac, z):
        lo = a0 + (roof_rear - a0) * (z - bottom) / (top - bottom) * 0.85
        hi = a1 + (roof_front - a1) * (z - bottom) / (top - bottom) * 0.85
        return lo + (hi - lo) * frac

    windows = []
    for k in range(panes):
        f0, f1 = k / panes + 0.02, (k + 1) / panes - 0.02
        windows.append(([(at(f0, bottom), bottom), (at(f1, bottom), bottom), (at(f1, top), top),
                         (at(f0, top), top)], GLASS))
    return windows


def _car_roof_item(rng, roof_rear, roof_front, roof, width):
    """Nothing, a roof rack, a taxi sign or a roof box."""
    item = rng.choice(["none", "rack", "taxi", "box"], p=[0.55, 0.2, 0.12, 0.13])
    mid = (roof_front + roof_rear) / 2
    if item == "rack":
        return [box(roof_rear + 0.1, roof_front - 0.1, roof, roof + 0.08, 0.15, width - 0.15, CHASSIS)]
    if item == "taxi":
        return [box(mid - 0.2, mid + 0.2, roof, roof + 0.16, width / 2 - 0.3, width / 2 + 0.3, AMBER)]
    if item == "box":
        colour = rgb(pick_colour(rng))
        return [box(roof_rear + 0.15, roof_front - 0.05, roof, roof + 0.3, 0.3, width - 0.3, colour)]
    return []


def _car(rng):
    body_index = pick_colour(rng)
    body = rgb(body_index)
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
    car.edge_marks = {1: front_face(), 9: rear_face()}
    panes = int(rng.integers(2, 4)) if variant != "sedan" else 2
    windows = _car_windows(panes, (trunk, roof_rear, roof_front, length - hood), (belt, roof))
    car.side_marks = side_markings(rng, 0.15, length - 0.15, z0 + 0.08, belt - 0.08, body_index) + windows
    if rng.random() < 0.3:
        stripe_colour = rgb(pick_colour(rng, exclude=[body_index]))
        car.edge_marks[5] = [(rect(0.38, 0.62, 0.0, 1.0), stripe_colour)]
        car.edge_marks[3] = [(rect(0.38, 0.62, 0.0, 1.0), stripe_colour)]
    elif rng.random() < 0.3:
        car.edge_colours[5] = rgb(pick_colour(rng, exclude=[body_index]))
    parts = [car] + _car_roof_item(rng, roof_rear, roof_front, roof, width)
    radius = rng.uniform(0.3, 0.36) + (0.05 if variant == "suv" else 0.0)
    parts += wheels((length * 0.18, length * 0.8), radius, width, rim_colour(rng))
    return parts


def _van(rng):
    body_index = pick_colour(rng)
    body = rgb(body_index)
    length = rng.uniform(4.8, 5.8)
    width = rng.uniform(1.9, 2.0)
    z0 = 0.32
    height = rng.uniform(2.0, 2.6)
    nose = rng.uniform(0.5, 0.9)
    profile = [(0.0, z0), (length, z0), (length, z0 + 0.65), (length - nose, z0 + 0.95),
               (length - nose - 0.7, height), (0.0, height)]
    van = Part(profile, 0.0, width, body)
    van.edge_colours = {3: GLASS}
    van.edge_marks = {1: front_face(plate=False), 5: rear_face()}
    cab_back = length - nose - 1.1
    van.side_marks = side_markings(rng, 0.2, cab_back - 0.2, z0 + 0.15, height - 0.15, body_index)
    van.side_marks.append(([(cab_back + 0.1, z0 + 1.0), (length - nose - 0.2, z0 + 1.0),
                            (length - nose - 0.6, height - 0.2), (cab_back + 0.1, height - 0.2)], GLASS))
    if rng.random() < 0.5:
        # Passenger van: a row of rear windows.
        panes = int(rng.integers(2, 4))
        step = (cab_back - 0.4) / panes
        for k in range(panes):
            van.side_marks.append((rect(0.3 + k * step, 0.3 + (k + 0.8) * step,
                                         z0 + 1.0, height - 0.25), GLASS))
    parts = [van]
    item = rng.choice(["none", "rack", "ladder"], p=[0.5, 0.3, 0.2])
    if item == "rack":
        parts.append(box(0.3, cab_back, height, height + 0.1, 0.15, width - 0.15, CHASSIS))
    elif item == "ladder":
        parts.append(box(0.2, cab_back + 0.3, height, height + 0.08, width * 0.6, width * 0.85, (200, 200, 205)))
    parts += wheels((length * 0.17, length * 0.8), rng.uniform(0.32, 0.38), width, rim_colour(rng))
    return parts


def _bus(rng):
    body_index = pick_colour(rng)
    body = rgb(body_index)
    length = rng.uniform(9.5, 12.0)
    width = 2.5
    z0 = 0.35
    height = rng.uniform(2.9, 3.3)
    profile = [(0.0, z0), (length, z0), (length, height - 0.15), (length - 0.2, height), (0.0, height)]
    bus = Part(profile, 0.0, width, body)
    display = (20, 20, 20)
    bus.edge_marks = {
        1: front_face(grille=False) + [(rect(0.04, 0.96, 0.42, 0.86), GLASS),
                                        (rect(0.15, 0.85, 0.88, 0.98), display),
                                        (rect(0.25, 0.6, 0.9, 0.96), AMBER)],
        4: rear_face() + [(rect(0.1, 0.9, 0.55, 0.85), GLASS)],
    }
    belt = z0 + (height - z0) * rng.uniform(0.38, 0.48)
    top = height - 0.3
    livery = side_markings(rng, 0.2, length - 0.2, z0 + 0.1, belt - 0.1, body_index)
    panes = int(rng.integers(4, 9))
    step = (length - 1.6) / panes
    windows = [(rect(0.4 + k * step, 0.4 + (k + 0.86) * step, belt, top), GLASS) for k in range(panes)]
    bus.side_marks = livery + windows
    if rng.random() < 0.5:
        bus.side_marks.append((rect(0.0, length, top + 0.05, height - 0.05),
                               rgb(pick_colour(rng, exclude=[body_index]))))
    parts = [bus]
    if rng.random() < 0.6:
        parts.append(box(length * 0.3, length * 0.6, height, height + 0.25, 0.5, width - 0.5, (200, 200, 204)))
    parts += wheels((length * 0.2, length * 0.78), 0.5, width, rim_colour(rng))
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
        return [(rect(x0, x1, z0, z0 + share * height), accent)], (0.0, share)
    if kind == "upper":
        share = rng.uniform(0.25, 0.4)
        return [(rect(x0, x1, z1 - share * height, z1), accent)], (1.0 - share, 1.0)
    if kind in ("front", "rear"):
        share = rng.uniform(0.3, 0.5)
        xa, xb = (x1 - share * length, x1) if kind == "front" else (x0, x0 + share * length)
        return [(rect(xa, xb, z0, z1), accent)], (0.0, 1.0) if kind == "rear" else None
    if kind == "diagonal":
        xa = x0 + length * rng.uniform(0.1, 0.4)
        width = length * rng.uniform(0.15, 0.25)
        lean = length * 0.25
        return [([(xa, z0), (xa + width, z0), (xa + width + lean, z1), (xa + lean, z1)], accent)], (0.35, 0.65)
    if kind == "stripe":
        centre, half = rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.15)
        return [(rect(x0, x1, z0 + (centre - half) * height, z0 + (centre + half) * height), accent)], \
            (centre - half, centre + half)
    if kind == "stripes":
        marks = [(rect(x0, x1, z0 + a * height, z0 + (a + 0.12) * height), accent) for a in (0.25, 0.6)]
        return marks, (0.25, 0.37)
    if kind == "logo":
        size = min(height * rng.uniform(0.32, 0.42), length * 0.3)
        return [(logo(rng, x0 + length * rng.uniform(0.3, 0.7), z0 + height / 2, size), accent)], (0.4, 0.6)
    return [], None


def _truck(rng):
    # Trucks wear fleet liveries (cargo and accent colours); half of the
    # fleets paint cab and cargo alike.
    cargo_index = pick_livery(rng)
    cab_index = cargo_index if rng.random() < 0.5 else pick_colour(rng, evenness=0.5)
    accent_index = pick_livery(rng, exclude=[cargo_index])
    colours = (rgb(cab_index), rgb(cargo_index), rgb(accent_index))
    cargo = rng.choice(["box", "container", "flatbed", "tipper"], p=[0.45, 0.25, 0.12, 0.18])
    width = 2.5
    cargo_length = rng.uniform(4.5, 11.0)
    cab_length = rng.uniform(1.8, 2.3)
    cab_height = rng.uniform(2.7, 3.2)
    deck = rng.uniform(1.05, 1.3)
    cab_x0 = cargo_length + 0.3
    cab_x1 = cab_x0 + cab_length
    parts = [box(0.1, cab_x1 - 0.2, 0.55, deck, 0.35, width - 0.35, CHASSIS)]
    parts += _truck_cab(rng, cab_x0, cab_x1, cab_height, width, colours)
    parts += _truck_cargo(rng, cargo, cargo_length, deck, width, colours)
    radius = rng.uniform(0.48, 0.55)
    rear_axles = [cargo_length * f for f in ((0.15, 0.3) if cargo_length > 7 else (0.2,))]
    parts += wheels(rear_axles + [cab_x0 + cab_length * 0.55], radius, width, rim_colour(rng))
    return parts


def _truck_cab(rng, cab_x0, cab_x1, cab_height, width, colours):
    """The cab, maybe a bonnet, and a roof item; ``colours``: (cab, cargo, accent)."""
    cab_colour, _, accent = colours
    cab = Part([(cab_x0, 0.5), (cab_x1, 0.5), (cab_x1, cab_height - 0.2), (cab_x1 - 0.2, cab_height),
                (cab_x0, cab_height)], 0.0, width, cab_colour)
    cab.edge_marks = {FRONT: [(rect(0.05, 0.95, 0.6, 0.95), GLASS)] + front_face(plate=False, band=(0.0, 0.55))}
    cab.side_marks = [([(cab_x1 - 1.1, cab_height * 0.6), (cab_x1 - 0.15, cab_height * 0.6),
                        (cab_x1 - 0.25, cab_height - 0.25), (cab_x1 - 1.1, cab_height - 0.25)], GLASS)]
    if rng.random() < 0.5:
        cab.side_marks.insert(0, (rect(cab_x0, cab_x1, 0.9, 1.5), accent))
        cab.edge_marks[FRONT].insert(0, (rect(0.0, 1.0, 0.15, 0.3), accent))
    parts = [cab]
    if rng.random() < 0.35:
        hood = box(cab_x1, cab_x1 + 1.5, 0.5, 1.7, 0.25, width - 0.25, cab_colour)
        hood.edge_marks = {FRONT: front_face(plate=False)}
        parts.append(hood)
    roof_item = rng.choice(["none", "deflector", "lightbar", "horns"], p=[0.35, 0.35, 0.15, 0.15])
    if roof_item == "deflector":
        colour = cab_colour if rng.random() < 0.6 else accent
        parts.append(Part([(cab_x0 + 0.1, cab_height), (cab_x1 - 0.3, cab_height),
                           (cab_x0 + 0.5, cab_height + 0.6), (cab_x0 + 0.1, cab_height + 0.6)],
                          0.2, width - 0.2, colour))
    elif roof_item == "lightbar":
        parts.append(box(cab_x1 - 0.5, cab_x1 - 0.25, cab_height, cab_height + 0.15, 0.3, width - 0.3, AMBER))
    elif roof_item == "horns":
        parts.append(box(cab_x0 + 0.4, cab_x1 - 0.6, cab_height, cab_height + 0.2, 0.9, width - 0.9,
                         (205, 205, 210)))
    return parts


def _truck_cargo(rng, cargo, cargo_length, deck, width, colours):
    """A flatbed with its loads, or a box, container or tipper body in a livery; ``colours``: (cab, cargo,
    accent)."""
    _, cargo_colour, accent = colours
    if cargo == "flatbed":
        parts = [box(0.0, cargo_length, deck, deck + 0.25, 0.0, width, cargo_colour)]
        blocks = int(rng.integers(1, 4))
        step = cargo_length / blocks
        for k in range(blocks):
            height = rng.uniform(1.0, 2.0)
            block = box(k * step + 0.15, (k + 1) * step - 0.15, deck + 0.25, deck + 0.25 + height,
                        0.15, width - 0.15, accent)
            block.side_marks = [(rect(k * step + 0.15, (k + 1) * step - 0.15, deck + 0.25 + height * 0.45,
                                      deck + 0.25 + height * 0.55), CHASSIS)]
            parts.append(block)
        return parts
    top = deck + rng.uniform(1.0, 1.6) if cargo == "tipper" else rng.uniform(3.4, 4.0)
    load = box(0.0, cargo_length, deck, top, 0.0, width, cargo_colour)
    marks, band = _livery(rng, 0.0, cargo_length, deck, top, accent)
    if cargo != "box":
        # Container ribs and tipper panels, in a darker shade of the body.
        ribs = max(5, int(cargo_length * (2.2 if cargo == "container" else 0.6)))
        shade = tuple(int(v * 0.72) for v in cargo_colour)
        marks = [(rect(cargo_length * k / ribs, cargo_length * k / ribs + 0.1, deck, top), shade)
                 for k in range(1, ribs)] + marks
    load.side_marks = marks
    ends = [] if band is None else [(rect(0.0, 1.0, band[0], band[1]), accent)]
    doors = [(rect(0.49, 0.51, 0.05, 0.95), CHASSIS), (rect(0.02, 0.98, 0.0, 0.04), TAIL_LIGHT)]
    load.edge_marks = {REAR: ends + doors, FRONT: list(ends)}
    if cargo == "tipper":
        load.edge_colours = {TOP: tuple(int(v * 0.35) for v in cargo_colour)}
    return [load]


_BUILDERS = {"car": _car, "van": _van, "bus": _bus, "truck": _truck}


@lru_cache(maxsize=4096)
def make_identity(seed, dataset, pid):
    """The parts of identity ``pid`` of ``dataset``: the same vehicle in every image."""
    rng = random_stream(seed, dataset, IDENTITY_SEED, pid)
    kinds, weights = zip(*STYLES[dataset]["kinds"])
    kind = kinds[int(rng.choice(len(kinds), p=np.array(weights) / sum(weights)))]
    return _BUILDERS[kind](rng)
