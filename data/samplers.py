"""Training samplers: BoT's P x K identity sampler and plain shuffling.

Both are deterministic functions of (seed, epoch). Each pass advances the
epoch by one; ``set_epoch(e)`` pins the next pass to epoch e, which is how a
resumed run repeats the batches it would have seen. Each sampler also owns
the torch.Generator its DataLoader draws worker seeds from, reseeded with the
epoch, so augmentation in workers repeats as well (see data/build.py).

With ``world_size`` > 1 every rank builds the same global batches from the
same seed and keeps its own slice, so ranks never share an identity within
a step, and each rank's epoch length is the global length / world_size.
"""
import numpy as np
import torch
from torch.utils.data import Sampler

from utils.errors import UserError


class _EpochSeeded(Sampler):
    def __init__(self, seed, rank, world_size):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Make the next pass (and the loader's worker seeds) those of ``epoch``."""
        self.epoch = int(epoch)
        # The rank too, so that the processes of a distributed run augment differently.
        worker_seed = np.random.SeedSequence([self.seed, self.epoch, 1, self.rank]).generate_state(1, np.uint64)[0]
        self.generator.manual_seed(int(worker_seed))

    def _start_pass(self):
        """The RNG of this pass; prepares the next one."""
        rng = np.random.default_rng([self.seed, self.epoch, 0])
        self.set_epoch(self.epoch + 1)
        return rng


class RandomIdentitySampler(_EpochSeeded):
    """P x K batches: P identities with K images each (BoT's sampler).

    An identity with fewer than K images is sampled with replacement. With
    ``balance_sources`` and records from two or more sources every batch
    holds identities of every source, P split evenly (the remainder
    rotates), because the image-level module pairs each image with one of
    another domain; without it, identities are drawn uniformly from all
    sources together, as in BoT. A pass yields
    (chunks of K over all identities) // (P x world_size) global batches;
    a source that runs out of identities within a pass is reshuffled and
    reused, so small sources recur and large ones are subsampled.
    """

    def __init__(self, records, batch_size, num_instances, seed=0, rank=0, world_size=1, balance_sources=True):
        if batch_size % num_instances:
            raise UserError(f"batch size {batch_size} is not a multiple of "
                            f"DATALOADER.NUM_INSTANCE = {num_instances}")
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances

        by_source = {}
        for index, record in enumerate(records):
            pool = record.source if balance_sources else 0
            by_source.setdefault(pool, {}).setdefault((record.source, record.pid), []).append(index)
        self.sources = sorted(by_source)
        self.index_lists = [[by_source[s][pid] for pid in sorted(by_source[s])] for s in self.sources]
        if self.num_pids_per_batch < len(self.sources):
            raise UserError(
                f"a batch of {self.num_pids_per_batch} identities cannot hold all {len(self.sources)} "
                "sources; raise SOLVER.IMS_PER_BATCH or lower DATALOADER.NUM_INSTANCE")
        super().__init__(seed, rank, world_size)
        needed = -(-self.num_pids_per_batch // len(self.sources)) * world_size
        for position, source in enumerate(self.sources):
            if len(self.index_lists[position]) < needed:
                raise UserError(
                    f"training source {source} has {len(self.index_lists[position])} identities; a step of "
                    f"{world_size} rank(s) needs {needed} distinct ones from it. Lower SOLVER.IMS_PER_BATCH "
                    "or raise DATALOADER.NUM_INSTANCE")

        chunks = sum(max(len(indices), num_instances) // num_instances
                     for per_source in self.index_lists for indices in per_source)
        self.num_steps = chunks // (self.num_pids_per_batch * world_size)
        if self.num_steps == 0:
            raise UserError(f"the training set is too small for one batch of {batch_size} images "
                            f"on {world_size} rank(s); lower SOLVER.IMS_PER_BATCH")

    def __len__(self):
        return self.num_steps * self.batch_size

    def _shares(self, step):
        """Identities per source in the batches of ``step``."""
        count = len(self.sources)
        base, extra = divmod(self.num_pids_per_batch, count)
        return [base + ((position - step) % count < extra) for position in range(count)]

    def _chunks(self, indices, rng):
        """``indices`` shuffled into chunks of K (with replacement when fewer than K)."""
        k = self.num_instances
        if len(indices) < k:
            picked = rng.choice(indices, size=k, replace=True)
        else:
            picked = rng.permutation(indices)
        return [picked[i:i + k].tolist() for i in range(0, len(picked) - k + 1, k)]

    def _global_batches(self, rng):
        pools = [_IdentityPool(per_source, self._chunks, rng) for per_source in self.index_lists]
        for step in range(self.num_steps):
            per_rank = [[] for _ in range(self.world_size)]
            for pool, share in zip(pools, self._shares(step)):
                chosen = pool.take(share * self.world_size)
                for rank in range(self.world_size):
                    for chunk in chosen[rank * share:(rank + 1) * share]:
                        per_rank[rank].extend(chunk)
            yield per_rank

    def __iter__(self):
        rng = self._start_pass()
        for per_rank in self._global_batches(rng):
            yield from per_rank[self.rank]


class _IdentityPool:
    """The not yet used K-chunks of each identity of one source."""

    def __init__(self, index_lists, make_chunks, rng):
        self.index_lists = index_lists
        self.make_chunks = make_chunks
        self.rng = rng
        self.chunks = [[] for _ in index_lists]
        self.available = []

    def _refill(self):
        for identity, indices in enumerate(self.index_lists):
            self.chunks[identity].extend(self.make_chunks(indices, self.rng))
        self.available = list(range(len(self.index_lists)))

    def take(self, count):
        """One chunk each of ``count`` distinct identities."""
        if len(self.available) < count:
            self._refill()
        chosen = self.rng.choice(len(self.available), size=count, replace=False)
        identities = [self.available[i] for i in chosen]
        taken = [self.chunks[identity].pop(0) for identity in identities]
        self.available = [identity for identity in self.available if self.chunks[identity]]
        return taken


class ShuffledSampler(_EpochSeeded):
    """A new permutation of all indices each pass (DATALOADER.SAMPLER 'softmax').

    Across ranks, each gets every world_size-th index of the same permutation;
    the tail that would make ranks unequal is dropped.
    """

    def __init__(self, num_samples, seed=0, rank=0, world_size=1):
        super().__init__(seed, rank, world_size)
        self.num_samples = num_samples

    def __len__(self):
        return self.num_samples // self.world_size

    def __iter__(self):
        order = self._start_pass().permutation(self.num_samples)
        yield from order[self.rank:len(self) * self.world_size:self.world_size].tolist()
