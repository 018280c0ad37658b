"""Which output planes of a weighted grid aggregation have received all their patches."""

from __future__ import annotations

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
        self.starts = starts
        self.patch_shape = patch_shape
        counts = tuple(len(axis) for axis in starts)
        self._seen = np.zeros(counts, dtype=bool)
        # Patches added so far per first-axis start, and how many make it whole.
        self._added_per_start = np.zeros(counts[0], dtype=np.int64)
        self._per_start = counts[1] * counts[2]
        # covers[s, i]: the patches at first-axis start s reach plane i.
        planes = np.arange(num_planes)
        first = starts[0][:, np.newaxis]
        self._covers = (planes >= first) & (planes < first + patch_shape[0])
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
        shapes = np.unique(locations[:, 3:] // downsampling_factor - corners, axis=0)
        if len(shapes) != 1 or np.any(shapes <= 0):
            return None
        starts = tuple(np.unique(corners[:, axis]) for axis in range(3))
        is_full_grid = (
            len(np.unique(corners, axis=0))
            == len(corners)
            == int(np.prod([len(axis) for axis in starts]))
        )
        if not is_full_grid:
            return None
        pi, pj, pk = (int(n) for n in shapes[0])
        return cls((starts[0], starts[1], starts[2]), (pi, pj, pk), num_planes)

    @property
    def complete(self) -> bool:
        """Whether every patch of the grid has been added."""
        return bool(self._seen.all())

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
        indices = []
        for axis in range(3):
            grid = self.starts[axis]
            index = np.searchsorted(grid, corners[:, axis])
            inside = index < len(grid)
            if not inside.all() or np.any(grid[index] != corners[:, axis]):
                return None
            indices.append(index)
        flat = np.ravel_multi_index(tuple(indices), self._seen.shape)
        if len(np.unique(flat)) != len(flat) or self._seen.flat[flat].any():
            return None
        self._seen.flat[flat] = True
        self._added_per_start += np.bincount(indices[0], minlength=len(self._added_per_start))
        whole = self._added_per_start == self._per_start
        # A plane is complete once every start whose patches reach it is whole.
        complete = self._covers.any(axis=0) & ~(self._covers & ~whole[:, np.newaxis]).any(axis=0)
        newly = complete & ~self.divided
        self.divided |= newly
        return newly
