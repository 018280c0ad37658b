"""The process-wide array pools that samplers and aggregators recycle memory through."""

from __future__ import annotations

import os
import pickle
import signal
import threading

import numpy as np
import pytest
import torch

import torchvox as tio
from torchvox.data._recycle import ArrayPool


def test_an_array_is_recycled_only_once_nothing_refers_to_it() -> None:
    pool = ArrayPool(capacity=4)
    first, recycled = pool.take((3, 4), np.float32, zeros=True)
    assert not recycled
    assert not first.any()
    address = first.ctypes.data
    view = first[1:]
    tensor = torch.from_numpy(first)
    del first
    for holder in ("view", "tensor"):
        # Still referred to by the view or the tensor: never handed out.
        other, _ = pool.take((3, 4), np.float32)
        assert other.ctypes.data != address
        del other
        if holder == "view":
            del view
        else:
            del tensor
    taken = [pool.take((3, 4), np.float32) for _ in range(2)]
    assert all(recycled for _, recycled in taken)
    assert address in {array.ctypes.data for array, _ in taken}


def test_shorter_requests_reuse_a_longer_free_array_and_dtypes_never_mix() -> None:
    pool = ArrayPool(capacity=2)
    full, _ = pool.take((4, 5), np.float32)
    address = full.ctypes.data
    del full
    short, recycled = pool.take((3, 5), np.float32)
    assert recycled
    assert short.shape == (3, 5)
    assert short.ctypes.data == address
    assert short.flags.c_contiguous
    del short
    other, recycled = pool.take((4, 5), np.float64)
    assert not recycled
    assert other.dtype == np.float64
    wider, recycled = pool.take((4, 6), np.float32)
    assert not recycled


def test_kept_arrays_are_forgotten_beyond_the_capacity() -> None:
    pool = ArrayPool(capacity=2)
    kept = [pool.take((2,), np.uint8)[0] for _ in range(5)]
    for n, array in enumerate(kept):
        array[:] = n
    for _ in range(3):
        pool.take((2,), np.uint8)
    assert [int(array[0]) for array in kept] == list(range(5))
    assert len(pool._arrays) == 2


def test_threads_never_take_the_same_free_array() -> None:
    pool = ArrayPool(capacity=4)
    errors: list[str] = []

    def work(value: int) -> None:
        for _ in range(200):
            array, _ = pool.take((64,), np.int64)
            array[:] = value
            if not (array == value).all():
                errors.append("shared")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_pools_do_not_pickle() -> None:
    with pytest.raises(TypeError, match="process-local"):
        pickle.dumps(ArrayPool(capacity=1))


def test_a_new_sampler_reuses_the_batches_its_predecessor_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tensor = torch.arange(20 * 18 * 16, dtype=torch.float32).reshape(1, 20, 18, 16)
    subject = tio.Subject(image=tio.ScalarImage(tensor=tensor))
    kept = None
    for _ in range(2):
        sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 0))
        for batch in tio.SubjectsLoader(sampler, batch_size=4):
            kept = batch["image"][tio.DATA] if kept is None else kept
    assert kept is not None
    expected = torch.stack([sampler[i]["image"].data for i in range(4)])
    assert torch.equal(kept, expected)
    allocations = []
    allocate = np.empty

    def counting_empty(*args: object, **kwargs: object) -> np.ndarray:
        array = allocate(*args, **kwargs)  # type: ignore[call-overload]
        if len(array.shape) == 5:
            allocations.append(array.shape)
        return array

    monkeypatch.setattr(np, "empty", counting_empty)
    sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 0))
    for batch in tio.SubjectsLoader(sampler, batch_size=4):
        assert batch["image"][tio.DATA].shape[0] <= 4
    # Every batch of the new sampler was written into one its predecessors dropped.
    assert allocations == []
    for batch in tio.SubjectsLoader(tio.GridSampler(subject, (6, 5, 4), (2, 2, 0)), batch_size=4):
        assert not np.shares_memory(batch["image"][tio.DATA].numpy(), kept.numpy())
    # The batch kept from the first sampler was never written again.
    assert torch.equal(kept, expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_take_while_the_parent_held_the_lock() -> None:
    pool = ArrayPool(capacity=2)
    with pool._lock:
        pid = os.fork()
        if pid == 0:  # the child: the lock it inherited was held
            signal.alarm(20)  # a deadlock kills the child instead of hanging the test
            try:
                array, _ = pool.take((3,), np.float32)
                os._exit(0 if array.shape == (3,) else 1)
            finally:
                os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0
