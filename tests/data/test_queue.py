"""Queue: epoch and length semantics, carried-over patches, subject samplers, workers."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import pytest
import torch
import torchio
from torch.utils.data.distributed import DistributedSampler

import torchvox as tio


def _dataset(module=tio, n=5, num_samples=None, transform=None):
    subjects = []
    for index in range(n):
        tensor = torch.full((1, 10, 9, 8), float(index))
        items = {"t1": module.ScalarImage(tensor=tensor), "index": index}
        if num_samples is not None and index in num_samples:
            items["num_samples"] = num_samples[index]
        subjects.append(module.Subject(**items))
    return module.SubjectsDataset(subjects, transform=transform)


def _drain(queue, epochs=1):
    return [queue[i] for _ in range(epochs) for i in range(len(queue))]


@pytest.mark.parametrize("max_length", [4, 7, 12, 100])
def test_every_subject_contributes_samples_per_volume_per_epoch(max_length) -> None:
    torch.manual_seed(0)
    queue = tio.Queue(_dataset(), max_length, 4, tio.UniformSampler(3))
    assert len(queue) == 20
    for _ in range(2):
        patches = _drain(queue)
        assert Counter(p["index"] for p in patches) == dict.fromkeys(range(5), 4)
        for patch in patches:
            assert patch["t1"].shape == (1, 3, 3, 3)
            assert torch.all(patch["t1"].data == patch["index"])


def test_per_subject_num_samples_and_leftovers() -> None:
    dataset = _dataset(num_samples={1: 6, 3: 1})
    queue = tio.Queue(dataset, 5, 3, tio.UniformSampler(3), shuffle_subjects=False)
    assert len(queue) == 3 + 6 + 3 + 1 + 3
    # Subject 1 does not fit in the 2 free slots: 4 patches are carried to the next fill.
    first_fill = [queue[0] for _ in range(5)]
    assert [p["index"] for p in first_fill].count(1) == 2
    second_fill = [queue[0] for _ in range(5)]
    assert [p["index"] for p in second_fill].count(1) == 4
    # Same sequence of subjects as TorchIO's queue, patch for patch.
    reference = torchio.Queue(
        _dataset(torchio, num_samples={1: 6, 3: 1}),
        5,
        3,
        torchio.UniformSampler(3),
        shuffle_subjects=False,
        shuffle_patches=False,
    )
    ours = tio.Queue(
        dataset, 5, 3, tio.UniformSampler(3), shuffle_subjects=False, shuffle_patches=False
    )
    assert [p["index"] for p in _drain(ours, 3)] == [p["index"] for p in _drain(reference, 3)]


def test_matches_torchio_queue_lengths_and_memory() -> None:
    ours = tio.Queue(_dataset(), 6, 3, tio.UniformSampler((3, 4, 5)), start_background=False)
    theirs = torchio.Queue(
        _dataset(torchio), 6, 3, torchio.UniformSampler((3, 4, 5)), start_background=False
    )
    assert len(ours) == len(theirs)
    assert ours.get_max_memory() == theirs.get_max_memory() == 4 * 60 * 6
    assert ours.get_max_memory_pretty() == "1.4 KiB"
    assert repr(ours) == repr(theirs)


def _add_noise(subject):
    """A random augmentation drawing from torch's generator, like RandomNoise."""
    image = subject["t1"]
    image.set_data(image.data + torch.randn(image.data.shape))
    return subject


def _locations_and_values(num_workers):
    torch.manual_seed(123)
    transform = _add_noise
    queue = tio.Queue(
        _dataset(transform=transform, n=4),
        5,
        3,
        tio.UniformSampler(4),
        num_workers=num_workers,
    )
    patches = _drain(queue, epochs=2)
    return [(p["index"], p["location"].tolist(), float(p["t1"].data.sum())) for p in patches]


def test_same_patches_for_any_number_of_workers() -> None:
    single = _locations_and_values(0)
    double = _locations_and_values(2)
    assert single == double
    assert len({index for index, _, _ in single}) == 4


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_works_with_spawn_and_fork(method, start_method) -> None:
    torch.manual_seed(1)
    queue = tio.Queue(_dataset(n=3), 4, 2, tio.UniformSampler(3), num_workers=1)
    start_method(method)
    queue._initialize_subjects_iterable()
    patches = _drain(queue)
    assert Counter(p["index"] for p in patches) == {0: 2, 1: 2, 2: 2}


def test_distributed_sampler_splits_subjects() -> None:
    dataset = _dataset(n=6)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=False)
        queue = tio.Queue(
            dataset, 4, 2, tio.UniformSampler(3), subject_sampler=sampler, shuffle_subjects=False
        )
        assert queue.num_subjects == 3
        assert len(queue) == 6
        indices = {p["index"] for p in _drain(queue)}
        assert len(indices) == 3
        seen.append(indices)
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(6))


def test_works_with_an_outer_loader() -> None:
    torch.manual_seed(0)
    queue = tio.Queue(_dataset(), 8, 2, tio.UniformSampler(4))
    loader = tio.SubjectsLoader(queue, batch_size=3, num_workers=0)
    batches = list(loader)
    assert sum(len(b["location"]) for b in batches) == 10
    assert batches[0]["t1"]["data"].shape == (3, 1, 4, 4, 4)


@pytest.mark.parametrize(("method", "num_workers"), [("fork", 0), ("fork", 2), ("spawn", 0)])
def test_an_outer_loader_with_workers_is_refused(method, num_workers) -> None:
    # A forked copy of a queue used to wait forever on its parent's loading
    # threads; the timeout turns such a regression into a failure, not a hang.
    if method not in torch.multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    queue = tio.Queue(_dataset(), 4, 2, tio.UniformSampler(3), num_workers=num_workers)
    loader = tio.SubjectsLoader(
        queue, batch_size=2, num_workers=1, multiprocessing_context=method, timeout=60
    )
    with pytest.raises(RuntimeError, match="should be 0"):
        next(iter(loader))
    assert len(queue[0]["t1"].data) == 1  # the queue itself still works


def test_a_copy_of_a_queue_starts_afresh() -> None:
    queue = tio.Queue(_dataset(), 4, 2, tio.UniformSampler(3), num_workers=1)
    queue[0]  # mid-epoch, with patches queued and a worker process running
    copy = pickle.loads(pickle.dumps(queue))
    assert copy.num_patches == 0
    assert Counter(p["index"] for p in _drain(copy)) == dict.fromkeys(range(5), 2)
    assert queue.num_patches == 3


def test_numpy_and_tensor_integers_are_accepted() -> None:
    import numpy as np

    queue = tio.Queue(
        _dataset(), np.int64(6), torch.tensor(2), tio.UniformSampler(3), num_workers=np.int32(0)
    )
    assert (queue.max_length, queue.samples_per_volume, queue.num_workers) == (6, 2, 0)
    assert type(queue.max_length) is int
    assert len(queue) == 10 and len(_drain(queue)) == 10


def test_bad_arguments() -> None:
    dataset = _dataset()
    sampler = tio.UniformSampler(3)
    with pytest.raises(ValueError, match="max_length"):
        tio.Queue(dataset, 2, 3, sampler)
    with pytest.raises(ValueError, match="shuffle_subjects"):
        tio.Queue(dataset, 4, 2, sampler, subject_sampler=DistributedSampler(dataset, 1, 0))
    with pytest.raises(ValueError, match="samples_per_volume"):
        tio.Queue(dataset, 4, 0, sampler)
    with pytest.raises(ValueError, match="num_workers"):
        tio.Queue(dataset, 4, 2, sampler, num_workers=-1)
    for not_an_integer in (4.0, True, torch.tensor(4.0), "4"):
        with pytest.raises(ValueError, match="max_length must be a positive integer"):
            tio.Queue(dataset, not_an_integer, 2, sampler)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PatchSampler"):
        tio.Queue(dataset, 4, 2, object())  # type: ignore[arg-type]


def test_subjects_are_read_ahead_on_another_thread(tmp_path: Path) -> None:
    import threading

    paths = []
    for index in range(3):
        path = tmp_path / f"t1_{index}.nii.gz"
        tio.ScalarImage(tensor=torch.full((1, 10, 9, 8), float(index))).save(path)
        paths.append(path)
    readers = []

    class Recording(tio.ScalarImage):
        def load(self) -> None:
            readers.append(threading.current_thread().name)
            super().load()

    subjects = [tio.Subject(t1=Recording(path), index=n) for n, path in enumerate(paths)]
    dataset = tio.SubjectsDataset(subjects, transform=tio.RandomNoise())
    torch.manual_seed(3)
    queue = tio.Queue(dataset, 6, 2, tio.UniformSampler(3), num_workers=0)
    ahead = _drain(queue)
    assert readers and all(name.startswith("torchvox-read") for name in readers)
    # The same patches (noise included) as when each subject is read in turn.
    torch.manual_seed(3)
    whole = tio.Queue(_Whole(subjects, transform=tio.RandomNoise()), 6, 2, tio.UniformSampler(3))
    in_turn = _drain(whole)
    for a, b in zip(ahead, in_turn, strict=True):
        assert a["index"] == b["index"]
        assert torch.equal(a["t1"].data, b["t1"].data)
    # A subject that cannot be read fails when its turn comes, not before.
    paths[1].unlink()
    queue = tio.Queue(
        tio.SubjectsDataset(subjects), 2, 2, tio.UniformSampler(3), shuffle_subjects=False
    )
    assert [queue[0]["index"], queue[1]["index"]] == [0, 0]
    with pytest.raises(Exception, match="t1_1"):
        queue[2]


class _Whole(tio.SubjectsDataset):
    """A dataset whose items the queue must take whole (no read-ahead)."""

    def __getitem__(self, index: int) -> tio.Subject:
        return super().__getitem__(index)


def _record_frozen_objects(subject):
    """A transform that records how many objects the garbage collector ignores here."""
    import gc

    subject["frozen"] = gc.get_freeze_count()
    return subject


def test_workers_keep_the_collector_off_inherited_objects() -> None:
    # A collection in a forked worker would write to (so copy) every object
    # it inherited from the main process.
    import gc

    assert gc.get_freeze_count() == 0
    queue = tio.Queue(
        _dataset(n=2, transform=_record_frozen_objects), 4, 2, tio.UniformSampler(3), num_workers=1
    )
    frozen = [p["frozen"] for p in _drain(queue)]
    assert min(frozen) > 1000
    assert gc.get_freeze_count() == 0  # the main process is left alone
