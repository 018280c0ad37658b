"""Memory of the patch Queue over many epochs with two workers (issue 5).

Two measurements, on the Queue case of ``cases/patches.py`` (8 MNI152 subjects
from .nii.gz, RandomAffine + RandomNoise, UniformSampler(96), 10 patches per
volume, max_length 40, num_workers 2):

- Resident memory of the whole pipeline, epoch by epoch: the proportional set
  size (PSS) of the main process plus its live workers, sampled every few
  milliseconds by a thread, and the main process's resident set (RSS) at the
  end of each epoch. PSS counts a page shared by several processes (the
  workers' inherited pages, the patch arena) once in total, so the sum is the
  memory the pipeline really takes. The target: after the first epoch, neither
  grows by more than 10%.
- The memory the queue really holds: the bytes of the distinct storages of its
  queued and carried-over patches, after every patch it hands out, against
  ``get_max_memory()``. The target: at most 1.2 times.

It runs in a process of its own (``python -m benches.memory``), started by
``run.py``. In the process that has just run every other case (2.3 GB of
unrelated inputs and libraries), that memory stops being shared with the
forked workers at unpredictable moments within an epoch (most likely the
kernel collapsing it into huge pages in the background): the main process's
PSS then doubles while the workers keep theirs, and the peaks measure that
rather than the queue.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data import Volume, mni152

EPOCHS = 20
GROWTH_LIMIT = 0.10
QUEUE_MEMORY_LIMIT = 1.2


def _kib_field(path: str, field: str) -> int:
    """The ``field:`` line of a /proc file in KiB (0 if the process has exited)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _proportional_kib(pid: int) -> int:
    """PSS of process ``pid`` in KiB."""
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss")


def _resident_kib(pid: int) -> int:
    """RSS of process ``pid`` in KiB."""
    return _kib_field(f"/proc/{pid}/status", "VmRSS")


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


class _PeakSampler:
    """A thread recording the peak PSS of this process and its children."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            total = _proportional_kib(pid) + sum(_proportional_kib(c) for c in _children(pid))
            self.peak_kib = max(self.peak_kib, total)
            time.sleep(self.interval)

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class QueueMemory:
    """What :func:`measure_queue` saw."""

    peak_pss_mib: list[float] = field(default_factory=list)  # per epoch
    end_rss_mib: list[float] = field(default_factory=list)  # per epoch
    max_memory_mib: float = 0.0  # get_max_memory()
    held_mib: float = 0.0  # most the queue's patches held at once
    seconds: float = 0.0

    @staticmethod
    def growth(values: list[float]) -> float:
        """Largest relative growth of any later epoch over the first."""
        return max(values[1:]) / values[0] - 1

    def to_markdown(self) -> str:
        pss, rss = self.growth(self.peak_pss_mib), self.growth(self.end_rss_mib)
        ratio = self.held_mib / self.max_memory_mib

        def status(ok: bool) -> str:
            return "met" if ok else "**not met**"

        lines = [
            f"## Queue memory over {len(self.peak_pss_mib)} epochs (num_workers=2)",
            "",
            "8 MNI152 subjects (.nii.gz), RandomAffine + RandomNoise, UniformSampler(96),",
            f"10 patches per volume, max_length 40; {self.seconds:.0f} s in all. Peak PSS: main",
            "process plus live workers, sampled every 5 ms; RSS: main process after the epoch.",
            "",
            "| Measure | Epoch 1 | Later epochs (min-max) | Growth | Target | Status |",
            "|---|---|---|---|---|---|",
            f"| Peak PSS (MiB) | {self.peak_pss_mib[0]:.0f} | {min(self.peak_pss_mib[1:]):.0f}-"
            f"{max(self.peak_pss_mib[1:]):.0f} | {pss:+.1%} | < +10% | "
            f"{status(pss < GROWTH_LIMIT)} |",
            f"| RSS after the epoch (MiB) | {self.end_rss_mib[0]:.0f} | "
            f"{min(self.end_rss_mib[1:]):.0f}-{max(self.end_rss_mib[1:]):.0f} | {rss:+.1%} | "
            f"< +10% | {status(rss < GROWTH_LIMIT)} |",
            "",
            "| Queue memory | get_max_memory() | Most held by queued patches | Ratio | Target "
            "| Status |",
            "|---|---|---|---|---|---|",
            f"| MiB | {self.max_memory_mib:.1f} | {self.held_mib:.1f} | {ratio:.2f}x | <= 1.2x "
            f"| {status(ratio <= QUEUE_MEMORY_LIMIT)} |",
            "",
        ]
        return "\n".join(lines)


def _held_bytes(queue, handed_out) -> int:
    """Bytes of the distinct storages under the images of the queue's patches
    (queued, carried over, and the one it just handed out)."""
    storages: dict[int, int] = {}
    for patch in [handed_out, *queue.patches_list, *queue._leftover_patches]:
        for image in patch.get_images(intensity_only=False):
            storage = image.data.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def measure_queue(volume: Volume, epochs: int = EPOCHS) -> QueueMemory:
    """Drains a two-worker Queue for ``epochs`` epochs, recording its memory."""
    import torchvox

    subjects = [torchvox.Subject(t1=torchvox.ScalarImage(volume.t1_nii_gz)) for _ in range(8)]
    transform = torchvox.Compose([torchvox.RandomAffine(), torchvox.RandomNoise()])
    dataset = torchvox.SubjectsDataset(subjects, transform=transform)
    torch.manual_seed(0)
    queue = torchvox.Queue(
        dataset,
        max_length=40,
        samples_per_volume=10,
        sampler=torchvox.UniformSampler(96),
        num_workers=2,
    )
    result = QueueMemory(max_memory_mib=queue.get_max_memory() / 2**20)
    held = 0
    start = time.perf_counter()
    for _ in range(epochs):
        with _PeakSampler() as sampler:
            for index in range(len(queue)):
                patch = queue[index]
                held = max(held, _held_bytes(queue, patch))
                del patch
        result.peak_pss_mib.append(sampler.peak_kib / 1024)
        result.end_rss_mib.append(_resident_kib(os.getpid()) / 1024)
    result.seconds = time.perf_counter() - start
    result.held_mib = held / 2**20
    return result


def main() -> None:
    """Measures the MNI152 queue and prints the Markdown section."""
    print(measure_queue(mni152()).to_markdown())


if __name__ == "__main__":
    main()
