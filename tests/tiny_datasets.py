"""Tiny hand-made datasets in the real layouts, with the faults users meet.

VeRi-style training images of 4 identities x 4 images on 2 cameras;
Opri-style query (ids 1-3, camera 1) and gallery (ids 1 and 2, camera 2),
so query id 3 has no match.
"""
import os

import numpy as np
from PIL import Image

TRUNCATED = "0001_c001_00000000_2.jpg"
NOT_AN_IMAGE = "0002_c002_00000000_3.jpg"
BAD_NAME = "IMG_0042.jpg"
TRUNCATED_GALLERY = "0001_c002_00000000_1.jpg"


def add_jpeg(path, seed):
    """A small random JPEG at ``path``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def _cut_in_half(path):
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[:len(data) // 2])


def make_tree(root, faults=()):
    """The tiny datasets under ``root``; ``faults`` from
    {"truncated", "not_an_image", "bad_name"} (training) and {"truncated_gallery"}."""
    train = os.path.join(root, "veri", "image_train")
    query = os.path.join(root, "opri", "image_query")
    gallery = os.path.join(root, "opri", "image_test")
    for folder in (train, query, gallery):
        os.makedirs(folder)
    for pid in range(1, 5):
        for index in range(4):
            add_jpeg(os.path.join(train, f"{pid:04d}_c{1 + index % 2:03d}_00000000_{index}.jpg"), pid * 10 + index)
    for pid in range(1, 4):
        add_jpeg(os.path.join(query, f"{pid:04d}_c001_00000000_0.jpg"), 100 + pid)
    for pid in range(1, 3):
        for index in range(2):
            add_jpeg(os.path.join(gallery, f"{pid:04d}_c002_00000000_{index}.jpg"), 200 + pid * 10 + index)
    if "truncated" in faults:
        _cut_in_half(os.path.join(train, TRUNCATED))
    if "truncated_gallery" in faults:
        _cut_in_half(os.path.join(gallery, TRUNCATED_GALLERY))
    if "not_an_image" in faults:
        with open(os.path.join(train, NOT_AN_IMAGE), "w") as handle:
            handle.write("<html>404 Not Found</html>\n")
    if "bad_name" in faults:
        add_jpeg(os.path.join(train, BAD_NAME), 7)
    return root
