"""The resumable train loader: per-epoch order from (seed, epoch), skipping finished batches."""

import torch

from msa.data.sampling import EpochSampler, ResumableBatchSampler, resumable_loader


def test_epoch_order_depends_only_on_seed_and_epoch():
    a, b = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(1)
    assert list(a) != list(b)
    g = torch.Generator().manual_seed(3 + 2)  # the documented rule
    assert list(a) == torch.randperm(10, generator=g).tolist()
    assert list(EpochSampler(4, shuffle=False)) == [0, 1, 2, 3]


def test_skip_applies_to_the_next_pass_only():
    bs = ResumableBatchSampler(EpochSampler(5, shuffle=False), batch_size=2)
    bs.skip = 2
    assert list(bs) == [[4]]
    assert list(bs) == [[0, 1], [2, 3], [4]]


def test_loader_state_round_trip_resumes_mid_epoch_and_after_epoch_end():
    data = list(range(7))
    at = {"now": (1, 2, 4)}  # epoch 1, two of its four batches finished
    full = resumable_loader(data, batch_size=2, shuffle=True, seed=5, progress=lambda: at["now"])
    full.batch_sampler.set_epoch(1)
    epoch1 = [b.tolist() for b in full]
    state = full.state_dict()
    assert state == {"epoch": 1, "batches_done": 2, "batches_per_epoch": 4}

    resumed = resumable_loader(data, batch_size=2, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    assert [b.tolist() for b in resumed] == epoch1[2:]  # the rest of epoch 1, same order
    assert len([b for b in resumed]) == 4  # the next pass is whole again

    at["now"] = (1, 4, 4)  # saved at the end of epoch 1: resume at the start of epoch 2
    after = resumable_loader(data, batch_size=2, shuffle=True, seed=5)
    after.load_state_dict(full.state_dict())
    full.batch_sampler.set_epoch(2)
    assert [b.tolist() for b in after] == [b.tolist() for b in full]
    assert resumable_loader(data, batch_size=2, shuffle=True, seed=5).state_dict() == {}  # no trainer

    at["now"] = (1, 2, 2)  # limit_train_batches=2: epoch 1 ended after 2 of its 4 batches
    limited = resumable_loader(data, batch_size=2, shuffle=True, seed=5)
    limited.load_state_dict(full.state_dict())
    assert [b.tolist() for b in limited] == [b.tolist() for b in full]  # epoch 2 from its start
