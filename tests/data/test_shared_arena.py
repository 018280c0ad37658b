"""The shared arena: workers crop the queue's patches into it and the main process views them."""

from __future__ import annotations

import gc
import multiprocessing
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


@pytest.fixture(autouse=True)
def _no_spare_arena():
    """Every test starts without an arena left by another test's queue."""
    _shared_arena.release_spare()
    yield
    _shared_arena.release_spare()


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


def _drain(queue: tio.Queue, epochs: int = 1) -> list[tio.Subject]:
    return [queue[i] for _ in range(epochs) for i in range(len(queue))]


def _assert_same_patches(ours: list[tio.Subject], theirs: list[tio.Subject]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a["location"], b["location"])
        assert torch.equal(a["t1"].data, b["t1"].data)
        assert torch.equal(a["seg"].data, b["seg"].data)


def _reference_patches(seed: int, epochs: int = 1) -> list[tio.Subject]:
    torch.manual_seed(seed)
    queue = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=0)
    return _drain(queue, epochs)


def test_a_new_queue_takes_over_the_arena_of_one_gone() -> None:
    torch.manual_seed(1)
    first = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    _drain(first)
    arena = first._arena
    assert arena is not None and arena.resident_bytes > 0
    del first
    assert _shared_arena._spare is arena
    torch.manual_seed(2)
    second = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    patches = _drain(second, epochs=2)
    assert second._arena is arena
    assert all(_in_arena(p["t1"].data, arena) for p in patches)
    _assert_same_patches(patches, _reference_patches(2, epochs=2))


def test_patches_kept_from_a_gone_queue_are_never_overwritten() -> None:
    torch.manual_seed(3)
    first = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    kept = _drain(first)
    copies = [(p["t1"].data.clone(), p["seg"].data.clone()) for p in kept]
    arena = first._arena
    del first
    second = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    _drain(second, epochs=3)
    assert second._arena is arena
    for patch, (t1, seg) in zip(kept, copies, strict=True):
        assert _in_arena(patch["t1"].data, arena)
        assert torch.equal(patch["t1"].data, t1)
        assert torch.equal(patch["seg"].data, seg)


def test_a_queue_gone_mid_epoch_stops_its_workers_before_another_takes_over() -> None:
    # Workers still busy with the rest of the epoch must not write into the
    # blocks the next queue's workers allocate: they have exited by the time
    # the arena is handed on.
    first = tio.Queue(_dataset(n=8), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    first[0]
    workers = first._workers
    assert workers is not None and workers._iterator is not None
    processes = list(workers._iterator._workers)
    assert len(processes) == 2
    del first
    assert _shared_arena._spare is not None
    assert not any(process.is_alive() for process in processes)
    torch.manual_seed(4)
    second = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    _assert_same_patches(_drain(second), _reference_patches(4))


def test_an_arena_above_the_limit_is_not_kept(monkeypatch) -> None:
    monkeypatch.setattr(_shared_arena, "SPARE_LIMIT_BYTES", BLOCK_BYTES)
    queue = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    _drain(queue)
    assert queue._arena is not None and queue._arena.resident_bytes > BLOCK_BYTES
    del queue
    assert _shared_arena._spare is None


def test_release_cached_memory_drops_the_spare_arena_and_the_pools() -> None:
    from torchvox.data.inference import grid_sampler

    subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.rand(1, 12, 12, 12)))
    for batch in tio.SubjectsLoader(tio.GridSampler(subject, 4), batch_size=2):
        del batch
    assert grid_sampler._BATCHES._arrays
    queue = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    _drain(queue)
    del queue
    assert _shared_arena._spare is not None
    tio.data.release_cached_memory()
    assert _shared_arena._spare is None
    assert not grid_sampler._BATCHES._arrays


def _acquire_in_child(connection) -> None:
    inherited = _shared_arena._spare
    connection.send(inherited is not None and _shared_arena.acquire(2) is not inherited)


def test_a_forked_child_never_takes_its_parents_spare_arena() -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork not available")
    queue = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((6, 5, 4)), num_workers=2)
    _drain(queue)
    del queue
    spare = _shared_arena._spare
    assert spare is not None
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_acquire_in_child, args=(sender,))
    child.start()
    took_a_new_one = receiver.recv()
    child.join()
    assert took_a_new_one
    assert _shared_arena._spare is spare  # still the parent's to hand out
