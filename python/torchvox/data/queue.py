"""A queue of patches, filled from subjects loaded (and augmented) in parallel."""

from __future__ import annotations

import operator
import os
import sys
from collections.abc import Iterator, Sequence, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ..utils import format_bytes
from ._shared_arena import SharedArena, acquire, retire
from ._subject_patches import (
    LoadAhead,
    PatchWorkers,
    SubjectPatches,
    WorkerState,
    first_item,
    num_samples,
    splits_loading,
)
from .dataset import SubjectsDataset
from .sampler.sampler import PatchSampler
from .subject import Subject

__all__ = ["Queue"]

_OUTER_WORKERS_MESSAGE = (
    "The number of workers for the data loader used to pop patches from the queue"
    " should be 0. Is it? The queue was indexed in a DataLoader worker process; load"
    " subjects in parallel with the queue's own num_workers instead."
)


def _count(name: str, value: Any, minimum: int) -> int:
    """``value`` as an ``int`` of at least ``minimum``.

    Python, NumPy and 0-d tensor integers are accepted (TorchIO takes them
    unchecked); booleans and floats are not.

    Raises:
        ValueError: If ``value`` is not such an integer.
    """
    error = ValueError(
        f"{name} must be a {'positive' if minimum == 1 else 'non-negative'} integer, got {value!r}"
    )
    if isinstance(value, bool):  # an int to operator.index
        raise error
    try:
        count = operator.index(value)  # refuses floats and float tensors
    except TypeError:
        raise error from None
    if count < minimum:
        raise error
    return count


class Queue(Dataset):
    r"""Queue used for stochastic patch-based training.

    A buffer of up to ``max_length`` patches: when it is empty, subjects are loaded,
    transformed and sampled (``samples_per_volume`` patches, or the subject's
    ``num_samples`` attribute) by a :class:`~torch.utils.data.DataLoader` with
    ``num_workers`` processes, and the buffer is shuffled. Patches of a subject
    that do not fit are carried to the next fill. Use it with an outer
    :class:`~torchvox.SubjectsLoader` whose ``num_workers`` is 0: indexing the
    queue in a worker process of a loader raises a ``RuntimeError``.

    Beyond TorchIO:

    - Every subject of an epoch is loaded and sampled under a seed drawn in the
      main process, so for a fixed ``torch.manual_seed`` the patches (locations
      and augmentations) are the same for any ``num_workers``.
    - Workers crop the patches themselves, into memory shared with the main
      process (on Linux), so that only patches, not whole volumes, cross
      between processes, and without a copy. That memory is reused from one
      subject to the next. When the queue goes away, the next queue of the
      process takes it over (up to 1 GiB of it; see
      :func:`torchvox.data.release_cached_memory`), so that the workers of a
      queue made every epoch or every experiment do not fault in new pages.
    - Workers are kept from one epoch to the next (as a DataLoader's
      ``persistent_workers``) while the dataset (its subjects and transform)
      and the sampler are unchanged, so the patches are still those that new
      workers would produce. Both are compared every epoch through their
      pickled state: a change made to them, such as
      :meth:`~torchvox.SubjectsDataset.set_transform`, starts new workers.
      Tensors are compared by identity and in-place version, large NumPy
      arrays by identity only; state the workers cannot see that way (a
      global variable read by a function, the contents of a large NumPy array
      changed in place) reaches them only with ``persistent_workers=False``.

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
        persistent_workers: Keep the workers from one epoch to the next while
            what they copied is unchanged (see above). ``False`` starts new
            workers every epoch, as TorchIO does.

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
        persistent_workers: bool = True,
    ):
        max_length = _count("max_length", max_length, minimum=1)
        samples_per_volume = _count("samples_per_volume", samples_per_volume, minimum=1)
        num_workers = _count("num_workers", num_workers, minimum=0)
        if max_length < samples_per_volume:
            raise ValueError(
                f"max_length ({max_length}) must not be smaller than samples_per_volume"
                f" ({samples_per_volume}): the queue could not hold one subject's patches"
            )
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
        self.persistent_workers = persistent_workers
        self._subjects_iterable: Iterator[list[Subject]] | None = None
        # Patches of the last subject that did not fit in the queue.
        self._leftover_patches: list[Subject] = []
        self._num_sampled_subjects = 0
        self._arena: SharedArena | None = None
        self._workers: PatchWorkers | None = None
        # The process that started this queue's workers (and holds its shared
        # memory), set when they start: a forked copy (e.g. in the workers of a
        # later queue) must leave them.
        self._pid: int | None = None
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
        # A copy of the queue in each worker of an outer loader would hand out
        # its own patches (duplicates), and a forked copy waits forever on the
        # parent's loading threads: refuse instead.
        if get_worker_info() is not None:
            raise RuntimeError(_OUTER_WORKERS_MESSAGE)
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
        self._subjects_iterable = None
        self._subjects_iterable = self._get_subjects_iterable()

    def _stop_workers(self) -> None:
        """Stops the workers, if any, dropping the results still in flight.

        Two generations of workers must never run at once: they would
        allocate from the same arena partitions. Once the workers have
        exited, the blocks that only their lost results held are freed.
        """
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.close()

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
        return num_samples(subject, self.samples_per_volume)

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
                raise RuntimeError(_OUTER_WORKERS_MESSAGE) from exception
            self._abandon_epoch()
            raise
        except Exception:
            self._abandon_epoch()
            raise

    def _abandon_epoch(self) -> None:
        """Drops the epoch of subjects (and its workers) that just failed.

        A worker that died, or a loading error, leaves the epoch's loader
        unusable: the next fill starts a new epoch with new workers, rather
        than failing again on the old ones.
        """
        self._stop_workers()
        self._subjects_iterable = None

    # TorchIO's name for the collate function of the subjects loader.
    _get_first_item = staticmethod(first_item)

    def _epoch_order(self) -> list[int]:
        if self.subject_sampler is not None:
            return [int(i) for i in self.subject_sampler]
        if self.shuffle_subjects:
            return torch.randperm(len(self.subjects_dataset)).tolist()
        return list(range(len(self.subjects_dataset)))

    def _get_subjects_iterable(self) -> Iterator[list[Subject]]:
        order = self._epoch_order()
        seeds = torch.randint(0, 2**62, (len(order),)).tolist()
        tasks = list(zip(order, seeds, strict=True))
        self._num_sampled_subjects = 0
        if self.num_workers == 0:
            self._stop_workers()
            patches = SubjectPatches(self.subjects_dataset, self.sampler, self.samples_per_volume)
            if splits_loading(self.subjects_dataset):
                return LoadAhead(patches, tasks)
            loader = DataLoader(patches, batch_size=1, sampler=tasks, collate_fn=first_item)
            return iter(loader)
        state = None
        if self.persistent_workers:
            state = WorkerState(self.subjects_dataset, self.sampler, self.samples_per_volume)
        if self._workers is None or not self._workers.can_serve(state, self.num_workers):
            self._stop_workers()
            self._print(f"\nCreating subjects loader with {self.num_workers} workers")
            patches = SubjectPatches(
                self.subjects_dataset,
                self.sampler,
                self.samples_per_volume,
                self._shared_arena(),
            )
            self._workers = PatchWorkers(patches, self.num_workers, state)
            self._pid = os.getpid()
        return self._workers.epoch(tasks)

    def _shared_arena(self) -> SharedArena | None:
        """The memory the workers crop patches into (taken once), if there are workers.

        Call it only while no worker runs.
        """
        if self.num_workers == 0:
            return None
        if self._arena is None or self._arena.num_partitions < self.num_workers:
            if self._arena is not None:
                retire(self._arena)
            self._arena = acquire(self.num_workers)
        return self._arena

    def __getstate__(self) -> dict[str, Any]:
        # Loading threads, worker processes and shared memory belong to this
        # process: a copy (e.g. one sent to a spawned process) starts afresh,
        # with no queued patches and a new epoch of subjects when first indexed.
        state = self.__dict__.copy()
        state.update(
            _subjects_iterable=None,
            _workers=None,
            _arena=None,
            _leftover_patches=[],
            _num_sampled_subjects=0,
            _pid=None,
            patches_list=[],
        )
        return state

    def __del__(self) -> None:
        # The arena goes to the next queue, once no worker of this one can
        # write into it. (At interpreter exit the memory goes anyway.)
        arena = getattr(self, "_arena", None)
        if arena is None or sys.is_finalizing() or getattr(self, "_pid", None) != os.getpid():
            return
        self._stop_workers()
        self._arena = None
        retire(arena)

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
