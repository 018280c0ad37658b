"""Voxels that an augmentation leaves to compute until a patch sampler knows which it needs.

A :class:`~torchvox.Queue` reads each augmented volume only through the few
patches it samples from it: ten random 96^3 patches of the MNI152 grid cover
about half of its voxels. While the queue transforms a subject for one of
torchvox's samplers (inside :func:`deferred_voxels`), the warp of a spatial
transform (nearest or linear, through the row kernels) and the seeded noise
that follows it are recorded on the image as :class:`PendingVoxels` instead
of computed. The sampler draws its patch corners, then computes the voxels of
those patches only (:meth:`PendingVoxels.evaluate_boxes`), bit for bit those
of the whole volume. Reading the image's data in any other way
(``image.data``, ``image['data']``...) computes the whole volume first, exactly
as the transforms would have, so nothing else can tell the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch

from .._backend import native, to_tensor

__all__ = ["PendingVoxels", "deferred_voxels", "deferring"]

_DEFERRING: ContextVar[bool] = ContextVar("torchvox_deferring_voxels", default=False)

#: Computes the voxels of a warp: all of them (``None``), or at least those in
#: the ``(N, 6)`` boxes ``(i0, j0, k0, i1, j1, k1)`` (the others are zero).
WarpKernel = Callable[[np.ndarray | None], np.ndarray]


@contextmanager
def deferred_voxels() -> Iterator[None]:
    """Within the block, transforms that can leave their voxels pending do so."""
    token = _DEFERRING.set(True)
    try:
        yield
    finally:
        _DEFERRING.reset(token)


def deferring() -> bool:
    """Whether a transform may leave its voxels pending now."""
    return _DEFERRING.get()


@dataclass(frozen=True)
class _Noise:
    mean: float
    std: float
    seed: int
    invert: bool


class PendingVoxels:
    """The voxels of an image not computed yet: a warp, then noise.

    Args:
        warp: The warp kernel call (see :data:`WarpKernel`).
        shape: Shape ``(C, I, J, K)`` of the result.
        dtype: Its dtype.
    """

    def __init__(self, warp: WarpKernel, shape: tuple[int, ...], dtype: torch.dtype):
        self._warp = warp
        self.shape = shape
        self.dtype = dtype
        self._noise: list[_Noise] = []

    def placeholder(self) -> torch.Tensor:
        """A tensor of the result's shape and dtype that holds no memory (a view of one zero)."""
        return torch.zeros((), dtype=self.dtype).expand(*self.shape)

    def accepts_noise(self) -> bool:
        """Whether noise can be added to the pending voxels (float results keep their type)."""
        return self.dtype in (torch.float32, torch.float64)

    def add_noise(self, mean: float, std: float, seed: int, invert: bool) -> None:
        """Record the noise of :class:`~torchvox.transforms.Noise` with these parameters."""
        if not self.accepts_noise():
            raise TypeError(f"Noise cannot be left pending on {self.dtype} voxels")
        self._noise.append(_Noise(mean, std, seed, invert))

    def evaluate(self) -> torch.Tensor:
        """Every voxel, by the same kernel calls the transforms make on whole volumes."""
        array = self._warp(None)
        for noise in self._noise:
            array = native().noise(array, noise.mean, noise.std, noise.seed, noise.invert)
        return to_tensor(array)

    def evaluate_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """A ``(C, I, J, K)`` array whose voxels inside ``boxes`` are those of :meth:`evaluate`.

        Args:
            boxes: ``(N, 6)`` int64 array of boxes ``(i0, j0, k0, i1, j1, k1)``.

        Voxels outside every box hold zero or their value.
        """
        boxes = np.ascontiguousarray(boxes, dtype=np.int64)
        array = self._warp(boxes)
        for noise in self._noise:
            native().noise_in_boxes(array, noise.mean, noise.std, noise.seed, noise.invert, boxes)
        return array
