"""Blur and RandomBlur: Gaussian smoothing with std in mm (TorchIO 1.2.1 semantics).

Runs a separable Gaussian in Rust with ``scipy.ndimage.gaussian_filter``'s kernel
(truncate 4), ``'reflect'`` boundary and dtype behaviour (integers truncated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native
from ..intensity_transform import IntensityTransform
from ..label._native_arrays import from_native, to_native
from ..random_transform import RandomTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["Blur", "RandomBlur", "blur"]

TypeTripletFloat = tuple[float, float, float]


def _parse_std(std: object) -> TypeTripletFloat:
    values = np.asarray(std, dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"std must be 3 finite non-negative values in mm, got {std!r}")
    return float(values[0]), float(values[1]), float(values[2])


def blur(
    data: torch.Tensor, spacing: Sequence[float], std_physical: Sequence[float]
) -> torch.Tensor:
    """Blur every channel of ``(C, I, J, K)`` ``data`` with Gaussian std in mm.

    Returns:
        A tensor of ``data``'s dtype (integer results truncated, as SciPy).
    """
    sigmas = np.asarray(std_physical, dtype=np.float64) / np.asarray(spacing, dtype=np.float64)
    result = native().gaussian_filter(
        to_native(data), (float(sigmas[0]), float(sigmas[1]), float(sigmas[2]))
    )
    return from_native(result, data.dtype)


class RandomBlur(RandomTransform, IntensityTransform):
    """Blur images with a random Gaussian filter.

    Args:
        std: Ranges of the standard deviations in mm: ``(a, b)`` for every axis,
            ``d`` for ``(0, d)``, or 3 or 6 values per axis (as TorchIO's ``parse_params``).
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For negative or malformed ranges.
    """

    _replaces_data = True

    def __init__(self, std: float | tuple[float, float] = (0, 2), **kwargs: Any):
        super().__init__(**kwargs)
        self.std_ranges = self.parse_params(std, None, "std", min_constraint=0)

    def apply_transform(self, subject: Subject) -> Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        stds = {name: self.get_params(self.std_ranges) for name in images}
        transform = Blur(std=stds, **self._get_base_args())
        result: Subject = self._apply_child(transform, subject)
        return result

    def get_params(self, std_ranges: Sequence[float]) -> TypeTripletFloat:
        """Draw one std per axis with torch's RNG."""
        return self.sample_uniform_sextet(std_ranges)

    def _get_named_arguments(self) -> dict[str, object]:
        return {"std": self.std_ranges}


class Blur(IntensityTransform):
    """Blur images with a Gaussian filter.

    Args:
        std: ``(s_i, s_j, s_k)`` standard deviations in mm (divided by the image
            spacing to get voxels), or ``{image_name: stds}``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For negative or non-finite stds.
    """

    _replaces_data = True

    def __init__(self, std: TypeTripletFloat | dict[str, TypeTripletFloat], **kwargs: Any):
        super().__init__(**kwargs)
        for value in std.values() if isinstance(std, Mapping) else [std]:
            _parse_std(value)
        self.std = std
        self.args_names = ["std"]

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            stds = _parse_std(self.get_parameter(self.std, name))
            image.set_data(blur(image.data, image.spacing, stds))
        return subject
