"""The dataset table: every dataset is an entry DATASETS.<NAME> of the config, with the fields of DATASET_FIELDS.

The presets below (VeRi-776, VehicleX, Opri, VehicleID, VeRi-Wild,
Market-1501) and a user's own datasets (entries a YAML file adds: README,
"Your own dataset") are read the same way; SOURCES, TARGET and VALIDATION
name entries in any case, and the fields an entry leaves out keep the values
of DATASET_FIELDS. This module holds the fields, the presets, finds entries
and checks that the ones a run uses are complete; data/dataset_presets.py
reads them.
"""
from yacs.config import CfgNode

from .errors import ConfigError

SPLIT_KEYS = {"train": "TRAIN_DIR", "query": "QUERY_DIR", "gallery": "GALLERY_DIR"}

DATASET_FIELDS = CfgNode()
# Name shown in logs ("" = the entry's name)
DATASET_FIELDS.NAME = ""
# Folder under ROOT_DIR ("" = the entry's name in lower case)
DATASET_FIELDS.FOLDER = ""
# Regex with the named groups pid and camid, matched on an image's base name (folder splits) or on a line of
# a list file (list splits, where the group path names the image); without camid every image is its own camera
DATASET_FIELDS.PATTERN = ""
# Training split: a folder of images, or a text file listing them, relative to FOLDER ("" = none)
DATASET_FIELDS.TRAIN_DIR = ""
# Query split: a folder or a list file, relative to FOLDER ("" = none)
DATASET_FIELDS.QUERY_DIR = ""
# Gallery split: a folder or a list file, relative to FOLDER ("" = none)
DATASET_FIELDS.GALLERY_DIR = ""
# Other folders under FOLDER where the split folders may sit (e.g. an archive's own top folder)
DATASET_FIELDS.ALSO_UNDER = []
# List splits: folder of the listed images, relative to FOLDER
DATASET_FIELDS.IMAGE_DIR = ""
# List splits: appended to the path group to name the image file (e.g. ".jpg")
DATASET_FIELDS.IMAGE_SUFFIX = ""
# List splits without a camid group: a text file, relative to FOLDER, giving each listed image's camera
DATASET_FIELDS.CAMERA_FILE = ""
# Regex with the named groups path and camid for CAMERA_FILE's lines (other lines, e.g. a header, are skipped)
DATASET_FIELDS.CAMERA_PATTERN = ""
# 0: query and gallery are their own splits; N > 0: QUERY_DIR holds the whole test split, and N images per
# identity (drawn with seed 0) make the gallery, the rest the queries (VehicleID's protocol, N = 1)
DATASET_FIELDS.GALLERY_PER_ID = 0
# Published [ids, images] of the training split, compared when CHECK_COUNTS is on ([] = none; -1 = unknown)
DATASET_FIELDS.TRAIN_COUNTS = []
# Published [ids, images] of the query split ([] = none; -1 = unknown)
DATASET_FIELDS.QUERY_COUNTS = []
# Published [ids, images] of the gallery split ([] = none; -1 = unknown)
DATASET_FIELDS.GALLERY_COUNTS = []


def _dataset(**fields):
    entry = DATASET_FIELDS.clone()
    for field, value in fields.items():
        if field not in entry:
            raise KeyError(f"{field} is not a field of DATASET_FIELDS")
        entry[field] = value
    return entry


_VERI_NAMES = r"^(?P<pid>-?\d+)_c(?P<camid>\d+)_\d+_\d+\.jpg$"

# The presets, in the order errors list them; a YAML file may add entries of its own.
DATASET_PRESETS = {
    # VeRi-776 (Liu et al., ICME 2016): 0002_c002_00030600_0.jpg; pid -1 is junk
    "VERI": _dataset(
        NAME="VeRi-776", FOLDER="veri", PATTERN=_VERI_NAMES,
        TRAIN_DIR="image_train", QUERY_DIR="image_query", GALLERY_DIR="image_test",
        TRAIN_COUNTS=[576, 37778], QUERY_COUNTS=[200, 1678], GALLERY_COUNTS=[200, 11579]),
    # VehicleX (AI City 2020 re-ID simulation release; train split only, "about 192k" images): 0001_c001_33.jpg
    "VEHICLEX": _dataset(
        NAME="VehicleX", FOLDER="vehiclex", PATTERN=r"^(?P<pid>-?\d+)_c(?P<camid>\d+)_\d+\.jpg$",
        TRAIN_DIR="image_train", ALSO_UNDER=["AIC20_ReID_Simulation"], TRAIN_COUNTS=[1362, -1]),
    # Opri (Optimus Prime trucks); naming unpublished, VeRi's pattern assumed; its train split is not used
    "OPRI": _dataset(
        NAME="Opri", FOLDER="opri", PATTERN=_VERI_NAMES,
        TRAIN_DIR="image_train", QUERY_DIR="image_query", GALLERY_DIR="image_test",
        TRAIN_COUNTS=[8918, 67321], QUERY_COUNTS=[8917, 8917], GALLERY_COUNTS=[-1, 54756]),
    # VehicleID (Liu et al., CVPR 2016): image/<image id>.jpg, train_test_split/*.txt lines "<image id> <vehicle id>";
    # no cameras; the test list of 800 vehicles (test_list_1600.txt, test_list_2400.txt: the larger ones)
    "VEHICLEID": _dataset(
        NAME="VehicleID", FOLDER="vehicleid", PATTERN=r"^(?P<path>\d+) (?P<pid>\d+)$",
        TRAIN_DIR="train_test_split/train_list.txt", QUERY_DIR="train_test_split/test_list_800.txt",
        IMAGE_DIR="image", IMAGE_SUFFIX=".jpg", GALLERY_PER_ID=1,
        TRAIN_COUNTS=[13164, 113346], GALLERY_COUNTS=[800, 800]),
    # VeRi-Wild (Lou et al., CVPR 2019): images/<vehicle id>/<image id>.jpg, train_test_split/*.txt lines
    # "<vehicle id>/<image id>", cameras in vehicle_info.txt; the small test set (test_5000*, test_10000*: larger)
    "VERIWILD": _dataset(
        NAME="VeRi-Wild", FOLDER="veriwild", PATTERN=r"^(?P<path>(?P<pid>\d+)/\d+)$",
        TRAIN_DIR="train_test_split/train_list.txt", QUERY_DIR="train_test_split/test_3000_query.txt",
        GALLERY_DIR="train_test_split/test_3000.txt", IMAGE_DIR="images", IMAGE_SUFFIX=".jpg",
        CAMERA_FILE="train_test_split/vehicle_info.txt", CAMERA_PATTERN=r"^(?P<path>\d+/\d+);(?P<camid>\d+);.*$",
        TRAIN_COUNTS=[30671, 277797], QUERY_COUNTS=[3000, 3000], GALLERY_COUNTS=[3000, -1]),
    # Market-1501 (Zheng et al., ICCV 2015), laid out as reid-strong-baseline reads it: 0002_c1s1_000451_03.jpg;
    # pid -1 is junk, pid 0 the gallery's distractors
    "MARKET1501": _dataset(
        NAME="Market-1501", FOLDER="market1501", PATTERN=r"^(?P<pid>-?\d+)_c(?P<camid>\d)s\d+_\d+_\d+\.jpg$",
        TRAIN_DIR="bounding_box_train", QUERY_DIR="query", GALLERY_DIR="bounding_box_test",
        TRAIN_COUNTS=[751, 12936], QUERY_COUNTS=[750, 3368], GALLERY_COUNTS=[751, 15913]),
}


def new_entry():
    """An entry with every field at its default, to be filled from a YAML file."""
    return DATASET_FIELDS.clone()


def is_entry_field(field):
    return field in DATASET_FIELDS


def dataset_names(cfg):
    """The names of every entry of the table, in lower case, in table order."""
    return [key.lower() for key, value in cfg.DATASETS.items() if isinstance(value, CfgNode)]


def dataset_entry(cfg, name):
    """(key, entry) of dataset ``name``; a ConfigError naming the known ones when there is none."""
    key = name.upper()
    entry = cfg.DATASETS.get(key)
    if not isinstance(entry, CfgNode):
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(dataset_names(cfg))} (or describe it "
                          f"under DATASETS.{key}: FOLDER, PATTERN, TRAIN_DIR, QUERY_DIR, GALLERY_DIR; see README)")
    return key, entry


def check_used_entries(cfg):
    """SOURCES, TARGET and VALIDATION (when set) name complete entries: a pattern, the splits each role reads."""
    sources = [name.lower() for name in cfg.DATASETS.SOURCES]
    if not sources:
        raise ConfigError(f"DATASETS.SOURCES is empty: name one or more of {', '.join(dataset_names(cfg))}")
    if len(set(sources)) != len(sources):
        raise ConfigError(f"DATASETS.SOURCES names a dataset twice: {list(cfg.DATASETS.SOURCES)}")
    roles = [("DATASETS.SOURCES", source) for source in sources] + [("DATASETS.TARGET", cfg.DATASETS.TARGET.lower())]
    if cfg.DATASETS.VALIDATION:
        roles.append(("DATASETS.VALIDATION", cfg.DATASETS.VALIDATION.lower()))
    for role, name in roles:
        try:
            key, entry = dataset_entry(cfg, name)
        except ConfigError as err:
            none = ", or '' for none" if role == "DATASETS.VALIDATION" else ""
            raise ConfigError(f"{role}: {err}{none}") from None
        field = f"DATASETS.{key}"
        if not entry.PATTERN:
            raise ConfigError(f"{field}.PATTERN is empty: give a regex with the named groups pid and camid "
                              "that reads the dataset's file names (or list lines)")
        if entry.CAMERA_FILE and not entry.CAMERA_PATTERN:
            raise ConfigError(f"{field}.CAMERA_FILE is set but {field}.CAMERA_PATTERN is empty")
        if role == "DATASETS.SOURCES":
            needed = ["TRAIN_DIR"]
        else:
            needed = ["QUERY_DIR"] if entry.GALLERY_PER_ID else ["QUERY_DIR", "GALLERY_DIR"]
        for split_key in needed:
            if not entry[split_key]:
                what = "training" if role == "DATASETS.SOURCES" else "query/gallery"
                raise ConfigError(f"{role} = {name!r}: {entry.NAME or name} has no {what} split "
                                  f"({field}.{split_key} is empty)")
        for counts_key in ("TRAIN_COUNTS", "QUERY_COUNTS", "GALLERY_COUNTS"):
            if len(entry[counts_key]) not in (0, 2):
                raise ConfigError(f"{field}.{counts_key} = {list(entry[counts_key])} must be [ids, images] or []")
