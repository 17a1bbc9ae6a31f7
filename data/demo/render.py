"""Rendering one demo image: the identity's parts projected through a camera, painted, then photographed.

The parts are projected in perspective and painted far to near (parts by
their nearest point, faces within a part by mean depth) at twice the size,
then reduced; blur, the camera's colour cast and brightness, texture and
noise give each dataset its look (styles.py).
"""
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .cameras import make_camera
from .styles import IMAGE_SEED, STYLES, random_stream
from .vehicles import make_identity

_SUPERSAMPLE = 2


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


def _project(mesh, camera, rng, style):
    """Screen coordinates (vehicle vertices, then its ground shadow), depth of every vertex, the depth
    component of each face normal, and the image (width, height), framed as the camera frames a shot."""
    low, high = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    azimuth = camera.azimuth + rng.normal(0, style["view_jitter"])
    elevation = camera.elevation + rng.normal(0, style["view_jitter"] / 3)
    distance = camera.distance * float(np.linalg.norm(high - low))
    shadow = np.array([[low[0] - 0.2, low[1] - 0.2, 0.0], [high[0] + 0.2, low[1] - 0.2, 0.0],
                       [high[0] + 0.2, high[1] + 0.2, 0.0], [low[0] - 0.2, high[1] + 0.2, 0.0]])
    right, up, depth = _rotate(azimuth, elevation, np.concatenate([mesh.vertices, shadow]) - (low + high) / 2)
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
    return screen * scale + offset, depth, normal_depth, (width, height)


def _paint_scene(draw, size, camera, rng, style):
    """The camera's scene, cropped where this vehicle stopped: the crop moves over the scene."""
    pixels = np.array(size, dtype=np.float64)
    move = style["scene_jitter"]
    zoom = rng.uniform(1 - move / 2, 1 + move / 2)
    shift = rng.uniform(-move, move, 2)
    for polygon, colour in camera.background:
        window = (np.asarray(polygon) - 0.5) * zoom + 0.5 + shift
        draw.polygon((window * pixels).ravel().tolist(), fill=colour)


def _paint_vehicle(draw, mesh, screen, depth, normal_depth, camera, style):
    """Its shadow, then its visible faces in painter's order: parts by their nearest point, far first; faces
    within a part by mean depth."""
    draw.polygon(screen[len(mesh.vertices):].ravel().tolist(), fill=(28, 28, 30))
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


def _photograph(image, camera, rng, style):
    """The dataset's look on the painted image: blur, the camera's colour cast and brightness, texture, noise."""
    blur = rng.uniform(*style["blur"])
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(image, dtype=np.float32)
    gains = np.array(camera.gains, dtype=np.float32) * np.float32(rng.uniform(0.93, 1.07))
    pixels = pixels * gains
    if style["texture"] > 0:
        field_small = rng.normal(0, 1, (5, 5)).astype(np.float32)
        field_image = Image.fromarray(field_small, mode="F").resize(image.size, Image.BICUBIC)
        pixels *= (1.0 + style["texture"] * np.asarray(field_image))[..., None]
    noise = rng.uniform(*style["noise"])
    if noise > 0:
        pixels += rng.normal(0, noise, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def render_image(seed, dataset, pid, cam, index):
    """(image, JPEG quality) of shot ``index`` of identity ``pid`` by camera ``cam`` of ``dataset``."""
    style = STYLES[dataset]
    mesh = _mesh(seed, dataset, pid)
    camera = make_camera(seed, dataset, cam)
    rng = random_stream(seed, dataset, IMAGE_SEED, pid, cam, index)
    screen, depth, normal_depth, (width, height) = _project(mesh, camera, rng, style)
    canvas = Image.new("RGB", (width * _SUPERSAMPLE, height * _SUPERSAMPLE))
    draw = ImageDraw.Draw(canvas)
    _paint_scene(draw, canvas.size, camera, rng, style)
    _paint_vehicle(draw, mesh, screen, depth, normal_depth, camera, style)
    return _photograph(canvas.reduce(_SUPERSAMPLE), camera, rng, style), camera.quality
