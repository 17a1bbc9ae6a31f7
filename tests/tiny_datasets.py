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


def _write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def make_vehicleid_tree(root):
    """VehicleID's layout: image/<7-digit id>.jpg and train_test_split/*.txt lines "<image id> <vehicle id>".
    Training: vehicles 1-3, 3 images each; test list: vehicles 11-13 with 3, 2 and 1 images."""
    base = os.path.join(root, "vehicleid")
    os.makedirs(os.path.join(base, "image"))
    train = [(image, 1 + image // 3) for image in range(9)]
    test = [(100, 11), (101, 11), (102, 11), (103, 12), (104, 12), (105, 13)]
    for image, _ in train + test:
        add_jpeg(os.path.join(base, "image", f"{image:07d}.jpg"), image)
    _write_lines(os.path.join(base, "train_test_split", "train_list.txt"), [f"{i:07d} {v}" for i, v in train])
    _write_lines(os.path.join(base, "train_test_split", "test_list_800.txt"), [f"{i:07d} {v}" for i, v in test])
    return root


def make_veriwild_tree(root, unlisted_camera=False):
    """VeRi-Wild's layout: images/<vehicle>/<image>.jpg, lists of "<vehicle>/<image>" and vehicle_info.txt
    ("<vehicle>/<image>;<camera>;..." under a header). Training: vehicles 1-2 x 2 images; query: one image of
    vehicles 5 and 6 on camera 1; gallery: two of each on cameras 2 and 3. With ``unlisted_camera`` one
    gallery image has no line in vehicle_info.txt."""
    base = os.path.join(root, "veriwild")
    images = {"train": [(1, 1, 4), (1, 2, 7), (2, 3, 4), (2, 4, 9)],
              "query": [(5, 10, 1), (6, 20, 1)],
              "gallery": [(5, 11, 2), (5, 12, 3), (6, 21, 2), (6, 22, 3)]}
    info = ["id/image;Camera ID;Time;Model;Type;Color"]
    for split_images in images.values():
        for vehicle, image, camera in split_images:
            os.makedirs(os.path.join(base, "images", f"{vehicle:05d}"), exist_ok=True)
            add_jpeg(os.path.join(base, "images", f"{vehicle:05d}", f"{image:06d}.jpg"), image)
            if not (unlisted_camera and image == 22):
                info.append(f"{vehicle:05d}/{image:06d};{camera};2018-03-28 10:00:00;model;SUV;white")
    split_dir = os.path.join(base, "train_test_split")
    for split, name in (("train", "train_list"), ("query", "test_3000_query"), ("gallery", "test_3000")):
        _write_lines(os.path.join(split_dir, f"{name}.txt"), [f"{v:05d}/{i:06d}" for v, i, _ in images[split]])
    _write_lines(os.path.join(split_dir, "vehicle_info.txt"), info)
    return root


def make_market_tree(root):
    """Market-1501 as reid-strong-baseline reads it: bounding_box_train/, query/, bounding_box_test/ with
    names like 0002_c1s1_000451_03.jpg, junk -1_c... and distractors 0000_c... in the gallery."""
    base = os.path.join(root, "market1501")
    files = {"bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s1_000101_01.jpg",
                                    "0007_c4s2_000201_02.jpg"],
             "query": ["0001_c1s1_001051_00.jpg", "0003_c2s1_000151_00.jpg"],
             "bounding_box_test": ["0001_c2s1_000301_02.jpg", "0003_c5s3_015240_04.jpg", "-1_c1s1_000401_03.jpg",
                                   "0000_c6s1_000023_03.jpg"]}
    for folder, names in files.items():
        os.makedirs(os.path.join(base, folder))
        for index, name in enumerate(names):
            add_jpeg(os.path.join(base, folder, name), index)
    return root
