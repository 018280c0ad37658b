"""The shared arena: workers crop the queue's patches into it and the main process views them."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest
import torch

import torchvox as tio
from torchvox.data import _shared_arena
from torchvox.data._shared_arena import BLOCK_BYTES, SharedArena, _first_free_run


def _dataset(n: int = 4, shape=(1, 20, 18, 16)) -> tio.SubjectsDataset:
    subjects = []
    for index in range(n):
        intensities = torch.arange(np.prod(shape), dtype=torch.float32).reshape(shape) + index
        labels = (intensities.to(torch.int64) % 5).to(torch.uint8)
        subjects.append(
            tio.Subject(
                t1=tio.ScalarImage(tensor=intensities),
                seg=tio.LabelMap(tensor=labels),
                index=index,
            )
        )
    return tio.SubjectsDataset(subjects, transform=tio.RandomNoise())


def _in_arena(tensor: torch.Tensor, arena: SharedArena) -> bool:
    return arena._address <= tensor.data_ptr() < arena._address + arena._size


def _expected(patch: tio.Subject, volume: torch.Tensor) -> torch.Tensor:
    i0, j0, k0, i1, j1, k1 = patch["location"].tolist()
    return volume[:, i0:i1, j0:j1, k0:k1]


def test_first_free_run() -> None:
    states = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=np.uint8)
    assert _first_free_run(states, 1) == 1
    assert _first_free_run(states, 2) == 1
    assert _first_free_run(states, 3) == 4
    assert _first_free_run(states, 4) is None
    assert _first_free_run(np.zeros(5, dtype=np.uint8), 5) == 0
    assert _first_free_run(np.ones(5, dtype=np.uint8), 1) is None


def test_no_allocation_outside_a_worker() -> None:
    arena = SharedArena.create(1)
    assert arena is not None
    assert arena.allocate((1, 2, 3), np.float32) is None


def test_references_round_trip_views_at_any_offset(monkeypatch) -> None:
    # One process plays both sides: a worker (id 0) detaches, the main process attaches.
    monkeypatch.setattr(_shared_arena, "get_worker_info", lambda: type("Info", (), {"id": 0}))
    arena = SharedArena.create(1)
    assert arena is not None
    batch = arena.allocate((3, 1, 4, 5, 6), np.float32)
    assert batch is not None
    batch[:] = np.random.default_rng(0).random(batch.shape, dtype=np.float32)
    views = torch.from_numpy(batch)
    subject = tio.Subject(
        one=tio.ScalarImage(tensor=views[1]), two=tio.ScalarImage(tensor=views[2])
    )
    arena.detach([subject])
    assert isinstance(dict.get(subject["one"], "data"), _shared_arena.ArenaRef)
    (received,) = pickle.loads(pickle.dumps([subject]))
    arena.attach([received])
    for name, n in (("one", 1), ("two", 2)):
        assert _in_arena(received[name].data, arena)
        assert torch.equal(received[name].data, torch.from_numpy(batch[n].copy()))
    assert arena.allocated_bytes == BLOCK_BYTES  # 3 x 120 float32 take one block
    del received
    gc.collect()
    assert arena.allocated_bytes == 0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_patches_arrive_in_the_arena_with_their_values(method, start_method) -> None:
    dataset = _dataset(shape=(1, 12, 11, 10))
    dataset.set_transform(None)
    queue = tio.Queue(dataset, 8, 4, tio.UniformSampler((5, 4, 3)), num_workers=2)
    start_method(method)
    queue._initialize_subjects_iterable()
    patches = [queue[i] for i in range(len(queue))]
    arena = queue._arena
    assert arena is not None
    for patch in patches:
        subject = dataset.dry_iter()[patch["index"]]
        for name in ("t1", "seg"):
            assert _in_arena(patch[name].data, arena)
            assert patch[name].data.dtype == subject[name].data.dtype
            assert torch.equal(patch[name].data, _expected(patch, subject[name].data))


def test_patches_the_caller_keeps_are_never_overwritten() -> None:
    torch.manual_seed(0)
    queue = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    kept = [queue[i] for i in range(len(queue))]
    copies = [(p["t1"].data.clone(), p["seg"].data.clone()) for p in kept]
    for _ in range(3):  # later epochs reuse every block that is free
        for i in range(len(queue)):
            queue[i]
    for patch, (t1, seg) in zip(kept, copies, strict=True):
        assert torch.equal(patch["t1"].data, t1)
        assert torch.equal(patch["seg"].data, seg)


def test_blocks_are_freed_when_the_patches_are_dropped() -> None:
    torch.manual_seed(0)
    max_length, samples = 6, 3
    queue = tio.Queue(_dataset(n=6), max_length, samples, tio.UniformSampler(8), num_workers=2)
    arena = queue._arena
    assert arena is not None
    # A patch holds two allocations (intensities, labels) of one block each.
    blocks_per_patch = 2
    most = 0
    for _ in range(3):
        for i in range(len(queue)):
            queue[i]
            most = max(most, arena.allocated_bytes // BLOCK_BYTES)
    # The queued patches plus those of the results in flight (two subjects
    # per worker), never every patch of an epoch.
    in_flight = 2 * 2 * samples
    assert 0 < most <= (max_length + in_flight) * blocks_per_patch
    # Every patch was dropped at once (no reference cycle keeps one alive).
    assert arena.allocated_bytes == 0


def test_a_full_partition_falls_back_to_ordinary_memory(monkeypatch) -> None:
    # One block per worker: it holds one patch image at a time.
    monkeypatch.setattr(_shared_arena, "PARTITION_BYTES", BLOCK_BYTES)
    torch.manual_seed(5)
    size = (20, 18, 10)
    queue = tio.Queue(_dataset(), 8, 2, tio.UniformSampler(size), num_workers=2)
    patches = [queue[i] for i in range(len(queue))]
    arena = queue._arena
    assert arena is not None
    placed = [_in_arena(p[name].data, arena) for p in patches for name in ("t1", "seg")]
    assert any(placed) and not all(placed)
    torch.manual_seed(5)
    reference = tio.Queue(_dataset(), 8, 2, tio.UniformSampler(size), num_workers=0)
    for ours, theirs in zip(patches, [reference[i] for i in range(len(reference))], strict=True):
        assert torch.equal(ours["location"], theirs["location"])
        assert torch.equal(ours["t1"].data, theirs["t1"].data)
        assert torch.equal(ours["seg"].data, theirs["seg"].data)
