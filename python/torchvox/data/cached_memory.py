"""Memory torchvox keeps after use so that the next pass does not fault in new pages.

Three process-wide caches hold memory that nothing else refers to: the batch
buffers of grid samplers, the output volumes of grid aggregators, and the
shared memory of the last patch queue that went away. Each is bounded; this
module gives their memory back on request, e.g. before a memory-hungry step
of a long-running process.
"""

from __future__ import annotations

from . import _recycle, _shared_arena

__all__ = ["release_cached_memory"]


def release_cached_memory() -> None:
    """Frees the memory torchvox keeps for its next grid pass or patch queue.

    Buffers and arrays still in use (a batch or output volume a caller holds,
    the patches of a queue) are not touched: their memory goes with them.
    """
    _recycle.clear_pools()
    _shared_arena.release_spare()
