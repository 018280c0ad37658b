"""Patches whose corners are drawn uniformly."""

from __future__ import annotations

from collections.abc import Generator

import torch

from ..subject import Subject
from .sampler import RandomSampler, crop_subject, volume_arrays

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

    def _generate_patches(
        self, subject: Subject, num_patches: int | None = None
    ) -> Generator[Subject, None, None]:
        valid_range = torch.as_tensor(subject.spatial_shape) - torch.as_tensor(
            self._patch_size_tuple()
        )
        arrays = volume_arrays(subject)
        patches_left = num_patches if num_patches is not None else True
        while patches_left:
            index_ini = [int(torch.randint(int(n) + 1, (1,)).item()) for n in valid_range]
            yield crop_subject(subject, index_ini, self._patch_size_tuple(), arrays)
            if num_patches is not None:
                patches_left -= 1
