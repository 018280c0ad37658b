"""Which output planes of a weighted grid aggregation have received all their patches."""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["GridProgress"]


class GridProgress:
    """Tracks the patches of a full grid added so far, and the ``I`` planes they complete.

    An ``'average'`` or ``'hann'`` aggregation of a full grid (every combination
    of per-axis starts, once) can divide an output plane by its weights as soon
    as the last patch reaching it has been added, while the plane is still in
    cache, instead of in a pass over the whole volume at the end. This class
    tells which planes that is, batch by batch, as long as the batches stay on
    the grid.

    Args:
        starts: The sorted, distinct starts of the grid along each output axis.
        patch_shape: The ``(pi, pj, pk)`` output-space shape of every patch.
        num_planes: The number ``I`` of output planes along the first axis.
    """

    def __init__(
        self,
        starts: tuple[np.ndarray, np.ndarray, np.ndarray],
        patch_shape: tuple[int, int, int],
        num_planes: int,
    ):
        self.patch_shape = patch_shape
        #: The starts as lists of ints, as the native kernels take them.
        self.start_lists = [axis.tolist() for axis in starts]
        # Grid position of every corner (a batch holds a few patches: dict
        # lookups cost less than vectorised searches).
        corners = itertools.product(*self.start_lists)
        self._index = {corner: n for n, corner in enumerate(corners)}
        self._seen: set[int] = set()
        # Patches still to be added that reach each plane.
        self._pending = np.zeros(num_planes, dtype=np.int64)
        per_start = len(starts[1]) * len(starts[2])
        for first in self.start_lists[0]:
            self._pending[first : first + patch_shape[0]] += per_start
        self._covered = self._pending > 0
        self.divided = np.zeros(num_planes, dtype=bool)

    @classmethod
    def of_locations(
        cls, locations: np.ndarray, downsampling_factor: int, num_planes: int
    ) -> GridProgress | None:
        """The progress over the grid of ``locations`` ``(N, 6)`` (input voxels).

        Returns:
            ``None`` unless the locations, downsampled, form a full grid of
            equal patches: only then are a plane's weights known in advance.
        """
        if not len(locations):
            return None
        corners = locations[:, :3] // downsampling_factor
        shapes = locations[:, 3:] // downsampling_factor - corners
        if np.any(shapes != shapes[0]) or np.any(shapes[0] <= 0):
            return None
        rows = corners.tolist()
        starts = tuple(np.array(sorted({row[axis] for row in rows})) for axis in range(3))
        # Distinct corners, as many as the combinations of the per-axis starts.
        distinct = len(set(map(tuple, rows)))
        if not distinct == len(rows) == int(np.prod([len(axis) for axis in starts])):
            return None
        pi, pj, pk = (int(n) for n in shapes[0])
        return cls((starts[0], starts[1], starts[2]), (pi, pj, pk), num_planes)

    @property
    def complete(self) -> bool:
        """Whether every patch of the grid has been added."""
        return len(self._seen) == len(self._index)

    def add(self, corners: np.ndarray, patch_shape: tuple[int, int, int]) -> np.ndarray | None:
        """Records a batch of patches and returns the planes it completes.

        Args:
            corners: ``(B, 3)`` output-space corners of the batch's patches.
            patch_shape: Output-space shape of the batch's patches.

        Returns:
            One bool per plane, ``True`` for the planes that hold their final
            sum once this batch is added and have not been returned before;
            or ``None``, recording nothing, if a patch is off the grid, of
            another shape, or added before.
        """
        if tuple(patch_shape) != self.patch_shape:
            return None
        rows = [tuple(corner) for corner in corners.tolist()]
        positions: list[int] = []
        for corner in rows:
            position = self._index.get(corner)
            if position is None or position in self._seen:
                return None
            positions.append(position)
        if len(set(positions)) != len(positions):
            return None
        self._seen.update(positions)
        depth = self.patch_shape[0]
        for first, _, _ in rows:
            self._pending[first : first + depth] -= 1
        newly = self._covered & (self._pending == 0) & ~self.divided
        self.divided |= newly
        return newly
