"""Base class of transforms parameterised by six bounds (Crop, Pad)."""

from __future__ import annotations

from typing import Any

from ..masking import TypeBounds, parse_bounds
from ..spatial_transform import SpatialTransform

__all__ = ["BoundsTransform", "TypeBounds"]


class BoundsTransform(SpatialTransform):
    """Spatial transform that changes the image bounds by whole voxels.

    Args:
        bounds_parameters: An int ``n``, three ints ``(i, j, k)`` or six ints
            ``(i0, i1, j0, j1, k0, k1)``: voxels at the start and end of each axis.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: If the bounds are not 1, 3 or 6 non-negative ints.
    """

    #: Name of the user argument holding the bounds, for error messages.
    _bounds_argument = "bounds_parameters"

    def __init__(self, bounds_parameters: TypeBounds, **kwargs: Any):
        super().__init__(**kwargs)
        self.bounds_parameters = parse_bounds(bounds_parameters, self._bounds_argument)

    def _six_bounds(self) -> tuple[int, int, int, int, int, int]:
        if self.bounds_parameters is None:
            raise ValueError(f"{self.name} needs bounds, got None")
        return self.bounds_parameters

    def is_invertible(self) -> bool:
        return True
