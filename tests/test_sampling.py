"""The train loader's batches: per-epoch order from (seed, epoch), length buckets, DDP shares, workers,
and skipping finished batches on resume."""

import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from msa.data.sampling import EpochSampler, ResumableBatchSampler, epoch_batches, resumable_loader


def test_epoch_order_depends_only_on_seed_and_epoch():
    a = epoch_batches(10, 3, seed=3, epoch=2)
    assert a == epoch_batches(10, 3, seed=3, epoch=2) != epoch_batches(10, 3, seed=3, epoch=1)
    g = torch.Generator().manual_seed(3 + 2)  # the documented rule: randperm(seed + epoch), cut in order
    order = torch.randperm(10, generator=g).tolist()
    assert a == [order[0:3], order[3:6], order[6:9], order[9:]]
    assert epoch_batches(4, 2, shuffle=False) == [[0, 1], [2, 3]]


def test_length_buckets_by_hand():
    # No shuffle, window of 2 batches of 2 (4 clips): each window sorted by length, then cut.
    lengths = [7, 1, 9, 3, 2, 8, 5]
    assert epoch_batches(7, 2, shuffle=False, lengths=lengths, window=2) == [[1, 3], [0, 2], [4, 6], [5]]
    # Shuffled: the same inside the drawn order, and the batches themselves drawn from the same generator.
    g = torch.Generator().manual_seed(4)
    order = torch.randperm(7, generator=g).tolist()
    windows = [sorted(order[:4], key=lengths.__getitem__), sorted(order[4:], key=lengths.__getitem__)]
    cut = [windows[0][:2], windows[0][2:], windows[1][:2], windows[1][2:]]
    assert epoch_batches(7, 2, seed=4, lengths=lengths, window=2) == [cut[i] for i in torch.randperm(4, generator=g)]
    with pytest.raises(ValueError, match="3 lengths for 7 clips"):
        epoch_batches(7, 2, lengths=[1, 2, 3])


def test_ddp_shares_cover_the_epoch_and_agree():
    # 7 clips, 2 ranks, batch 2: padded to 8 by repeating the first clip drawn; global batches of 4,
    # rank r takes positions r and r + 2 of each, so both ranks run 2 batches of similar length.
    lengths = [7, 1, 9, 3, 2, 8, 5]
    glob = epoch_batches(7, 2, seed=1, lengths=lengths, num_replicas=2)
    ranks = [[b[r::2] for b in glob] for r in range(2)]
    assert [len(x) for x in ranks] == [2, 2] and all(len(b) == 2 for x in ranks for b in x)
    seen = sorted(i for x in ranks for b in x for i in b)
    assert set(seen) == set(range(7)) and len(seen) == 8  # every clip, one repeated
    for b in glob:  # sorted global batches: rank 0 gets the shorter of each pair
        assert [lengths[i] for i in b] == sorted(lengths[i] for i in b)


def test_lightning_ddp_rebuild_keeps_order_resume_and_lengths():
    """Lightning rebuilds the batch sampler around a DistributedSampler (its arguments captured while
    the data hook runs); the rebuilt one takes rank and world size from it and keeps the rest."""
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.utilities.data import _update_dataloader

    data, lengths = list(range(9)), [5, 3, 8, 1, 9, 2, 7, 4, 6]
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = resumable_loader(data, batch_size=2, shuffle=True, seed=2, lengths=lengths,
                                  resume={"epoch": 1, "batches_done": 1, "batches_per_epoch": 3})
    glob = epoch_batches(9, 2, seed=2, epoch=1, lengths=lengths, num_replicas=2)
    for rank in range(2):
        dist = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=99)
        rebuilt = _update_dataloader(loader, dist)
        assert isinstance(rebuilt.batch_sampler, ResumableBatchSampler) and len(rebuilt) == 3  # ceil(ceil(9/2)/2)
        assert [b.tolist() for b in rebuilt] == [b[rank::2] for b in glob][1:]  # epoch 1 after its first batch


def test_skip_applies_to_the_next_pass_only():
    bs = ResumableBatchSampler(EpochSampler(5), batch_size=2, shuffle=False)
    bs.skip = 2
    assert list(bs) == [[4]]
    assert list(bs) == [[0, 1], [2, 3], [4]]


def test_loader_state_round_trip_resumes_mid_epoch_and_after_epoch_end():
    data = list(range(7))
    at = {"now": (1, 2, 4)}  # epoch 1, two of its four batches finished
    full = resumable_loader(data, batch_size=2, shuffle=True, seed=5, progress=lambda: at["now"])
    _set_sampler_epoch(full, 1)  # what Lightning calls each epoch: it reaches the batch sampler's order
    epoch1 = [b.tolist() for b in full]
    state = full.state_dict()
    assert state == {"epoch": 1, "batches_done": 2, "batches_per_epoch": 4}

    resumed = resumable_loader(data, batch_size=2, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    assert [b.tolist() for b in resumed] == epoch1[2:]  # the rest of epoch 1, same order
    assert len([b for b in resumed]) == 4  # the next pass is whole again
    given = resumable_loader(data, batch_size=2, shuffle=True, seed=5, resume=state)  # the data module's way
    assert [b.tolist() for b in given] == epoch1[2:]

    at["now"] = (1, 4, 4)  # saved at the end of epoch 1: resume at the start of epoch 2
    after = resumable_loader(data, batch_size=2, shuffle=True, seed=5)
    after.load_state_dict(full.state_dict())
    _set_sampler_epoch(full, 2)
    assert [b.tolist() for b in after] == [b.tolist() for b in full]
    assert resumable_loader(data, batch_size=2, shuffle=True, seed=5).state_dict() == {}  # no trainer

    at["now"] = (1, 2, 2)  # limit_train_batches=2: epoch 1 ended after 2 of its 4 batches
    limited = resumable_loader(data, batch_size=2, shuffle=True, seed=5)
    limited.load_state_dict(full.state_dict())
    assert [b.tolist() for b in limited] == [b.tolist() for b in full]  # epoch 2 from its start


def _threads(index):
    return [index, torch.get_num_threads()]


def test_workers_give_the_same_batches_and_resume_the_same_way():
    data, lengths = list(range(11)), [3, 9, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    kw = dict(batch_size=2, shuffle=True, seed=7, lengths=lengths)
    plain = [b.tolist() for b in resumable_loader(data, **kw)]
    workers = resumable_loader(data, num_workers=2, collate_fn=lambda b: [_threads(i) for i in b], **kw)
    got = [[x[0] for x in b] for b in workers]
    assert got == plain and {x[1] for b in workers for x in b} == {1}  # one torch thread per worker
    assert workers.persistent_workers
    resumed = resumable_loader(data, num_workers=2, resume={"epoch": 0, "batches_done": 4, "batches_per_epoch": 6},
                               **kw)
    assert [b.tolist() for b in resumed] == plain[4:]
