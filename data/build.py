"""From a config to the training and test loaders.

Repeatability, including after a resume: the training sampler's order is a
function of (SOLVER.SEED, epoch), and the loader draws its workers' seeds from
the sampler's torch.Generator, which is reseeded from the same pair. Worker w
seeds torch (and so every random transform) with that draw + w, and batches go
to workers round-robin, so epoch e's batches and augmentations are the same
whenever it runs, provided the trainer calls ``train_sampler.set_epoch(e)``
before the epoch starts (a resumed run calls it with the epoch it resumes at)
and DATALOADER.NUM_WORKERS is unchanged. With NUM_WORKERS 0 the transforms use
the main process's torch RNG, which the trainer reseeds from (SOLVER.SEED,
epoch, rank) as each epoch starts (engine.runtime.seed_epoch).
"""
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, DistributedSampler

from utils.errors import UserError

from .dataset_check import warn_queries_without_match
from .dataset_presets import display_name, load_test_set, load_train_set, log_statistics
from .image_dataset import ImageDataset
from .samplers import RandomIdentitySampler, ShuffledSampler
from .transforms import build_transforms, input_size


@dataclass
class TestData:
    """The target's query + gallery, all that evaluation needs."""

    test_loader: DataLoader
    num_query: int
    query_records: list
    gallery_records: list


@dataclass
class DataBundle(TestData):
    """Everything the trainer and the evaluator need from the data.

    validation: DATASETS.VALIDATION's query + gallery (a TestData), or None.
    """

    train_loader: DataLoader
    num_classes: int
    num_domains: int
    train_records: list
    train_sampler: object
    validation: TestData = None


def _uses_cuda(cfg):
    device = cfg.MODEL.DEVICE
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def _rank_and_world_size():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def balances_sources(cfg):
    """Whether P x K batches hold identities of every source (DATALOADER.SOURCE_BALANCED).

    'auto' balances only for the image level, which pairs every image with one of
    another domain; otherwise identities come uniformly from the merged sources, as in BoT.
    """
    setting = cfg.DATALOADER.SOURCE_BALANCED
    return cfg.DISENTANGLE.IMAGE.ENABLED if setting == "auto" else setting == "yes"


def _train_sampler(cfg, records, batch_size, rank, world_size):
    if cfg.DATALOADER.SAMPLER == "softmax":
        return ShuffledSampler(len(records), seed=cfg.SOLVER.SEED, rank=rank, world_size=world_size)
    return RandomIdentitySampler(records, batch_size, cfg.DATALOADER.NUM_INSTANCE, seed=cfg.SOLVER.SEED,
                                 rank=rank, world_size=world_size, balance_sources=balances_sources(cfg))


def _generate_demo_if_asked(cfg):
    if cfg.DATASETS.GENERATE_DEMO:
        # Imported only for demo runs. It returns at once when ROOT_DIR already
        # holds the datasets (generated with DEMO_SEED, or the user's own).
        from .demo import ensure_demo_data
        rank, world_size = _rank_and_world_size()
        # Under torchrun one process writes the tree while the others wait.
        if rank == 0:
            ensure_demo_data(cfg)
        if world_size > 1:
            torch.distributed.barrier()


def make_data_loaders(cfg):
    """Read the datasets named by the config and build their loaders.

    SOLVER.IMS_PER_BATCH is the global batch; under torch.distributed each
    rank loads IMS_PER_BATCH / world_size images of distinct identities.
    The test loader reads query first, then gallery; under torch.distributed
    each rank reads its shard (see engine.evaluator.IndexedBatches).
    """
    _generate_demo_if_asked(cfg)
    train_records, num_classes, num_domains = load_train_set(cfg)
    query_records, gallery_records = load_test_set(cfg)
    log_statistics(cfg, train_records, query_records, gallery_records)

    rank, world_size = _rank_and_world_size()
    if cfg.SOLVER.IMS_PER_BATCH % world_size:
        raise UserError(f"SOLVER.IMS_PER_BATCH = {cfg.SOLVER.IMS_PER_BATCH} does not split "
                        f"evenly over {world_size} processes")
    batch_size = cfg.SOLVER.IMS_PER_BATCH // world_size
    train_sampler = _train_sampler(cfg, train_records, batch_size, rank, world_size)

    train_set = ImageDataset(train_records, build_transforms(cfg, is_train=True),
                             target_size=input_size(cfg, is_train=True), draft=cfg.INPUT.JPEG_DRAFT,
                             is_train=True, strict=cfg.DATASETS.STRICT)
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=train_sampler, drop_last=True,
                              generator=train_sampler.generator, **_loader_options(cfg))

    test = _test_data(cfg, query_records, gallery_records)
    validation = None
    if cfg.DATASETS.VALIDATION:
        validation = _test_data(cfg, *load_test_set(cfg, cfg.DATASETS.VALIDATION), name=cfg.DATASETS.VALIDATION)
    return DataBundle(
        train_loader=train_loader,
        num_classes=num_classes,
        num_domains=num_domains,
        train_records=train_records,
        train_sampler=train_sampler,
        validation=validation,
        **vars(test),
    )


def _loader_options(cfg):
    return dict(num_workers=cfg.DATALOADER.NUM_WORKERS, pin_memory=_uses_cuda(cfg), persistent_workers=False)


def records_loader(cfg, records, shard=False):
    """A loader of ``records`` in order, through the test transform (and JPEG draft decoding).

    ``shard``: under torch.distributed each rank reads its shard, padded to the
    same length with repeats (which the evaluator drops).
    """
    dataset = ImageDataset(records, build_transforms(cfg, is_train=False), target_size=input_size(cfg, is_train=False),
                           draft=cfg.INPUT.JPEG_DRAFT, is_train=False, strict=cfg.DATASETS.STRICT)
    rank, world_size = _rank_and_world_size()
    sampler = None
    if shard and world_size > 1:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
    return DataLoader(dataset, batch_size=cfg.TEST.IMS_PER_BATCH, shuffle=False, sampler=sampler,
                      **_loader_options(cfg))


def _test_data(cfg, query_records, gallery_records, name=None):
    warn_queries_without_match(query_records, gallery_records, display_name(cfg, name or cfg.DATASETS.TARGET))
    return TestData(test_loader=records_loader(cfg, query_records + gallery_records, shard=True),
                    num_query=len(query_records), query_records=query_records, gallery_records=gallery_records)


def make_test_data(cfg):
    """Only the target's query + gallery: testing needs no training set on disk."""
    _generate_demo_if_asked(cfg)
    query_records, gallery_records = load_test_set(cfg)
    return _test_data(cfg, query_records, gallery_records)
