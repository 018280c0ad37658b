"""Patches whose corners are drawn uniformly."""

from __future__ import annotations

from collections.abc import Generator

import torch

from ..subject import Subject
from .sampler import (
    RandomSampler,
    crop_subject,
    has_pending_voxels,
    patch_boxes,
    volume_arrays,
)

__all__ = ["UniformSampler"]


class UniformSampler(RandomSampler):
    """Randomly extract patches from a volume with uniform probability.

    Every valid corner ``(i0, j0, k0)`` (``0 <= i0 <= I - pi`` and so on) is equally
    likely; corners are drawn with ``torch.randint``, so ``torch.manual_seed`` applies.

    Args:
        patch_size: See :class:`~torchvox.data.PatchSampler`.
    """

    def get_probability_map(self, subject: Subject) -> torch.Tensor:
        """A map of ones, ``(1, I, J, K)``."""
        return torch.ones(1, *subject.spatial_shape)

    def crops_pending_voxels(self) -> bool:
        """See :meth:`~torchvox.data.PatchSampler.crops_pending_voxels`."""
        methods = ("__call__", "_generate_patches", "crop", "extract_patch")
        return self._methods_are_torchvox(methods)

    def _generate_patches(
        self, subject: Subject, num_patches: int | None = None
    ) -> Generator[Subject, None, None]:
        valid_range = torch.as_tensor(subject.spatial_shape) - torch.as_tensor(
            self._patch_size_tuple()
        )
        if not self._crops_directly():
            yield from self._patches_by_extract_patch(subject, num_patches, valid_range)
            return
        if num_patches is not None and has_pending_voxels(subject):
            yield from self._patches_of_pending_voxels(subject, num_patches, valid_range)
            return
        arrays = volume_arrays(subject)
        patches_left = num_patches if num_patches is not None else True
        while patches_left:
            index_ini = [int(torch.randint(int(n) + 1, (1,)).item()) for n in valid_range]
            yield crop_subject(subject, index_ini, self._patch_size_tuple(), arrays)
            if num_patches is not None:
                patches_left -= 1

    def _patches_by_extract_patch(
        self, subject: Subject, num_patches: int | None, valid_range: torch.Tensor
    ) -> Generator[Subject, None, None]:
        """The patches of :meth:`_generate_patches`, each taken by :meth:`extract_patch`
        (a subclass overrides it or :meth:`crop`), as TorchIO takes them."""
        count = 0
        while num_patches is None or count < num_patches:
            i, j, k = (int(torch.randint(int(n) + 1, (1,)).item()) for n in valid_range)
            yield self.extract_patch(subject, (i, j, k))
            count += 1

    def _patches_of_pending_voxels(
        self, subject: Subject, num_patches: int, valid_range: torch.Tensor
    ) -> Generator[Subject, None, None]:
        """The patches of :meth:`_generate_patches`, their corners drawn first.

        The same random numbers are drawn in the same order (each corner, then
        the number each crop draws), then only the voxels inside the patches
        are computed. The corners are drawn at the first patch, so this is
        only for a caller that takes every patch at once (the queue).
        """
        size = self._patch_size_tuple()
        corners = []
        for _ in range(num_patches):
            corners.append([int(torch.randint(int(n) + 1, (1,)).item()) for n in valid_range])
            torch.rand(1)  # the draw of each crop (see crop_subject)
        arrays = volume_arrays(subject, patch_boxes(corners, size))
        for corner in corners:
            yield crop_subject(subject, corner, size, arrays, consume_random=False)
