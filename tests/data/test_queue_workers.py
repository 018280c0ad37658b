"""Queue workers kept from one epoch to the next, and what makes the queue start new ones."""

from __future__ import annotations

import os

import pytest
import torch

import torchvox as tio
from torchvox.data._subject_patches import WorkerState


def _record_pid(subject):
    """A transform that records which process transformed the subject."""
    subject["pid"] = os.getpid()
    return subject


class _Add:
    """A picklable transform adding ``value`` to the T1 image."""

    def __init__(self, value: float):
        self.value = value

    def __call__(self, subject):
        subject["t1"].set_data(subject["t1"].data + self.value)
        subject["pid"] = os.getpid()
        return subject


def _dataset(transform, n: int = 3, shape=(10, 9, 8)) -> tio.SubjectsDataset:
    subjects = [
        tio.Subject(t1=tio.ScalarImage(tensor=torch.full((1, *shape), float(i))), index=i)
        for i in range(n)
    ]
    return tio.SubjectsDataset(subjects, transform=transform)


def _queue(dataset, **kwargs) -> tio.Queue:
    return tio.Queue(dataset, 4, 2, tio.UniformSampler(3), num_workers=2, **kwargs)


def _epoch(queue):
    return [queue[i] for i in range(len(queue))]


def _pids(patches) -> set[int]:
    return {int(p["pid"]) for p in patches}


def _offsets(patches) -> set[float]:
    """The value each patch's voxels exceed its subject's index by."""
    return {float((p["t1"].data - p["index"]).unique().item()) for p in patches}


def test_workers_are_kept_while_nothing_changes() -> None:
    queue = _queue(_dataset(_record_pid))
    epochs = [_pids(_epoch(queue)) for _ in range(3)]
    assert os.getpid() not in epochs[0]
    assert epochs[1] <= epochs[0] and epochs[2] <= epochs[0]


def test_without_persistent_workers_every_epoch_has_new_workers() -> None:
    queue = _queue(_dataset(_record_pid), persistent_workers=False)
    first, second = _pids(_epoch(queue)), _pids(_epoch(queue))
    assert first.isdisjoint(second)


def test_a_new_transform_reaches_the_workers() -> None:
    dataset = _dataset(_Add(1.0))
    queue = _queue(dataset)
    assert _offsets(_epoch(queue)) == {1.0}
    dataset.set_transform(_Add(5.0))
    assert _offsets(_epoch(queue)) == {5.0}


def test_a_transform_changed_in_place_reaches_the_workers() -> None:
    transform = _Add(1.0)
    queue = _queue(_dataset(transform))
    first = _epoch(queue)
    transform.value = 7.0
    second = _epoch(queue)
    assert _offsets(first) == {1.0} and _offsets(second) == {7.0}
    assert _pids(first).isdisjoint(_pids(second))


def test_subject_data_changed_in_place_reaches_the_workers() -> None:
    # Small tensors are compared by value, large ones by their in-place version.
    for shape in [(10, 9, 8), (40, 40, 40)]:
        dataset = _dataset(_Add(0.0), shape=shape)
        queue = _queue(dataset)
        assert _offsets(_epoch(queue)) == {0.0}
        for subject in dataset.dry_iter():
            subject["t1"].data.add_(3)
        assert _offsets(_epoch(queue)) == {3.0}, shape


def test_a_new_subject_reaches_the_workers() -> None:
    dataset = _dataset(_record_pid)
    queue = _queue(dataset)
    assert {p["index"] for p in _epoch(queue)} == {0, 1, 2}
    subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.full((1, 10, 9, 8), 3.0)), index=3)
    dataset.dry_iter().append(subject)
    assert {p["index"] for p in _epoch(queue)} == {0, 1, 2, 3}


def test_an_unpicklable_transform_gets_new_workers_every_epoch() -> None:
    offset = [1.0]

    def add_offset(subject):  # a closure: cannot be pickled
        subject["t1"].set_data(subject["t1"].data + offset[0])
        subject["pid"] = os.getpid()
        return subject

    queue = _queue(_dataset(add_offset))
    first = _epoch(queue)
    offset[0] = 2.0
    second = _epoch(queue)
    assert _offsets(first) == {1.0} and _offsets(second) == {2.0}
    assert _pids(first).isdisjoint(_pids(second))


def test_worker_state_compares_what_workers_copy() -> None:
    transform = _Add(1.0)
    dataset = _dataset(transform, shape=(40, 40, 40))
    sampler = tio.UniformSampler(3)
    state = WorkerState(dataset, sampler)
    assert state.same_as(WorkerState(dataset, sampler))
    assert not state.same_as(WorkerState(dataset, tio.UniformSampler(4)))
    transform.value = 2.0
    assert not state.same_as(WorkerState(dataset, sampler))
    transform.value = 1.0
    assert state.same_as(WorkerState(dataset, sampler))
    dataset.dry_iter()[0]["t1"].data.mul_(1)  # same values, but written in place
    assert not state.same_as(WorkerState(dataset, sampler))
    unknown = WorkerState(lambda subject: subject)
    assert unknown.digest is None and not unknown.same_as(unknown)


def test_small_tensors_of_patches_travel_by_value() -> None:
    # A tensor pickled for another process travels through a shared-memory
    # file of its own (torch's reduction): ~1 ms of the main process per patch.
    from multiprocessing.reduction import ForkingPickler

    from torchvox.data._subject_patches import _pack_small_tensors, _unpack_small_tensors

    subject = tio.Subject(
        t1=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)),
        extra=torch.arange(3),
        half=torch.ones(2, dtype=torch.bfloat16),  # NumPy has no such dtype
    )
    patches = list(tio.UniformSampler(4)(subject, 2))
    locations = [p["location"].clone() for p in patches]
    assert b"rebuild_storage_fd" in bytes(ForkingPickler.dumps(patches[0]["location"]))
    _pack_small_tensors(patches)
    for patch in patches:
        for small in (patch["location"], patch.location, patch["extra"]):
            assert b"rebuild_storage_fd" not in bytes(ForkingPickler.dumps(small))
    received = ForkingPickler.loads(ForkingPickler.dumps(patches))
    _unpack_small_tensors(received)
    for patch, location in zip(received, locations, strict=True):
        assert torch.equal(patch["location"], location)
        assert patch.location is patch["location"]
        assert torch.equal(patch["extra"], torch.arange(3))
        assert torch.equal(patch["half"], torch.ones(2, dtype=torch.bfloat16))
        assert patch["t1"].data.shape == (1, 4, 4, 4)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_kept_workers_under_other_start_methods(method, start_method) -> None:
    start_method(method)
    dataset = _dataset(_Add(1.0))
    queue = _queue(dataset, start_background=False)
    first, second = _epoch(queue), _epoch(queue)
    assert _offsets(first) == _offsets(second) == {1.0}
    assert _pids(second) <= _pids(first)
    dataset.set_transform(_Add(4.0))
    third = _epoch(queue)
    assert _offsets(third) == {4.0}
    assert _pids(third).isdisjoint(_pids(first))


def test_a_queue_freed_as_cyclic_garbage_reports_no_error(monkeypatch) -> None:
    # The collector may close the arena's memory file before the queue's
    # __del__ hands the arena on: it must then simply let it go.
    import gc
    import sys

    errors = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: errors.append(report.exc_value))
    queue = _queue(_dataset(_record_pid))
    _epoch(queue)
    queue.itself = queue
    del queue
    gc.collect()
    assert errors == []
    # The next queue still works.
    assert len(_epoch(_queue(_dataset(_record_pid)))) == 6


def test_a_forked_copy_of_a_queue_leaves_its_workers_alone() -> None:
    # The workers of a later queue inherit earlier queues not yet collected;
    # their copies' __del__ must not stop (or touch) the parent's workers.
    import multiprocessing

    queue = _queue(_dataset(_record_pid))
    first = _pids(_epoch(queue))

    def collect_copy(results) -> None:
        try:
            queue.__del__()
            results.put(None)
        except BaseException as error:  # reported to the parent
            results.put(repr(error))

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=collect_copy, args=(results,))
    child.start()
    child.join(60)
    assert results.get(timeout=5) is None
    assert _pids(_epoch(queue)) == first  # the same workers, still serving


class _DieOnce:
    """A picklable transform whose worker exits the first time it runs anywhere."""

    def __init__(self, flag: str):
        self.flag = flag

    def __call__(self, subject):
        if not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(1)
        return subject


def test_the_epoch_after_a_dead_worker_starts_new_workers(tmp_path) -> None:
    queue = _queue(_dataset(_DieOnce(str(tmp_path / "died"))))
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        _epoch(queue)
    # The same queue, dataset and transform: new workers serve the next epoch.
    patches = _epoch(queue)
    assert sorted(p["index"] for p in patches) == [0, 0, 1, 1, 2, 2]
