"""P x K identity sampler and the shuffling sampler."""
from collections import Counter

import pytest

from data.reid_folder import ImageRecord
from data.samplers import RandomIdentitySampler, ShuffledSampler
from utils.errors import UserError


def make_records(images_per_pid, source=0, first_pid=0):
    """``images_per_pid[i]`` images of pid first_pid + i, all from ``source``."""
    return [ImageRecord(f"s{source}_{pid}_{n}.jpg", first_pid + pid, 0, source, source)
            for pid, count in enumerate(images_per_pid) for n in range(count)]


def batches(sampler, batch_size):
    order = list(sampler)
    assert len(order) == len(sampler) and len(order) % batch_size == 0
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def test_every_batch_is_p_identities_times_k_images():
    # pid 3 has 2 images < K: sampled with replacement
    records = make_records([4, 9, 5, 2, 8, 4, 6, 7])
    sampler = RandomIdentitySampler(records, batch_size=12, num_instances=4, seed=0)
    # chunks of 4: 1 + 2 + 1 + 1 + 2 + 1 + 1 + 1 = 10 -> 10 // 3 = 3 batches
    assert len(sampler) == 36
    for batch in batches(sampler, 12):
        counts = Counter(records[i].pid for i in batch)
        assert len(counts) == 3 and set(counts.values()) == {4}
        for k in range(0, 12, 4):
            assert len({records[i].pid for i in batch[k:k + 4]}) == 1


def test_identity_with_few_images_repeats_its_images():
    records = make_records([1, 6, 6])
    sampler = RandomIdentitySampler(records, batch_size=6, num_instances=2, seed=3)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in batches(sampler, 6):
            assert Counter(records[i].pid for i in batch)[0] == 2


def test_a_pass_covers_most_images():
    records = make_records([8] * 20)
    sampler = RandomIdentitySampler(records, batch_size=16, num_instances=4, seed=0)
    assert len(sampler) == 160
    # identities are refilled only when fewer than P remain, near the end of a pass
    assert len(set(sampler)) >= 150


def test_two_sources_meet_in_every_batch():
    records = make_records([4] * 5, source=0) + make_records([4] * 30, source=1, first_pid=5)
    sampler = RandomIdentitySampler(records, batch_size=20, num_instances=4, seed=1)
    all_batches = batches(sampler, 20)
    assert len(all_batches) == 35 // 5
    shares = []
    for batch in all_batches:
        per_source = Counter(records[i].source for i in batch)
        assert set(per_source) == {0, 1}
        shares.append(per_source[0] // 4)
        assert len({records[i].pid for i in batch}) == 5
    # P = 5 over 2 sources: 3 + 2, the extra identity alternating between sources
    assert shares == [3, 2, 3, 2, 3, 2, 3]


def test_same_seed_and_epoch_give_the_same_order():
    records = make_records([5, 7, 4, 6, 9, 3])
    first = RandomIdentitySampler(records, 8, 4, seed=7)
    second = RandomIdentitySampler(records, 8, 4, seed=7)
    epoch0 = list(first)
    assert list(second) == epoch0
    epoch1 = list(first)
    assert epoch1 != epoch0
    second.set_epoch(1)
    assert list(second) == epoch1
    first.set_epoch(0)
    assert list(first) == epoch0
    assert list(RandomIdentitySampler(records, 8, 4, seed=8)) != epoch0


def test_set_epoch_reseeds_the_loader_generator():
    sampler = RandomIdentitySampler(make_records([4] * 4), 8, 4, seed=0)
    sampler.set_epoch(5)
    draw = sampler.generator.initial_seed()
    list(sampler)
    assert sampler.epoch == 6 and sampler.generator.initial_seed() != draw
    sampler.set_epoch(5)
    assert sampler.generator.initial_seed() == draw


def test_ranks_get_disjoint_identities_and_equal_lengths():
    records = make_records([4] * 12, source=0) + make_records([4] * 12, source=1, first_pid=12)
    ranks = [RandomIdentitySampler(records, 8, 4, seed=2, rank=r, world_size=3) for r in range(3)]
    # 24 chunks / (2 ids x 3 ranks) = 4 steps of 8 images per rank
    assert [len(s) for s in ranks] == [32, 32, 32]
    per_rank = [batches(s, 8) for s in ranks]
    for step in zip(*per_rank):
        pid_sets = [{records[i].pid for i in batch} for batch in step]
        assert sum(len(p) for p in pid_sets) == len(set().union(*pid_sets)) == 6
        for batch in step:
            assert {records[i].source for i in batch} == {0, 1}


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(UserError, match="IMS_PER_BATCH"):
        RandomIdentitySampler(make_records([4] * 3), batch_size=16, num_instances=4)
    with pytest.raises(UserError, match="NUM_INSTANCE"):
        RandomIdentitySampler(make_records([4] * 8), batch_size=10, num_instances=4)


def test_shuffled_sampler_permutes_and_splits_over_ranks():
    single = ShuffledSampler(10, seed=0)
    order = list(single)
    assert sorted(order) == list(range(10)) and order != list(range(10))
    ranks = [ShuffledSampler(10, seed=0, rank=r, world_size=3) for r in range(3)]
    parts = [list(s) for s in ranks]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert len(set().union(*map(set, parts))) == 9
    assert parts[0] == order[0:9:3]


def test_unbalanced_sampling_draws_identities_uniformly_from_the_merged_sources():
    # 30 identities in source 0, 10 in source 1 (pids unique over the merged set, as after merge_sources).
    records = make_records([4] * 30, source=0) + make_records([4] * 10, source=1, first_pid=30)
    shares = {}
    for balanced in (True, False):
        sampler = RandomIdentitySampler(records, batch_size=16, num_instances=4, seed=0, balance_sources=balanced)
        counts = Counter()
        for epoch in range(20):
            sampler.set_epoch(epoch)
            counts.update(records[i].source for i in sampler)
        shares[balanced] = counts[1] / sum(counts.values())
    # Balanced: half of every batch; uniform over identities: their share of the identities.
    assert shares[True] == pytest.approx(0.5, abs=1e-9)
    assert shares[False] == pytest.approx(0.25, abs=0.03)


def test_source_balancing_follows_the_image_level_unless_set():
    from config import get_default_cfg
    from data.build import balances_sources

    cfg = get_default_cfg()
    assert not balances_sources(cfg)
    cfg.DISENTANGLE.IMAGE.ENABLED = True
    assert balances_sources(cfg)
    cfg.DATALOADER.SOURCE_BALANCED = "no"
    assert not balances_sources(cfg)
    cfg.DISENTANGLE.IMAGE.ENABLED = False
    cfg.DATALOADER.SOURCE_BALANCED = "yes"
    assert balances_sources(cfg)
