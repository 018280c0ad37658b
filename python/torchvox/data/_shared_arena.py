"""Shared memory that DataLoader workers write patches into and the main process reads in place.

A tensor that a worker returns normally travels through a new shared-memory
segment: the worker copies it there, then both processes fault in every page
of that segment (the kernel zeroes each one first). For the patches of 3D
volumes (a 96^3 float32 patch is 3.4 MiB) the copy and the faults cost about
as much as augmenting the volume they came from. An arena is one anonymous
memory file (``memfd``) that the main process and its workers map once. A
worker allocates blocks of it, crops its patches straight into them and sends
only where they are (:class:`ArenaRef`); the main process wraps the same
bytes as tensors. Blocks are allocated again once the main process has
dropped every tensor viewing them, so after the first subjects no page is
faulted in again.

Each worker allocates from its own partition of the arena, so two processes
never claim the same block: a block's state byte (in the arena's first bytes)
goes from free to used only in the worker that owns it, and back to free only
in the main process, once nothing views the block any more. Only the pages a
worker writes become resident: a partition's size is address space, not
memory.

A queue that goes away leaves its arena to the next queue of the process
(:func:`acquire`, :func:`retire`), up to :data:`SPARE_LIMIT_BYTES` of resident
memory: the pages its workers wrote stay resident, so the next queue's
workers write patches into memory that is already there instead of faulting
in (and zeroing) new pages, which took as long as cropping the patches
several times over for a new queue's first subjects.
:func:`~torchvox.data.release_cached_memory` gives that memory back.
"""

from __future__ import annotations

import math
import mmap
import os
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing import reduction
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from ..constants import DATA
from .subject import Subject

__all__ = ["ArenaRef", "SharedArena", "acquire", "release_spare", "retire"]

#: Allocation granularity: small enough that a few small patches do not waste
#: much, large enough that the state bytes of a partition stay few.
BLOCK_BYTES = 1 << 16
#: Address space of each worker's partition (only written pages use memory).
PARTITION_BYTES = 1 << 31

#: Resident memory up to which a retired arena is kept for the next queue.
SPARE_LIMIT_BYTES = 1 << 30

_FREE = 0
_USED = 1


@dataclass(frozen=True)
class ArenaRef:
    """Where a worker wrote a tensor in the arena: what the main process needs to view it.

    Attributes:
        first_block: First block of the allocation that holds the tensor.
        num_blocks: Blocks in that allocation.
        offset: Byte offset of the tensor's first element from the allocation's start.
        shape: Shape of the tensor.
        strides: Strides of the tensor, in elements.
        dtype: NumPy name of the tensor's dtype.
    """

    first_block: int
    num_blocks: int
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str


class SharedArena:
    """Memory shared by a main process and ``num_partitions`` DataLoader workers.

    Create it in the main process before the workers start: a forked worker
    inherits the mapping, a spawned one receives the memory file's descriptor
    when the arena is pickled with its dataset.

    Args:
        num_partitions: Number of workers (worker ``n`` allocates from partition ``n``).
        fd: Descriptor of an existing arena's memory file (when attaching in a
            spawned worker); a new memory file is created if ``None``.

    Raises:
        OSError: If the memory file cannot be created or mapped.
    """

    def __init__(self, num_partitions: int, fd: int | None = None):
        self.num_partitions = num_partitions
        # Only an arena this process created may serve another queue: an
        # attached one is also the creator's, whose workers write into it.
        self._created = fd is None
        self._blocks_per_partition = PARTITION_BYTES // BLOCK_BYTES
        num_blocks = num_partitions * self._blocks_per_partition
        # The state bytes come first; the data starts at the next block boundary.
        self._data_offset = math.ceil(num_blocks / BLOCK_BYTES) * BLOCK_BYTES
        size = self._data_offset + num_blocks * BLOCK_BYTES
        if fd is None:
            fd = os.memfd_create("torchvox-arena", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, size)
            except OSError:
                os.close(fd)
                raise
        self._fd = fd
        # Not alive once the descriptor is closed: a queue and its arena freed
        # together as cyclic garbage may see the arena's finalizer run first.
        self._closer = weakref.finalize(self, os.close, fd)
        self._closer.atexit = False
        self._map = mmap.mmap(fd, size)
        self._states = np.frombuffer(self._map, dtype=np.uint8, count=num_blocks)
        self._address = self._states.ctypes.data
        self._size = size
        # Only the process that created the arena frees blocks: a forked worker
        # inherits the creator's views, and must not free their blocks when it
        # happens to collect its copies of them.
        self._owner_pid = os.getpid()
        # Worker side: allocations since the last `detach`, first block -> blocks.
        self._unsent: dict[int, int] = {}
        # Main side: allocations that tensors in this process view, first block -> blocks.
        self._viewed: dict[int, int] = {}

    @classmethod
    def create(cls, num_partitions: int) -> SharedArena | None:
        """A new arena, or ``None`` where memory files are not available (not Linux)."""
        if not hasattr(os, "memfd_create"):
            return None
        try:
            return cls(num_partitions)
        except OSError:
            return None

    def __reduce__(self) -> tuple[Callable[..., SharedArena], tuple[Any, ...]]:
        # Pickled to start a spawned worker: the descriptor goes along with it.
        return _attach, (reduction.DupFd(self._fd), self.num_partitions)

    # Worker side -----------------------------------------------------------

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray | None:
        """A C-contiguous array in this worker's partition, or ``None``.

        ``None`` outside a DataLoader worker, for a worker without a partition,
        or when the partition has no free run of blocks long enough (the caller
        then uses ordinary memory).
        """
        info = get_worker_info()
        if info is None or not 0 <= info.id < self.num_partitions:
            return None
        dtype = np.dtype(dtype)
        count = math.prod(shape)
        num_blocks = max(1, -(-count * dtype.itemsize // BLOCK_BYTES))
        low = info.id * self._blocks_per_partition
        partition = self._states[low : low + self._blocks_per_partition]
        start = _first_free_run(partition, num_blocks)
        if start is None:
            return None
        partition[start : start + num_blocks] = _USED
        first = low + start
        self._unsent[first] = num_blocks
        offset = self._data_offset + first * BLOCK_BYTES
        return np.frombuffer(self._map, dtype=dtype, count=count, offset=offset).reshape(shape)

    def detach(self, subjects: Iterable[Subject]) -> None:
        """Replaces the data of every image whose tensor lies in the arena by its :class:`ArenaRef`.

        Call it on what a worker is about to return, once its tensors are
        written: the references pickle in a few bytes.
        """
        for subject in subjects:
            for image in subject.get_images(intensity_only=False):
                tensor = dict.get(image, DATA)
                if isinstance(tensor, torch.Tensor):
                    reference = self._reference(tensor)
                    if reference is not None:
                        dict.__setitem__(image, DATA, reference)
        self._unsent.clear()

    def _reference(self, tensor: torch.Tensor) -> ArenaRef | None:
        if tensor.device.type != "cpu" or tensor.requires_grad:
            return None
        itemsize = tensor.element_size()
        offset = tensor.data_ptr() - self._address - self._data_offset
        if not 0 <= offset < self._size - self._data_offset:
            return None
        block = offset // BLOCK_BYTES
        # The allocation holding the tensor: the last one starting at or before it.
        first = max((f for f in self._unsent if f <= block), default=None)
        if first is None:
            return None
        num_blocks = self._unsent[first]
        start = offset - first * BLOCK_BYTES
        extent = sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride(), strict=True))
        if min(tensor.stride(), default=0) < 0 or start + (extent + 1) * itemsize > (
            num_blocks * BLOCK_BYTES
        ):
            return None
        return ArenaRef(
            first_block=first,
            num_blocks=num_blocks,
            offset=start,
            shape=tuple(tensor.shape),
            strides=tuple(tensor.stride()),
            dtype=str(torch.empty((), dtype=tensor.dtype).numpy().dtype),
        )

    # Main side -------------------------------------------------------------

    def attach(self, subjects: Iterable[Subject]) -> None:
        """Replaces every :class:`ArenaRef` among the images' data by a tensor viewing the arena.

        The blocks of an allocation are freed once no tensor views them.
        """
        allocations: dict[int, np.ndarray] = {}
        for subject in subjects:
            for image in subject.get_images(intensity_only=False):
                reference = dict.get(image, DATA)
                if isinstance(reference, ArenaRef):
                    base = allocations.get(reference.first_block)
                    if base is None:
                        base = self._view_allocation(reference.first_block, reference.num_blocks)
                        allocations[reference.first_block] = base
                    dict.__setitem__(image, DATA, _tensor_in(base, reference))

    def _view_allocation(self, first: int, num_blocks: int) -> np.ndarray:
        offset = self._data_offset + first * BLOCK_BYTES
        base = np.frombuffer(
            self._map, dtype=np.uint8, count=num_blocks * BLOCK_BYTES, offset=offset
        )
        self._viewed[first] = num_blocks
        weakref.finalize(base, self._release, first, num_blocks).atexit = False
        return base

    def _release(self, first: int, num_blocks: int) -> None:
        if os.getpid() != self._owner_pid:
            return
        self._viewed.pop(first, None)
        self._states[first : first + num_blocks] = _FREE

    def reclaim(self) -> None:
        """Frees every block that no tensor of this process views.

        Blocks that a worker allocated but whose patches never reached this
        process (an epoch abandoned with results in flight) are freed here.
        Call it only while no worker runs.
        """
        self._states[:] = _FREE
        for first, num_blocks in list(self._viewed.items()):
            self._states[first : first + num_blocks] = _USED

    @property
    def resident_bytes(self) -> int:
        """Bytes of the arena's memory file that hold pages (those ever written)."""
        return os.fstat(self._fd).st_blocks * 512

    @property
    def allocated_bytes(self) -> int:
        """Bytes of the blocks currently allocated (an upper bound of what they hold)."""
        return int(np.count_nonzero(self._states)) * BLOCK_BYTES


# The arena of a queue that went away, kept for the next queue of this process.
_spare: SharedArena | None = None


def acquire(num_partitions: int) -> SharedArena | None:
    """An arena for a new queue's ``num_partitions`` workers: the spare one if it
    has partitions enough, else a new one (``None`` where memory files are not
    available)."""
    global _spare
    spare, _spare = _spare, None
    # A forked child's copy of the spare maps its parent's memory: only the
    # parent may hand it to a queue.
    if (
        spare is not None
        and spare._owner_pid == os.getpid()
        and spare.num_partitions >= num_partitions
    ):
        return spare
    return SharedArena.create(num_partitions)


def retire(arena: SharedArena) -> None:
    """Keeps ``arena`` for the next queue, once no worker writes into it any more.

    Call it only after the workers that used the arena have exited. The
    blocks that tensors of this process still view stay allocated. An arena
    another process created, or holding more than :data:`SPARE_LIMIT_BYTES`,
    is left to be freed with its last view.
    """
    global _spare
    if not arena._created or arena._owner_pid != os.getpid() or not arena._closer.alive:
        return
    if arena.resident_bytes > SPARE_LIMIT_BYTES:
        return
    arena.reclaim()
    _spare = arena


def release_spare() -> None:
    """Frees the memory of the arena kept for the next queue, if any.

    Its pages go back to the system once no patch tensor views them.
    """
    global _spare
    _spare = None


def _attach(fd: Any, num_partitions: int) -> SharedArena:
    return SharedArena(num_partitions, fd=fd.detach())


def _first_free_run(states: np.ndarray, length: int) -> int | None:
    """Index of the first run of ``length`` free state bytes, or ``None``."""
    free = np.concatenate(([False], states == _FREE, [False]))
    edges = np.flatnonzero(np.diff(free.view(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    fitting = np.flatnonzero(ends - starts >= length)
    return int(starts[fitting[0]]) if fitting.size else None


def _tensor_in(base: np.ndarray, reference: ArenaRef) -> torch.Tensor:
    dtype = np.dtype(reference.dtype)
    array = np.ndarray(
        reference.shape,
        dtype=dtype,
        buffer=base,
        offset=reference.offset,
        strides=tuple(s * dtype.itemsize for s in reference.strides),
    )
    return torch.from_numpy(array)
