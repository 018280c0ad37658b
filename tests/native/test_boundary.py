"""The Rust boundary under PyTorch DataLoader workers: no deadlock after fork,
same results as in the main process, one thread per worker by default."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import torchvox
from torchvox._backend import native


class KernelDataset(Dataset):
    """Each item runs the crop/pad, statistics and rescale kernels on a seeded volume."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng(index)
        volume = rng.standard_normal((2, 24, 20, 28)).astype(np.float32)
        nat = native()
        padded = nat.crop_pad(volume, (-3, 2, -5), (30, 16, 36), "reflect", 0.0)
        stats = nat.statistics(padded, None, [1.0, 99.0], 8)
        low, high = stats["total"]["percentiles"]
        rescaled = nat.rescale(padded, low, high, 0.0, 1.0, low, high)
        return {
            "rescaled": torch.from_numpy(rescaled),
            "histogram": torch.from_numpy(stats["total"]["histogram"]),
            "mean": stats["total"]["mean"],
            "threads": torchvox.get_num_threads(),
            "native_threads": nat.get_num_threads(),
        }


def collect(num_workers: int) -> list[dict[str, Any]]:
    loader = DataLoader(
        KernelDataset(),
        batch_size=None,
        num_workers=num_workers,
        multiprocessing_context="fork" if num_workers else None,
        # A deadlocked worker makes the loader raise instead of hanging the suite.
        timeout=120 if num_workers else 0,
    )
    return list(loader)


@pytest.fixture
def default_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHVOX_NUM_THREADS", raising=False)
    torchvox.set_num_threads(None)


@pytest.mark.usefixtures("default_threads")
def test_forked_workers_finish_and_match_the_main_process() -> None:
    # Build the pool in the parent (all cores by default) before forking.
    native().statistics(np.ones((1, 8, 8, 8), np.float32), None, [50.0])
    serial = collect(0)
    forked = collect(2)
    assert len(serial) == len(forked) == 6
    for a, b in zip(serial, forked, strict=True):
        assert torch.equal(a["rescaled"], b["rescaled"])
        assert torch.equal(a["histogram"], b["histogram"])
        assert a["mean"] == b["mean"]
    # The parent's pool still works after the workers exit.
    assert native().crop_pad(np.ones((1, 2, 2, 2), np.uint8), (0, 0, 0), (1, 1, 1)).item() == 1


@pytest.mark.usefixtures("default_threads")
def test_workers_use_one_thread_by_default() -> None:
    forked = collect(2)
    assert {item["threads"] for item in forked} == {1}
    assert {item["native_threads"] for item in forked} == {1}
    assert torchvox.get_num_threads() >= 1


def test_a_fork_while_another_thread_configures_the_pool_does_not_hang() -> None:
    # A loader may start its workers while another thread (a queue's read-ahead)
    # runs kernels: a child must not inherit the pool's lock held.
    import threading
    import time

    running = threading.Event()
    running.set()

    def reconfigure() -> None:
        threads = 1
        while running.is_set():
            threads = 3 - threads
            native().set_num_threads(threads)  # forgets the pool ...
            native().channel_minima(np.ones((1, 4, 4, 4), np.float32))  # ... rebuilt here

    thread = threading.Thread(target=reconfigure, daemon=True)
    thread.start()
    try:
        children = []
        for _ in range(40):
            pid = os.fork()
            if pid == 0:  # the child: one kernel call, then leave at once
                try:
                    native().channel_minima(np.ones((1, 4, 4, 4), np.float32))
                finally:
                    os._exit(0)
            children.append(pid)
        deadline = time.monotonic() + 30
        hung = []
        for pid in children:
            while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            if done[0] == 0:
                hung.append(pid)
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        assert hung == []
    finally:
        running.clear()
        thread.join()
        torchvox.set_num_threads(None)
