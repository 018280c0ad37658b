"""How a :class:`~torchvox.data.Queue` turns subjects into patches, in its own
process or in worker processes that it keeps from one epoch to the next."""

from __future__ import annotations

import gc
import hashlib
import io
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ..constants import NUM_SAMPLES
from ..transforms.transform import Transform
from ._shared_arena import SharedArena
from .dataset import SubjectsDataset
from .pending import deferred_voxels
from .sampler.sampler import PatchSampler, patch_memory
from .subject import Subject

#: One unit of work: a subject's index in the dataset and the torch seed it is
#: loaded, transformed and sampled under.
Task = tuple[int, int]


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Runs the block with torch's CPU generator seeded by ``seed``, then restores it."""
    with torch.random.fork_rng(devices=[]):
        # Only the CPU generator, which fork_rng restores: torch.manual_seed would
        # also queue CUDA/XPU seeding (and record a stack trace) on every call.
        torch.default_generator.manual_seed(seed)
        yield


def _made_of_torchvox_transforms(transform: object) -> bool:
    """Whether ``transform`` is ``None`` or a tree of torchvox's own transform classes."""
    if transform is None:
        return True
    if not isinstance(transform, Transform) or not type(transform).__module__.startswith(
        "torchvox."
    ):
        return False
    # Compose holds its children in a list; OneOf and SomeOf, as dict keys.
    children = getattr(transform, "transforms", None)
    if children is None:
        children = getattr(transform, "transforms_dict", ())
    return all(_made_of_torchvox_transforms(child) for child in cast(Iterable[object], children))


def num_samples(subject: Subject, default: int) -> int:
    """The subject's ``num_samples`` attribute, or ``default``."""
    return int(getattr(subject, NUM_SAMPLES, default))


def splits_loading(dataset: SubjectsDataset) -> bool:
    """Whether ``dataset`` loads and transforms as :class:`SubjectsDataset` does
    (a subclass that overrides ``__getitem__`` may do anything, so its items
    are taken whole)."""
    getitem = type(dataset).__getitem__
    return isinstance(dataset, SubjectsDataset) and getitem is SubjectsDataset.__getitem__


class SubjectPatches(Dataset):
    """The patches of one subject per item, the item being a :data:`Task`.

    The subject is loaded, transformed and sampled under the task's seed, so
    its patches (locations and augmentations) are the same whichever process
    produces them. In a worker with an arena, the patches are cropped into it
    and returned as references (see
    :class:`~torchvox.data._shared_arena.SharedArena`).
    """

    def __init__(
        self,
        dataset: SubjectsDataset,
        sampler: PatchSampler,
        samples_per_volume: int,
        arena: SharedArena | None = None,
    ):
        self.dataset = dataset
        self.sampler = sampler
        self.samples_per_volume = samples_per_volume
        self.arena = arena

    def __getitem__(self, task: Task) -> list[Subject]:
        index, seed = task
        with _seeded(seed):
            with self._voxels_on_demand():
                subject = self.dataset[index]
            return self.sample(subject)

    def transform(self, subject: Subject) -> Subject:
        """The dataset's transform of a loaded subject, as ``dataset[index]`` applies it."""
        with self._voxels_on_demand():
            return self.dataset.transform_subject(subject)

    def _voxels_on_demand(self) -> AbstractContextManager[None]:
        """Leaves voxels pending (see :mod:`torchvox.data.pending`) where that is safe.

        The sampler computes them inside its patches only. Safe when torchvox
        alone touches the images between the transform and the sampler: a
        plain dataset, a transform made of torchvox's transforms only (they
        read voxels through the Image API, which computes pending ones), and
        a sampler that :meth:`~torchvox.data.PatchSampler.crops_pending_voxels`.
        """
        if (
            splits_loading(self.dataset)
            and self.sampler.crops_pending_voxels()
            and _made_of_torchvox_transforms(self.dataset._transform)
        ):
            return deferred_voxels()
        return nullcontext()

    def sample(self, subject: Subject) -> list[Subject]:
        """The subject's ``num_samples`` patches (its attribute, or ``samples_per_volume``)."""
        count = num_samples(subject, self.samples_per_volume)
        in_worker = get_worker_info() is not None
        arena = self.arena if in_worker else None
        with patch_memory(arena.allocate) if arena is not None else nullcontext():
            patches = list(islice(self._patches(subject, count), count))
        if arena is not None:
            arena.detach(patches)
        if in_worker:
            _pack_small_tensors(patches)
        return patches

    def _patches(self, subject: Subject, count: int) -> Iterator[Subject]:
        """The sampler's patches of ``subject``, ``count`` of them if it takes a count.

        A sampler that refuses one (the grid sampler) gives all its patches, of
        which the caller takes the first ``count``, as TorchIO's queue does.
        """
        # A sampler of another kind (duck-typed) is asked as PatchSampler asks.
        if getattr(self.sampler, "_takes_patch_count", True):
            return self.sampler(subject, count)
        return self.sampler(subject)


#: Tensors of a patch up to this size (its location, a few numbers a user
#: added) travel from a worker by value.
SMALL_TENSOR_BYTES = 1 << 16


@dataclass(frozen=True)
class _ByValue:
    """A small tensor on its way from a worker, as an array that pickles by value.

    A tensor returned by a worker travels through a shared-memory file of its
    own, passed over a socket: for a patch's 48-byte location that cost about
    a millisecond of the main process's time per patch.
    """

    array: np.ndarray


def _replace_items(subject: Subject, replace: Callable[[Any], Any]) -> None:
    """Replaces each item ``value`` of ``subject`` by ``replace(value)`` if not ``None``,
    in the items and in their mirror as attributes."""
    for key in list(dict.keys(subject)):
        value = dict.__getitem__(subject, key)
        new = replace(value)
        if new is None:
            continue
        dict.__setitem__(subject, key, new)
        if subject.__dict__.get(key) is value:
            subject.__dict__[key] = new


def _to_value(value: Any) -> _ByValue | None:
    if (
        isinstance(value, torch.Tensor)
        and value.device.type == "cpu"
        and not value.requires_grad
        and value.nbytes <= SMALL_TENSOR_BYTES
    ):
        try:
            return _ByValue(value.numpy())
        except TypeError:  # no NumPy dtype (bfloat16...): torch's way, then
            return None
    return None


def _to_tensor(value: Any) -> torch.Tensor | None:
    return torch.from_numpy(value.array) if isinstance(value, _ByValue) else None


def _pack_small_tensors(patches: list[Subject]) -> None:
    for patch in patches:
        _replace_items(patch, _to_value)


def _unpack_small_tensors(patches: list[Subject]) -> None:
    for patch in patches:
        _replace_items(patch, _to_tensor)


class LoadAhead(Iterator[list[Subject]]):
    """The patch lists of an epoch's tasks in this process, each subject read
    while the one before is being transformed and sampled.

    Reading a compressed volume is mostly single-threaded decompression, during
    which the transforms' threads would otherwise wait. A helper thread reads
    subject ``n + 1`` (no random numbers are drawn there); the calling thread
    transforms and samples subject ``n`` under its seed, exactly as
    :meth:`SubjectPatches.__getitem__` does, so the patches are the same. An
    error while reading is raised when that subject is asked for.
    """

    def __init__(self, patches: SubjectPatches, tasks: Sequence[Task]):
        # A DataLoader iterator draws its base seed from torch's generator,
        # whatever its number of workers: draw it too, so that the patches
        # and later random numbers stay those of the DataLoader path.
        _draw_loader_seed()
        self._patches = patches
        self._tasks = tasks
        self._position = 0
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchvox-read")
        self._next: Future[Subject] | None = self._read(0)

    def _read(self, position: int) -> Future[Subject] | None:
        if position >= len(self._tasks):
            self._reader.shutdown(wait=False)
            return None
        index, _ = self._tasks[position]
        return self._reader.submit(self._patches.dataset.load_subject, index)

    def __next__(self) -> list[Subject]:
        if self._next is None:
            raise StopIteration
        current, position = self._next, self._position
        self._position += 1
        self._next = self._read(self._position)
        subject = current.result()
        _, seed = self._tasks[position]
        with _seeded(seed):
            return self._patches.sample(self._patches.transform(subject))

    def __del__(self) -> None:
        # Also reached when __init__ failed before the reader existed.
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.shutdown(wait=False, cancel_futures=True)


def _draw_loader_seed() -> None:
    """Draws the number a new DataLoader iterator draws from torch's generator."""
    torch.empty((), dtype=torch.int64).random_()


def _freeze_inherited_objects(worker_id: int) -> None:
    """Keeps the garbage collector of a worker away from the objects it started with.

    A forked worker shares the main process's memory until it writes to it,
    and a collection writes to the header of every object it visits: the
    first full collection in a worker would copy most of the main process's
    Python heap (hundreds of MB next to torch), page by page. Objects the
    worker creates are collected as usual.
    """
    gc.freeze()


def first_item(batch: list[Any]) -> Any:
    """The only item of a batch of one (the collate function of the queue's loaders)."""
    return batch[0]


class _EpochTasks(Sampler[Task]):
    """The tasks of the current epoch, replaced by the main process every epoch."""

    def __init__(self) -> None:
        self.tasks: Sequence[Task] = ()

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


class PatchWorkers:
    """Worker processes that produce the patch lists of subjects, epoch after epoch.

    A DataLoader with persistent workers over :class:`SubjectPatches`; every
    epoch hands it a new list of tasks. Keeping the workers saves more than
    starting processes: a new worker's first subjects write to memory that the
    kernel has to fault in (and zero) page by page, which on the machines we
    measured made them take two to three times as long as the later ones.

    The workers hold copies of the dataset, sampler and transform as they were
    when the workers started; ``state`` is their :class:`WorkerState` then
    (``None``: the workers are not to be kept).
    """

    def __init__(self, patches: SubjectPatches, num_workers: int, state: WorkerState | None):
        self._tasks = _EpochTasks()
        self._loader = DataLoader(
            patches,
            batch_size=1,
            sampler=self._tasks,
            num_workers=num_workers,
            collate_fn=first_item,
            worker_init_fn=_freeze_inherited_objects,
            # Workers not to be kept exit at the end of their epoch, as usual.
            persistent_workers=state is not None,
        )
        self.arena = patches.arena
        self.num_workers = num_workers
        self.state = state
        self._iterator: Iterator[list[Subject]] | None = None
        self._epoch_finished = True

    def can_serve(self, state: WorkerState | None, num_workers: int) -> bool:
        """Whether the workers can produce the next epoch as new workers would.

        Only if their copies of the data are still right (``state``, the
        current one, is that of their start), there are as many as asked
        for, and the last epoch was read to its end (the loader would
        otherwise drop the results still in flight, whose arena blocks only
        new workers may reclaim).
        """
        return (
            self._epoch_finished
            and num_workers == self.num_workers
            and state is not None
            and self.state is not None
            and state.same_as(self.state)
        )

    def epoch(self, tasks: Sequence[Task]) -> _Epoch:
        """Starts producing the patch lists of ``tasks`` (an epoch's subjects and
        their seeds), in order."""
        self._tasks.tasks = tasks
        if self._iterator is not None and self._loader.persistent_workers:
            # A new loader's iterator draws a number from torch's generator; a
            # persistent one draws it only once. Draw it every epoch, so that
            # later random numbers do not depend on whether workers were kept.
            _draw_loader_seed()
        self._epoch_finished = False
        self._iterator = iter(self._loader)
        return _Epoch(self)

    def next_patches(self) -> list[Subject]:
        """The next subject's patches of the current epoch, as tensors of this process.

        Raises:
            StopIteration: At the end of the epoch.
        """
        assert self._iterator is not None
        try:
            patches = next(self._iterator)
        except StopIteration:
            self._epoch_finished = True
            raise
        if self.arena is not None:
            self.arena.attach(patches)
        _unpack_small_tensors(patches)
        return patches

    def close(self) -> None:
        """Stops the workers, waits for them to exit, and frees what they left in the arena."""
        # A DataLoader iterator's only way to stop its workers (its __del__
        # calls it too, but only once nothing refers to the iterator).
        shutdown = getattr(self._iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._iterator = None
        if self.arena is not None:
            self.arena.reclaim()


class _Epoch(Iterator[list[Subject]]):
    """The patch lists of one epoch of :class:`PatchWorkers`, their arena
    references replaced by tensors.

    An iterator class rather than a generator: a suspended generator would
    keep the last list it yielded, so the patches of one more subject, alive.
    """

    def __init__(self, workers: PatchWorkers):
        self._workers = workers

    def __next__(self) -> list[Subject]:
        return self._workers.next_patches()


class _ReferencePickler(pickle.Pickler):
    """Pickles everything by value, except large arrays and tensors, which it
    pickles by identity (and, for tensors, the counter of in-place changes).

    The arrays and tensors seen are kept in ``seen`` so that their identities
    cannot be reused by new objects while the state is compared.
    """

    #: Arrays and tensors up to this size are pickled by value.
    BY_VALUE_BYTES = 1 << 16

    def __init__(self, file: io.BytesIO, seen: list[Any]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._seen = seen

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor) and obj.nbytes > self.BY_VALUE_BYTES:
            self._seen.append(obj)
            return ("tensor", id(obj), obj._version)
        if isinstance(obj, np.ndarray) and obj.nbytes > self.BY_VALUE_BYTES:
            self._seen.append(obj)
            return ("array", id(obj))
        return None


class WorkerState:
    """What the workers' copies of the queue's objects depend on, compared by digest.

    Args:
        objects: The objects the workers use (the dataset, with its subjects
            and transform, and the patch sampler).

    Attributes:
        digest: A digest of their pickled state, or ``None`` if they cannot be
            pickled (e.g. a transform that calls a lambda), in which case no
            two states compare equal and workers are started every epoch.
    """

    def __init__(self, *objects: Any):
        self._seen: list[Any] = []
        buffer = io.BytesIO()
        try:
            _ReferencePickler(buffer, self._seen).dump(objects)
        except Exception:  # anything unpicklable: compare as changed
            self.digest: bytes | None = None
        else:
            self.digest = hashlib.blake2b(buffer.getbuffer(), digest_size=32).digest()

    def same_as(self, other: WorkerState) -> bool:
        """Whether both states are known and equal."""
        return self.digest is not None and self.digest == other.digest
