"""Aggregation of predicted patches into a volume (dense inference)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..._backend import clone, native, to_numpy
from .._recycle import ArrayPool
from ._grid_progress import GridProgress
from .grid_sampler import GridSampler

__all__ = ["GridAggregator"]

# Output volumes that callers dropped, reused by the next aggregator of an
# inference loop: a 1 mm brain costs more to fault in than to aggregate.
_OUTPUTS = ArrayPool(capacity=2)

# Batch dtypes the native accumulation does not take, and the wider dtype each
# is accumulated in (exactly, for copies; half-precision sums gain accuracy).
# The output is given back in the batch dtype where TorchIO keeps it.
_WIDER = {
    torch.float16: torch.float32,
    torch.bfloat16: torch.float32,
    torch.int8: torch.int16,
    torch.bool: torch.uint8,
}


class GridAggregator:
    r"""Aggregate patches for dense inference.

    Builds the output volume from batches of patches predicted for the locations of
    a :class:`GridSampler`. Accumulation runs in Rust, in place, with no Python loop
    over patches; batches on any device are moved to the CPU once per batch.

    Args:
        sampler: The :class:`GridSampler` the patches came from.
        overlap_mode: ``'crop'`` (keep the centre of each patch: half the overlap is
            trimmed except at the volume border), ``'average'`` (mean of the
            overlapping predictions) or ``'hann'`` (predictions weighted by a
            separable Hann window, for smooth seams).
        downsampling_factor: Factor by which the model output is smaller than its
            input along each spatial axis; applied to the locations (and overlap) in
            every mode.

    Raises:
        ValueError: If ``overlap_mode`` is unknown, ``downsampling_factor`` is not
            a positive integer, or the sampler pads by a border (half the
            overlap) that is not a multiple of it.
    """

    def __init__(
        self,
        sampler: GridSampler,
        overlap_mode: str = "crop",
        downsampling_factor: int = 1,
    ):
        subject = sampler.subject
        self.volume_padded = sampler.padding_mode is not None
        self._parse_overlap_mode(overlap_mode)
        self.overlap_mode = overlap_mode
        if (
            isinstance(downsampling_factor, bool)
            or not isinstance(downsampling_factor, int | np.integer)
            or downsampling_factor < 1
        ):
            raise ValueError(
                f"downsampling_factor must be a positive integer, got {downsampling_factor!r}"
            )
        self._downsampling_factor = int(downsampling_factor)
        self.patch_overlap = sampler.patch_overlap
        border = np.asarray(sampler.patch_overlap) // 2
        if self.volume_padded and np.any(border % self._downsampling_factor):
            # The padding to crop off would fall between output voxels.
            raise ValueError(
                f"With padding, half the patch overlap ({border.tolist()}) must be a multiple"
                f" of downsampling_factor ({self._downsampling_factor})"
            )
        self.patch_size = sampler.patch_size
        shape = np.array(subject.spatial_shape) // self._downsampling_factor
        self.spatial_shape = tuple(int(n) for n in shape.tolist())
        self._output_array: np.ndarray | None = None
        # Locations (input space) and patch shapes (output space) of every batch
        # added; the weights of the weighted modes, and the voxels that no patch
        # reached in crop mode, are derived from them on demand instead of being
        # tracked voxel by voxel.
        self._batches: list[tuple[np.ndarray, tuple[int, int, int]]] = []
        # True while a recycled crop-mode output still holds its previous
        # contents where no patch has written: get_output_tensor zeroes those
        # voxels only, instead of the whole volume up front.
        self._stale = False
        # For a recycled output in the weighted modes, the I planes that still
        # hold previous contents: the native accumulation zeroes each one just
        # before the first patch that reaches it (while it is being written
        # anyway), instead of a pass over the whole volume up front; any plane
        # left is zeroed before the output is read.
        self._stale_planes: np.ndarray | None = None
        # True once get_output_tensor has divided the float accumulator of a full
        # grid in place: ``_output_array`` then holds the normalised output.
        self._normalised = False
        # The sampler's grid, for dividing the planes of a weighted float
        # aggregation as soon as they are complete (see GridProgress); None
        # once the batches leave the grid, or in crop mode.
        self._grid_locations = np.asarray(sampler.locations, dtype=np.int64)
        self._progress: GridProgress | None = None
        # The dtype of the batches if they are accumulated in a wider one.
        self._batch_dtype: torch.dtype | None = None

    @staticmethod
    def _parse_overlap_mode(overlap_mode: str) -> None:
        if overlap_mode not in ("crop", "average", "hann"):
            raise ValueError(
                f'Overlap mode must be "crop", "average" or "hann" but  "{overlap_mode}" was passed'
            )

    def _initialize(self, batch: np.ndarray) -> None:
        if self._output_array is not None:
            return
        channels = batch.shape[1]
        shape = (channels, *self.spatial_shape)
        self._output_array, recycled = _OUTPUTS.take(shape, batch.dtype, zeros=True)
        if recycled:
            if self.overlap_mode == "crop":
                # Patches overwrite; what they never reach is zeroed at the end.
                self._stale = True
            else:
                self._stale_planes = np.ones(shape[1], dtype=bool)
        if self.overlap_mode != "crop" and self._output_array.dtype.kind == "f":
            self._progress = GridProgress.of_locations(
                self._grid_locations, self._downsampling_factor, shape[1]
            )

    def add_batch(self, batch_tensor: torch.Tensor, locations: torch.Tensor) -> None:
        """Add a batch of patches predicted by a network to the output volume.

        Args:
            batch_tensor: ``(B, C, w, h, d)`` tensor (any device), e.g. the output of
                a convolutional network.
            locations: ``(B, 6)`` tensor of patch locations ``i0, j0, k0, i1, j1, k1``
                in the input volume, e.g. ``batch['location']``.

        Raises:
            RuntimeError: If the patch shape does not match the locations.
            TypeError: If the batch dtype differs from that of earlier batches.
        """
        batch = batch_tensor.detach()
        if batch.is_complex():
            raise TypeError(f"Complex batches cannot be aggregated, got {batch.dtype}")
        if self.overlap_mode == "hann" and batch.dtype != torch.float32:
            # TorchIO accumulates Hann-weighted patches in float32.
            batch = batch.to(torch.float32)
        elif batch.dtype in _WIDER:
            if self._output_array is None:
                self._batch_dtype = batch.dtype
            batch = batch.to(_WIDER[batch.dtype])
        array = to_numpy(batch)
        if self._output_array is not None and array.dtype != self._output_array.dtype:
            array = array.astype(self._output_array.dtype)
        location_array = np.ascontiguousarray(to_numpy(locations).astype(np.int64))
        if array.ndim != 5:
            raise RuntimeError(f"The batch must be 5D (B, C, W, H, D), got shape {array.shape}")
        d = self._downsampling_factor
        targets = location_array[:, 3:] // d - location_array[:, :3] // d
        if not len(targets):
            return
        input_shape = tuple(array.shape[-3:])
        target_shape = (int(targets[0, 0]), int(targets[0, 1]), int(targets[0, 2]))
        if input_shape != target_shape or not np.all(targets == targets[0]):
            raise RuntimeError(
                f"The shape of the input batch, {input_shape}, does not match the shape"
                f" of the target location, which is {target_shape}"
            )
        self._initialize(array)
        if self._normalised:
            self._restore_sum()
        assert self._output_array is not None
        overlap = tuple(int(v) for v in self.patch_overlap.tolist())
        progress = self._progress
        complete = (
            None if progress is None else progress.add(location_array[:, :3] // d, target_shape)
        )
        if progress is not None and complete is None:
            self._undo_early_division()
        if progress is not None and complete is not None:
            stale = self._stale_planes
            native().aggregate_patches_dividing(
                self._output_array,
                array,
                location_array,
                self.overlap_mode,
                overlap,
                self.volume_padded,
                d,
                np.zeros(len(complete), dtype=bool) if stale is None else stale,
                complete,
                progress.start_lists,
            )
        else:
            native().aggregate_patches(
                self._output_array,
                None,
                array,
                location_array,
                self.overlap_mode,
                overlap,
                self.volume_padded,
                d,
                self._stale_planes,
            )
        self._batches.append((location_array, target_shape))

    def get_output_tensor(self) -> torch.Tensor:
        """The aggregated ``(C, W, H, D)`` volume (cropped back if the sampler padded).

        int64 outputs are cast to int32 with a warning, as TorchIO does; averaged
        outputs are divided by the number (or Hann weight) of contributions.

        Without padding, the tensor returned shares memory with the aggregator in
        ``'crop'`` mode (as in TorchIO) and, for a full grid of float patches, in
        ``'average'`` and ``'hann'`` modes too (divided in place, see
        :meth:`_divide_by_weights`), where batches added afterwards leave it unchanged.

        Raises:
            RuntimeError: If no batch was added.
        """
        if self._output_array is None:
            raise RuntimeError("No batch has been added to the aggregator")
        if self._stale:
            self._zero_unreached()
        self._zero_stale_planes()
        output = torch.from_numpy(self._output_array)
        if output.dtype == torch.int64:
            warnings.warn(
                "Medical image frameworks such as ITK do not support int64. Casting to int32...",
                RuntimeWarning,
                stacklevel=2,
            )
            output = output.to(torch.int32)
        if self.overlap_mode in ("average", "hann"):
            output = self._divide_by_weights(output)
        batch_dtype = self._batch_dtype
        # Averages of integers stay float (true division), as in TorchIO.
        if batch_dtype is not None and (
            self.overlap_mode == "crop" or batch_dtype.is_floating_point
        ):
            output = output.to(batch_dtype)
        if self.volume_padded:
            border = (self.patch_overlap // 2) // self._downsampling_factor
            i, j, k = (int(b) for b in border)
            shape = output.shape[1:]
            output = clone(output[:, i : shape[0] - i, j : shape[1] - j, k : shape[2] - k])
        return output

    def _divide_by_weights(self, output: torch.Tensor) -> torch.Tensor:
        """``output`` divided voxel-wise by the summed weights of every patch added.

        A full grid (every combination of per-axis starts, once, one patch shape)
        has separable weights, divided out natively without a weight volume; any
        other set of locations accumulates one. Integer sums become float32, as
        with :func:`torch.true_divide`.

        A float accumulator of a full grid is divided in place and returned
        itself: a new 1 mm brain volume costs more to fault in than the whole
        division. When the batches are those of the sampler's grid, most planes
        were already divided by :meth:`add_batch`, right after their last
        patch (see ``GridProgress``), with the same quotients. The
        aggregator then remembers that it holds the quotient, so a repeated
        call returns it again and a later :meth:`add_batch` first rebuilds the
        sum in a new array (leaving the returned tensor alone).
        """
        if self._normalised:
            return output
        if self._progress is not None:
            if self._progress.complete:
                return self._divide_remaining_planes(output, self._progress)
            self._undo_early_division()
        accumulator = output.is_floating_point()
        if not accumulator:
            output = output.to(torch.get_default_dtype())
        summed = to_numpy(output)
        grid = self._full_grid()
        if grid is not None:
            axes, patch_shape = grid
            native().divide_by_grid_weights(
                summed, axes, patch_shape, self.overlap_mode, in_place=True
            )
            self._normalised = accumulator
            return output
        return torch.true_divide(output, torch.from_numpy(self._weight_volume(summed.dtype)))

    def _divide_remaining_planes(
        self, output: torch.Tensor, progress: GridProgress
    ) -> torch.Tensor:
        """Divides in place the planes of a whole grid not divided while it was added."""
        remaining = ~progress.divided
        if remaining.any():
            native().divide_by_grid_weights(
                to_numpy(output),
                progress.start_lists,
                progress.patch_shape,
                self.overlap_mode,
                in_place=True,
                planes=remaining,
            )
            progress.divided[:] = True
        self._normalised = True
        return output

    def _undo_early_division(self) -> None:
        """Multiplies the planes divided early back by their weights, in place.

        For batches that leave the sampler's grid (or an output read before the
        grid is whole): the sum is then rebuilt, exact up to the rounding of the
        quotients, and the division is left to :meth:`get_output_tensor`.
        """
        progress, self._progress = self._progress, None
        if progress is None or not progress.divided.any():
            return
        assert self._output_array is not None
        planes = progress.divided
        weights = self._weight_volume(self._output_array.dtype)
        self._output_array[:, planes] *= weights[:, planes]

    def _full_grid(
        self,
    ) -> tuple[tuple[list[int], list[int], list[int]], tuple[int, int, int]] | None:
        """Per-axis starts and patch shape if the batches added form a full grid.

        A full grid holds every combination of its per-axis starts, once, with
        one patch shape, and covers the whole output: its weights are then
        separable and nowhere zero (a partial grid, such as the first batches
        of a pass, leaves voxels that a division in place would turn into 0/0).
        """
        assert self._output_array is not None
        locations = np.concatenate([rows for rows, _ in self._batches])
        shapes = {shape for _, shape in self._batches}
        starts = locations[:, :3] // self._downsampling_factor
        axis_starts = [np.unique(starts[:, axis]) for axis in range(3)]
        is_full_grid = (
            len(shapes) == 1
            and len(set(map(tuple, starts.tolist()))) == len(starts)
            and int(np.prod([len(a) for a in axis_starts])) == len(starts)
        )
        if not is_full_grid:
            return None
        (patch_shape,) = shapes
        for axis, axis_start in enumerate(axis_starts):
            if not _covers(axis_start, patch_shape[axis], self._output_array.shape[axis + 1]):
                return None
        axes = (axis_starts[0].tolist(), axis_starts[1].tolist(), axis_starts[2].tolist())
        return axes, patch_shape

    def _weight_volume(self, dtype: np.dtype) -> np.ndarray:
        """The ``(1, I, J, K)`` summed weights of every patch added so far."""
        assert self._output_array is not None
        weights = np.zeros((1, *self._output_array.shape[1:]), dtype=dtype)
        for rows, patch_shape in self._batches:
            self._stamp(weights, rows, patch_shape, self.overlap_mode)
        return weights

    def _zero_unreached(self) -> None:
        """Zeroes the voxels of a recycled crop-mode output that no patch wrote.

        The crop regions of a full grid form a product of per-axis intervals, so
        what they miss is a few slabs (usually none); any other set of patches
        is stamped into a mask. Coverage only grows, so once is enough.
        """
        assert self._output_array is not None
        output = self._output_array
        grid = self._full_grid() if self._batches else None
        if not self._batches:
            output.fill(0)
        elif grid is not None:
            axes, patch_shape = grid
            for axis, starts in enumerate(axes):
                size = self.spatial_shape[axis]
                reached = np.zeros(size, dtype=bool)
                half = int(self.patch_overlap[axis]) // self._downsampling_factor // 2
                for start in starts:
                    end = start + patch_shape[axis]
                    first = start + half if self.volume_padded or start > 0 else start
                    last = end - half if self.volume_padded or end != size else end
                    reached[first:last] = True
                index: list[slice | np.ndarray] = [slice(None)] * 4
                index[axis + 1] = ~reached
                output[tuple(index)] = 0
        else:
            mask = np.zeros((1, *self.spatial_shape), dtype=np.uint8)
            for rows, patch_shape in self._batches:
                self._stamp(mask, rows, patch_shape, "crop")
            output[:, mask[0] == 0] = 0
        self._stale = False

    def _zero_stale_planes(self) -> None:
        """Zeroes the planes of a recycled weighted-mode output that no patch reached."""
        if self._stale_planes is None:
            return
        assert self._output_array is not None
        self._output_array[:, self._stale_planes] = 0
        self._stale_planes = None

    def _restore_sum(self) -> None:
        """Replace the normalised output by the weighted sum it was divided from.

        Multiplies back the weights (exact for counts up to rounding of the
        quotient) into a new array, so the tensor returned earlier is not changed.
        """
        assert self._output_array is not None
        weights = self._weight_volume(self._output_array.dtype)
        self._output_array = self._output_array * weights
        self._normalised = False
        self._progress = None

    def _stamp(
        self,
        weights: np.ndarray,
        locations: np.ndarray,
        patch_shape: tuple[int, int, int],
        mode: str,
    ) -> None:
        """Aggregates a unit patch at each of ``locations`` into ``weights`` ``(1, I, J, K)``.

        In the weighted modes this adds each patch's weight window; in crop mode
        it marks the voxels each patch writes.
        """
        # A bounded stack of unit patches: the weights of a whole batch at once
        # would cost as much memory as the batch itself.
        chunk = min(len(locations), max(1, 2**24 // max(1, int(np.prod(patch_shape)))))
        ones = np.ones((chunk, 1, *patch_shape), dtype=weights.dtype)
        overlap = tuple(int(v) for v in self.patch_overlap.tolist())
        for first in range(0, len(locations), chunk):
            rows = np.ascontiguousarray(locations[first : first + chunk])
            # Summing unit patches (Hann-weighted in hann mode) yields the weights.
            native().aggregate_patches(
                weights,
                None,
                ones[: len(rows)],
                rows,
                mode,
                overlap,
                self.volume_padded,
                self._downsampling_factor,
            )


def _covers(starts: np.ndarray, patch_size: int, size: int) -> bool:
    """Whether patches of ``patch_size`` at sorted ``starts`` cover ``0..size``."""
    ends = starts + patch_size
    return bool(starts[0] <= 0 and ends[-1] >= size and np.all(starts[1:] <= ends[:-1]))
