"""A synthetic 3D zone plate: concentric shells whose frequency grows with the radius."""

from __future__ import annotations

import numpy as np

from ..data.image import ScalarImage
from ..data.subject import Subject

__all__ = ["ZonePlate"]


class ZonePlate(Subject):
    """A 3D zone plate (Jähne, Practical Handbook on Image Processing, eq. 10.63).

    ``g(r) = sin(k_m r^2 / (2 r_m)) * (1/2 + tanh((r_m - r) / w) / 2)`` with
    ``k_m = 0.8 pi`` (the local frequency reaches 80% of Nyquist at ``r = r_m``),
    ``r_m`` the distance from the centre to the faces of the volume and ``w = r_m / 10``.
    It tests interpolation and anti-aliasing: aliasing shows as spurious rings.

    The subject holds ``image``, a float64 :class:`ScalarImage` of shape
    ``(1, size, size, size)``, 1 mm spacing, world origin at the central voxel (for
    even sizes, the voxel just past the centre).

    Note:
        TorchIO 1.2.1 produces ``size - 1`` voxels per axis and a negative ``r_m``
        that disables the window; this version follows the formula.

    Args:
        size: Voxels per axis, at least 3.

    Raises:
        ValueError: If ``size`` is not an integer of at least 3.
    """

    def __init__(self, size: int = 501):
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 3:
            raise ValueError(f"size must be an integer of at least 3, got {size!r}")
        self.size = int(size)
        super().__init__(image=self._generate_image(self.size))

    @staticmethod
    def _generate_image(size: int) -> ScalarImage:
        first = -((size - 1) // 2)
        coordinates = np.arange(first, first + size, dtype=np.float64)
        squared = coordinates**2
        radius = np.sqrt(squared[:, None, None] + squared[None, :, None] + squared[None, None, :])
        max_radius = float(-first)
        wavenumber = 0.8 * np.pi
        width = max_radius / 10
        rings = np.sin(wavenumber * radius**2 / (2 * max_radius))
        window = 0.5 * np.tanh((max_radius - radius) / width) + 0.5
        affine = np.eye(4)
        affine[:3, 3] = first
        return ScalarImage(tensor=(rings * window)[np.newaxis], affine=affine)
