"""Clamp: limit intensities to a range."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native, to_numpy, to_tensor
from ..intensity_transform import IntensityTransform
from ..transform import kernel_supports

if TYPE_CHECKING:
    from ...data.image import Image
    from ...data.subject import Subject

__all__ = ["Clamp"]


def _check_bound(value: object, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f'"{name}" must be a number or None, got {value!r}')
    if np.isnan(value):
        raise ValueError(f'"{name}" cannot be NaN')


class Clamp(IntensityTransform):
    """Clamp intensities into ``[out_min, out_max]`` (as :func:`torch.clamp`).

    Integer images stay integer with integer bounds; a float bound gives a float32
    result, as ``torch.clamp`` (and TorchIO) do.

    Args:
        out_min: Lower bound, or None for no lower bound.
        out_max: Upper bound, or None for no upper bound.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If a bound is not a number or None.
        ValueError: If a bound is NaN or ``out_min > out_max``.
    """

    _replaces_data = True

    def __init__(self, out_min: float | None = None, out_max: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        _check_bound(out_min, "out_min")
        _check_bound(out_max, "out_max")
        if out_min is not None and out_max is not None and out_min > out_max:
            raise ValueError(f'"out_min" ({out_min}) must not exceed "out_max" ({out_max})')
        self.out_min, self.out_max = out_min, out_max
        self.args_names = ["out_min", "out_max"]

    def apply_transform(self, subject: Subject) -> Subject:
        for image in self.get_images(subject):
            self.apply_clamp(image)
        return subject

    def apply_clamp(self, image: Image) -> None:
        """Clamp the data of ``image`` (replaced by a new tensor)."""
        image.set_data(self.clamp(image.data))

    def clamp(self, tensor: torch.Tensor) -> torch.Tensor:
        """Return the clamped tensor."""
        if self.out_min is None and self.out_max is None:
            return tensor.clone()
        bounds = (self.out_min, self.out_max)
        integer_bounds = all(b is None or isinstance(b, int | np.integer) for b in bounds)
        # A float bound makes torch.clamp (hence TorchIO) return float32 for integer
        # images; the kernel keeps the dtype, so it serves every other case.
        if kernel_supports(tensor) and (tensor.is_floating_point() or integer_bounds):
            low = None if self.out_min is None else float(self.out_min)
            high = None if self.out_max is None else float(self.out_max)
            return to_tensor(native().clamp(to_numpy(tensor), low, high))
        return torch.clamp(tensor, self.out_min, self.out_max)
