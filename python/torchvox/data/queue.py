"""A queue of patches, filled from subjects loaded (and augmented) in parallel."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ..constants import NUM_SAMPLES
from ..utils import format_bytes
from ._shared_arena import SharedArena
from .dataset import SubjectsDataset
from .sampler.sampler import PatchSampler, patch_memory
from .subject import Subject

__all__ = ["Queue"]


def _splits_loading(dataset: SubjectsDataset) -> bool:
    """Whether ``dataset`` loads and transforms as :class:`SubjectsDataset` does
    (a subclass that overrides ``__getitem__`` may do anything, so its items
    are taken whole)."""
    getitem = type(dataset).__getitem__
    return isinstance(dataset, SubjectsDataset) and getitem is SubjectsDataset.__getitem__


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Runs the block with torch's CPU generator seeded by ``seed``, then restores it."""
    with torch.random.fork_rng(devices=[]):
        # Only the CPU generator, which fork_rng restores: torch.manual_seed would
        # also queue CUDA/XPU seeding (and record a stack trace) on every call.
        torch.default_generator.manual_seed(seed)
        yield


class _EpochPatches(Dataset):
    """The patches of each subject of one epoch, in order.

    Subject ``position`` is loaded, transformed and sampled under its own torch
    seed (drawn in the main process), so its patches (locations and
    augmentations) are the same whichever worker, if any, produces them. A
    worker with an arena crops the patches into it and returns them as
    references (see :class:`~torchvox.data._shared_arena.SharedArena`).
    """

    def __init__(
        self,
        dataset: SubjectsDataset,
        order: list[tuple[int, int]],
        sampler: PatchSampler,
        samples_per_volume: int,
        arena: SharedArena | None = None,
    ):
        self.dataset = dataset
        self.order = order
        self.sampler = sampler
        self.samples_per_volume = samples_per_volume
        self.arena = arena

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> list[Subject]:
        index, seed = self.order[position]
        with _seeded(seed):
            return self.sample(self.dataset[index])

    def sample(self, subject: Subject) -> list[Subject]:
        """The subject's ``num_samples`` patches (its attribute, or ``samples_per_volume``)."""
        num_samples = _num_samples(subject, self.samples_per_volume)
        arena = self.arena if get_worker_info() is not None else None
        with patch_memory(arena.allocate) if arena is not None else nullcontext():
            patches = list(islice(self.sampler(subject, num_samples), num_samples))
        if arena is not None:
            arena.detach(patches)
        return patches


def _num_samples(subject: Subject, default: int) -> int:
    return int(getattr(subject, NUM_SAMPLES, default))


def _freeze_inherited_objects(worker_id: int) -> None:
    """Keeps the garbage collector of a worker away from the objects it started with.

    A forked worker shares the main process's memory until it writes to it,
    and a collection writes to the header of every object it visits: the
    first full collection in a worker would copy most of the main process's
    Python heap (hundreds of MB next to torch), page by page. Those objects
    outlive the worker's short life anyway; objects the worker creates are
    collected as usual.
    """
    gc.freeze()


def _first_item(batch: list[list[Subject]]) -> list[Subject]:
    return batch[0]


class _Attached(Iterator[list[Subject]]):
    """The patch lists of a loader over :class:`_EpochPatches`, their arena
    references replaced by tensors.

    An iterator class rather than a generator: a suspended generator would
    keep the last list it yielded, so the patches of one more subject, alive.
    """

    def __init__(self, loader: Iterator[list[Subject]], arena: SharedArena | None):
        self._loader = loader
        self._arena = arena

    def __next__(self) -> list[Subject]:
        patches = next(self._loader)
        if self._arena is not None:
            self._arena.attach(patches)
        return patches

    def close(self) -> None:
        """Stops the loader's workers and waits for them to exit."""
        # A DataLoader iterator's only way to stop its workers (its __del__
        # calls it too, but only once nothing refers to the iterator).
        shutdown = getattr(self._loader, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


class _LoadAhead(Iterator[list[Subject]]):
    """The patch lists of :class:`_EpochPatches`, each subject read while the
    one before is being transformed and sampled.

    Reading a compressed volume is mostly single-threaded decompression, during
    which the transforms' threads would otherwise wait. A helper thread reads
    subject ``n + 1`` (no random numbers are drawn there); the calling thread
    transforms and samples subject ``n`` under its seed, exactly as
    :meth:`_EpochPatches.__getitem__` does, so the patches are the same. An
    error while reading is raised when that subject is asked for.
    """

    def __init__(self, epoch: _EpochPatches):
        # A DataLoader iterator draws its base seed from torch's generator,
        # whatever its number of workers: draw it too, so that the patches
        # and later random numbers stay those of the DataLoader path.
        torch.empty((), dtype=torch.int64).random_()
        self._epoch = epoch
        self._position = 0
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchvox-read")
        self._next: Future[Subject] | None = self._read(0)

    def _read(self, position: int) -> Future[Subject] | None:
        if position >= len(self._epoch):
            self._reader.shutdown(wait=False)
            return None
        index, _ = self._epoch.order[position]
        return self._reader.submit(self._epoch.dataset.load_subject, index)

    def __next__(self) -> list[Subject]:
        if self._next is None:
            raise StopIteration
        current, position = self._next, self._position
        self._position += 1
        self._next = self._read(self._position)
        subject = current.result()
        _, seed = self._epoch.order[position]
        with _seeded(seed):
            return self._epoch.sample(self._epoch.dataset.transform_subject(subject))

    def __del__(self) -> None:
        # Also reached when __init__ failed before the reader existed.
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.shutdown(wait=False, cancel_futures=True)


class Queue(Dataset):
    r"""Queue used for stochastic patch-based training.

    A buffer of up to ``max_length`` patches: when it is empty, subjects are loaded,
    transformed and sampled (``samples_per_volume`` patches, or the subject's
    ``num_samples`` attribute) by a :class:`~torch.utils.data.DataLoader` with
    ``num_workers`` processes, and the buffer is shuffled. Patches of a subject
    that do not fit are carried to the next fill. Use it with an outer
    :class:`~torchvox.SubjectsLoader` whose ``num_workers`` is 0.

    Beyond TorchIO:

    - Every subject of an epoch is loaded and sampled under a seed drawn in the
      main process, so for a fixed ``torch.manual_seed`` the patches (locations
      and augmentations) are the same for any ``num_workers``.
    - Workers crop the patches themselves, into memory shared with the main
      process (on Linux), so that only patches, not whole volumes, cross
      between processes, and without a copy. That memory is reused from one
      subject to the next and released with the queue.

    Args:
        subjects_dataset: The subjects, with their transform.
        max_length: Maximum number of patches in the queue.
        samples_per_volume: Default number of patches drawn from each subject.
        sampler: Patch sampler, e.g. :class:`~torchvox.data.UniformSampler`.
        subject_sampler: Sampler of subject indices (e.g. a
            :class:`~torch.utils.data.distributed.DistributedSampler`); must be sized.
        num_workers: Processes loading subjects.
        shuffle_subjects: Shuffle the subjects every epoch.
        shuffle_patches: Shuffle the patches after each fill.
        start_background: Start loading subjects at construction.
        verbose: Print queue events.

    Raises:
        ValueError: For ``shuffle_subjects`` with a ``subject_sampler``, non-positive
            sizes, or ``max_length`` smaller than ``samples_per_volume``.
        TypeError: If ``sampler`` is not a :class:`~torchvox.data.PatchSampler`.
    """

    def __init__(
        self,
        subjects_dataset: SubjectsDataset,
        max_length: int,
        samples_per_volume: int,
        sampler: PatchSampler,
        subject_sampler: Sampler | None = None,
        num_workers: int = 0,
        shuffle_subjects: bool = True,
        shuffle_patches: bool = True,
        start_background: bool = True,
        verbose: bool = False,
    ):
        for name, value in (("max_length", max_length), ("samples_per_volume", samples_per_volume)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if max_length < samples_per_volume:
            raise ValueError(
                f"max_length ({max_length}) must not be smaller than samples_per_volume"
                f" ({samples_per_volume}): the queue could not hold one subject's patches"
            )
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        if not isinstance(sampler, PatchSampler):
            raise TypeError(f"sampler must be a PatchSampler, got {type(sampler).__name__}")
        self.subjects_dataset = subjects_dataset
        self.max_length = max_length
        self.shuffle_subjects = shuffle_subjects
        self.shuffle_patches = shuffle_patches
        self.samples_per_volume = samples_per_volume
        self.sampler = sampler
        self.subject_sampler = subject_sampler
        self.num_workers = num_workers
        self.verbose = verbose
        self._subjects_iterable: Iterator[list[Subject]] | None = None
        # Patches of the last subject that did not fit in the queue.
        self._leftover_patches: list[Subject] = []
        self._num_sampled_subjects = 0
        self._arena: SharedArena | None = None
        if self.shuffle_subjects and self.subject_sampler is not None:
            raise ValueError(
                "The flag shuffle_subjects cannot be set when a subject sampler is passed"
            )
        if start_background:
            self._initialize_subjects_iterable()
        self.patches_list: list[Subject] = []

    def __len__(self) -> int:
        return self.iterations_per_epoch

    def __getitem__(self, index: int) -> Subject:
        # The index is ignored: the queue hands out its patches in order.
        if not self.patches_list:
            self._print("Patches list is empty.")
            self._fill()
            self.patches_list.reverse()
        return self.patches_list.pop()

    def __repr__(self) -> str:
        attributes = [
            f"max_length={self.max_length}",
            f"num_subjects={self.num_subjects}",
            f"num_patches={self.num_patches}",
            f"samples_per_volume={self.samples_per_volume}",
            f"iterations_per_epoch={self.iterations_per_epoch}",
        ]
        return f"Queue({', '.join(attributes)})"

    def _print(self, *args: Any) -> None:
        if self.verbose:
            print(*args)

    def _initialize_subjects_iterable(self) -> None:
        self._stop_loading()
        self._subjects_iterable = self._get_subjects_iterable()

    def _stop_loading(self) -> None:
        """Stops the workers of the current loader, if any, dropping their results.

        Two generations of workers must never run at once: they would
        allocate from the same arena partitions. Once the workers have
        exited, the blocks that only their lost results held are freed.
        """
        previous, self._subjects_iterable = self._subjects_iterable, None
        if isinstance(previous, _Attached):
            previous.close()
        if self._arena is not None:
            self._arena.reclaim()

    @property
    def subjects_iterable(self) -> Iterator[list[Subject]]:
        """The patch lists of the subjects of the current epoch, one list per subject."""
        if self._subjects_iterable is None:
            self._initialize_subjects_iterable()
        assert self._subjects_iterable is not None
        return self._subjects_iterable

    @property
    def num_subjects(self) -> int:
        """Subjects per epoch (``len(subject_sampler)`` if there is one).

        Raises:
            ValueError: If the subject sampler has no ``__len__``.
        """
        if self.subject_sampler is not None:
            if not isinstance(self.subject_sampler, Sized):
                raise ValueError(
                    "The subject sampler passed to the queue must have a __len__ method"
                )
            return len(self.subject_sampler)
        return len(self.subjects_dataset)

    @property
    def num_patches(self) -> int:
        """Patches currently in the queue."""
        return len(self.patches_list)

    @property
    def iterations_per_epoch(self) -> int:
        """Patches per epoch: the sum of every subject's number of samples."""
        all_subjects: Sequence[Subject] = self.subjects_dataset.dry_iter()
        if self.subject_sampler is not None:
            subjects: Sequence[Subject] = [all_subjects[i] for i in self.subject_sampler]
        else:
            subjects = all_subjects
        return sum(self._get_subject_num_samples(subject) for subject in subjects)

    def _get_subject_num_samples(self, subject: Subject) -> int:
        return _num_samples(subject, self.samples_per_volume)

    def _fill(self) -> None:
        # The patches that did not fit last time come first, as in TorchIO.
        self.patches_list.extend(self._leftover_patches)
        self._leftover_patches = []
        while True:
            patches = self._get_next_subject_patches()
            num_free_slots = max(self.max_length - len(self.patches_list), 0)
            self.patches_list.extend(patches[:num_free_slots])
            self._leftover_patches = patches[num_free_slots:]
            self._num_sampled_subjects += 1
            list_full = len(self.patches_list) >= self.max_length
            all_sampled = self._num_sampled_subjects >= self.num_subjects
            if list_full or all_sampled:
                break
        if self.shuffle_patches:
            self._shuffle_patches_list()

    def _shuffle_patches_list(self) -> None:
        indices = torch.randperm(self.num_patches)
        self.patches_list = [self.patches_list[i] for i in indices]

    def _get_next_subject_patches(self) -> list[Subject]:
        try:
            return next(self.subjects_iterable)
        except StopIteration as exception:
            # End of an epoch of subjects: start the next one.
            self._print("Queue is empty:", exception)
            self._initialize_subjects_iterable()
            return next(self.subjects_iterable)
        except AssertionError as exception:
            if "can only test a child process" in str(exception):
                raise RuntimeError(
                    "The number of workers for the data loader used to pop patches from the"
                    " queue should be 0. Is it?"
                ) from exception
            raise

    @staticmethod
    def _get_first_item(batch: list[Subject]) -> Subject:
        return batch[0]

    def _epoch_order(self) -> list[int]:
        if self.subject_sampler is not None:
            return [int(i) for i in self.subject_sampler]
        if self.shuffle_subjects:
            return torch.randperm(len(self.subjects_dataset)).tolist()
        return list(range(len(self.subjects_dataset)))

    def _get_subjects_iterable(self) -> Iterator[list[Subject]]:
        self._print(f"\nCreating subjects loader with {self.num_workers} workers")
        order = self._epoch_order()
        seeds = torch.randint(0, 2**62, (len(order),)).tolist()
        self._num_sampled_subjects = 0
        epoch = _EpochPatches(
            self.subjects_dataset,
            list(zip(order, seeds, strict=True)),
            self.sampler,
            self.samples_per_volume,
            self._shared_arena(),
        )
        if self.num_workers == 0 and _splits_loading(self.subjects_dataset):
            return _LoadAhead(epoch)
        loader = DataLoader(
            epoch,
            num_workers=self.num_workers,
            batch_size=1,
            collate_fn=_first_item,
            shuffle=False,
            worker_init_fn=_freeze_inherited_objects,
        )
        return _Attached(iter(loader), epoch.arena)

    def _shared_arena(self) -> SharedArena | None:
        """The memory the workers crop patches into (created once), if there are workers."""
        if self.num_workers == 0:
            return None
        if self._arena is None or self._arena.num_partitions < self.num_workers:
            self._arena = SharedArena.create(self.num_workers)
        return self._arena

    def get_max_memory(self, subject: Subject | None = None) -> int:
        """Maximum memory of the queued patches in bytes (assuming float32 voxels).

        Args:
            subject: Subject whose images give the channels of a patch; the first
                subject of the dataset if ``None``.
        """
        if subject is None:
            subject = self.subjects_dataset[0]
        channels = sum(len(image.data) for image in subject.get_images(intensity_only=False))
        voxels_in_patch = int(self.sampler.patch_size.astype(int).prod()) * channels
        return int(4 * voxels_in_patch * self.max_length)

    def get_max_memory_pretty(self, subject: Subject | None = None) -> str:
        """:meth:`get_max_memory` as a human-readable string, e.g. ``'1.2 GiB'``."""
        return format_bytes(self.get_max_memory(subject=subject))
