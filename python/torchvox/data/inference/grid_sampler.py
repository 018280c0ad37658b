"""A sampler that tiles a whole volume with (overlapping) patches, for inference."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
from torch.utils.data import Dataset

from ...types import TypeSpatialShape, TypeTripletInt
from ...utils import to_tuple
from .._recycle import ArrayPool
from ..sampler.sampler import (
    PatchSampler,
    Volume,
    crop_subject,
    crop_subjects,
    volume_arrays,
)
from ..subject import Subject

__all__ = ["GridSampler"]

# Batch arrays kept for reuse: a loop over a loader holds about two batches,
# each with one array per image (an intensity image and a label map, say).
_BATCHES = ArrayPool(capacity=8)


class GridSampler(PatchSampler, Dataset):
    r"""Extract patches across a whole volume, on a regular grid.

    Usable as a :class:`torch.utils.data.Dataset` (``len`` and indexing), typically
    with a :class:`~torchvox.SubjectsLoader` and a :class:`GridAggregator`.

    Args:
        subject: Subject from which patches are extracted.
        patch_size: ``(w, h, d)`` or one int for all axes.
        patch_overlap: Even ``(w_o, h_o, d_o)`` overlap between neighbouring patches,
            or one int for all axes.
        padding_mode: Same as ``padding_mode`` in :class:`~torchvox.transforms.Pad`.
            If ``None``, the volume is not padded and patches at the border are not
            cropped by the aggregator. Otherwise the volume is padded by half the
            overlap on every side and the aggregator crops its output back.

    Raises:
        ValueError: If the patch is larger than the (padded) volume, the overlap is
            not smaller than the patch, or the overlap is odd.
    """

    #: The grid's patches are all of the volume's: a number of them is refused.
    _takes_patch_count = False

    def __init__(
        self,
        subject: Subject,
        patch_size: TypeSpatialShape,
        patch_overlap: TypeSpatialShape = (0, 0, 0),
        padding_mode: str | float | None = None,
    ):
        super().__init__(patch_size)
        overlap = to_tuple(patch_overlap, length=3)
        if len(overlap) != 3 or any(
            isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0 for n in overlap
        ):
            raise ValueError(
                "patch_overlap must be a non-negative int or 3 non-negative ints,"
                f" got {patch_overlap!r}"
            )
        self.patch_overlap = np.array(overlap)
        self.padding_mode = padding_mode
        self.subject = self._pad(subject)
        self.locations = self._compute_locations(self.subject)
        self._arrays: dict[str, Volume] | None = None

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, index: int) -> Subject:
        location = self.locations[index]
        corner = (int(location[0]), int(location[1]), int(location[2]))
        if not self._methods_are_torchvox(("crop",)):
            # TorchIO's grid sampler takes an indexed patch by crop.
            return self.crop(self.subject, corner, self._patch_size_tuple())
        return crop_subject(self.subject, corner, self._patch_size_tuple(), self._volume_arrays())

    def __getitems__(self, indices: list[int]) -> list[Subject]:
        """The patches at ``indices``, extracted with one native call per image.

        ``DataLoader`` fetches a batch through this method; the patches' data are
        views of one batch tensor per image, which the loader's collation returns
        as they are instead of stacking copies. That tensor reuses the memory of
        an earlier batch once nothing refers to it any more.
        """
        if not self._methods_are_torchvox(("__getitem__", "crop")):
            # The loader would otherwise bypass what a subclass changed.
            return [self[index] for index in indices]
        corners = self.locations[np.asarray(indices, dtype=np.intp), :3]
        arrays = self._volume_arrays()
        buffers = {
            name: self._batch_buffer(array, len(indices))
            for name, array in arrays.items()
            if isinstance(array, np.ndarray)
        }
        return crop_subjects(self.subject, corners, self._patch_size_tuple(), arrays, buffers)

    def _batch_buffer(self, volume: np.ndarray, count: int) -> np.ndarray:
        """An ``(count, C, *patch_size)`` array for the patches of ``volume``.

        Taken from a process-wide pool (see :mod:`torchvox.data._recycle`), so
        that the batches of this sampler, and of the next sampler of an
        inference loop, reuse the memory of batches that nothing refers to any
        more instead of faulting in new pages.
        """
        shape = (count, volume.shape[0], *self._patch_size_tuple())
        buffer, _ = _BATCHES.take(shape, volume.dtype)
        return buffer

    def _volume_arrays(self) -> dict[str, Volume]:
        if self._arrays is None:
            # Converted once, so each patch is one copy of its region.
            self._arrays = volume_arrays(self.subject)
        return self._arrays

    def __getstate__(self) -> dict[str, object]:
        # Worker processes rebuild the arrays from the subject.
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state

    def __call__(
        self, subject: Subject | None = None, num_patches: int | None = None
    ) -> Generator[Subject, None, None]:
        subject = self.subject if subject is None else subject
        return super().__call__(subject, num_patches=num_patches)

    def _pad(self, subject: Subject) -> Subject:
        if self.padding_mode is None:
            return subject
        from ...transforms import Pad

        border = self.patch_overlap // 2
        padding = tuple(int(v) for v in border.repeat(2).tolist())
        transformed = Pad(padding, padding_mode=self.padding_mode)(subject)
        assert isinstance(transformed, Subject)
        return transformed

    def _compute_locations(self, subject: Subject) -> np.ndarray:
        size = self._patch_size_tuple()
        oi, oj, ok = (int(v) for v in self.patch_overlap.tolist())
        overlap = (oi, oj, ok)
        self._parse_sizes(subject.spatial_shape, size, overlap)
        return self._get_patches_locations(subject.spatial_shape, size, overlap)

    def _generate_patches(
        self, subject: Subject, num_patches: int | None = None
    ) -> Generator[Subject, None, None]:
        if num_patches is not None:
            raise ValueError("GridSampler does not support limiting the number of patches")
        subject = self._pad(subject)
        locations = self._compute_locations(subject)
        crops_directly = self._crops_directly()
        arrays = volume_arrays(subject) if crops_directly else {}
        for location in locations:
            corner = (int(location[0]), int(location[1]), int(location[2]))
            if crops_directly:
                yield crop_subject(subject, corner, self._patch_size_tuple(), arrays)
            else:
                # A subclass changed how patches are taken: through them, as TorchIO.
                yield self.extract_patch(subject, corner)

    @staticmethod
    def _parse_sizes(
        image_size: TypeTripletInt, patch_size: TypeTripletInt, patch_overlap: TypeTripletInt
    ) -> None:
        image = np.array(image_size)
        patch = np.array(patch_size)
        overlap = np.array(patch_overlap)
        if np.any(patch > image):
            raise ValueError(
                f"Patch size {tuple(patch.tolist())} cannot be larger than image size"
                f" {tuple(image.tolist())}"
            )
        if np.any(overlap >= patch):
            raise ValueError(
                f"Patch overlap {tuple(overlap.tolist())} must be smaller than patch size"
                f" {tuple(patch.tolist())}"
            )
        if np.any(overlap % 2):
            raise ValueError(
                f"Patch overlap must be a tuple of even integers, not {tuple(overlap.tolist())}"
            )

    @staticmethod
    def _get_patches_locations(
        image_size: TypeTripletInt, patch_size: TypeTripletInt, patch_overlap: TypeTripletInt
    ) -> np.ndarray:
        """``(N, 6)`` rows ``i0, j0, k0, i1, j1, k1``, sorted; the last patch of each
        axis is snapped to the border."""
        per_axis = []
        for size, patch, overlap in zip(image_size, patch_size, patch_overlap, strict=True):
            starts = list(range(0, size + 1 - patch, patch - overlap))
            if starts[-1] != size - patch:
                starts.append(size - patch)
            per_axis.append(starts)
        # Each axis's starts increase strictly, so their product in "ij" order
        # is already sorted and free of duplicates.
        corners = np.array(np.meshgrid(*per_axis, indexing="ij")).reshape(3, -1).T
        return np.hstack((corners, corners + np.array(patch_size))).astype(np.int64)
