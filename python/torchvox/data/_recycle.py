"""Process-wide pools of large NumPy arrays that nothing refers to any more.

Writing into memory already in use is several times faster than into a new
allocation, whose pages fault in (and are zeroed by the kernel) on their first
write; for a 1 mm brain volume that costs more than the copy itself. A pool
keeps the arrays it handed out and hands one out again once its reference
count shows that only the pool holds it: the caller's tensor, every view and
any array made from them hold a reference, so an array a caller keeps is never
reused. The pools are process-wide so that each new sampler or aggregator of an
inference loop over many subjects reuses the memory its predecessor dropped.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref

import numpy as np

__all__ = ["ArrayPool", "clear_pools"]

# Every pool, so that a forked child (a DataLoader worker) gets new locks: a
# lock that another thread held at the fork would never be released there.
_POOLS: weakref.WeakSet[ArrayPool] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    for pool in _POOLS:
        pool._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


def clear_pools() -> None:
    """Forgets the arrays of every pool of this process (see :meth:`ArrayPool.clear`)."""
    for pool in list(_POOLS):
        pool.clear()


class ArrayPool:
    """Up to ``capacity`` recycled arrays, matched by dtype and shape.

    Args:
        capacity: How many arrays the pool keeps; beyond it, the oldest one is
            left to whoever holds it (the pool then forgets it).
    """

    def __init__(self, capacity: int):
        self._capacity = capacity
        self._arrays: list[np.ndarray] = []
        # Two threads must not both see the same array free and take it.
        self._lock = threading.Lock()
        _POOLS.add(self)

    def take(
        self, shape: tuple[int, ...], dtype: np.dtype | type, zeros: bool = False
    ) -> tuple[np.ndarray, bool]:
        """A C-contiguous array of ``shape`` and ``dtype``, and whether it was recycled.

        A recycled array holds whatever its previous user left in it. A new one
        is zero-filled if ``zeros`` (for fresh pages ``np.zeros`` costs no more
        than ``np.empty``). A free array whose first axis is longer is returned
        as its leading slice, so a last, shorter batch reuses a full one.
        """
        dtype = np.dtype(dtype)
        with self._lock:
            stale = None
            for index in range(len(self._arrays)):
                # References: the pool's list and getrefcount's argument.
                if sys.getrefcount(self._arrays[index]) != 2:
                    continue
                array = self._arrays[index]
                if array.dtype == dtype and array.shape[1:] == shape[1:]:
                    if array.shape[0] == shape[0]:
                        return array, True
                    if array.shape[0] > shape[0]:
                        return array[: shape[0]], True
                stale = index if stale is None else stale
            array = (np.zeros if zeros else np.empty)(shape, dtype=dtype)
            if stale is not None:
                # A free array of another dtype or size: the new one takes its place.
                self._arrays[stale] = array
            else:
                # Every array is in use. The oldest one is left to whoever holds
                # it (a caller may keep it for good), so the pool keeps serving
                # the arrays that callers drop.
                self._arrays.append(array)
                if len(self._arrays) > self._capacity:
                    del self._arrays[0]
            return array, False

    def clear(self) -> None:
        """Forget every array (those still in use stay with their holders)."""
        with self._lock:
            self._arrays.clear()

    def __getstate__(self) -> dict[str, object]:
        raise TypeError("ArrayPool is process-local and cannot be pickled")
