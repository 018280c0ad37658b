"""Simulated anisotropic acquisitions (TorchIO's ``RandomAnisotropy``)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ...data.subject import Subject
from ..random_transform import RandomTransform
from .resample import Resample

__all__ = ["RandomAnisotropy"]


class RandomAnisotropy(RandomTransform):
    """Downsample along one random axis (nearest) and resample back (``image_interpolation``).

    Args:
        axes: Candidate axes (0, 1, 2); one is drawn per call.
        downsampling: Downsampling factor range ``(a, b)`` with ``a >= 1``, or one
            number ``b`` for ``(1, b)``.
        image_interpolation: Interpolation of the upsampling step.
        scalars_only: Leave label maps untouched.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    The history records the two :class:`~torchvox.transforms.Resample` steps.
    """

    # Both steps are Resamples, which only store new tensors.
    _replaces_data = True

    def __init__(
        self,
        axes: int | tuple[int, ...] = (0, 1, 2),
        downsampling: float | tuple[float, float] = (1.5, 5),
        image_interpolation: str = "linear",
        scalars_only: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.axes = self.parse_axes(axes)
        self.downsampling_range = self._parse_range(downsampling, "downsampling", min_constraint=1)
        self.image_interpolation = self.parse_interpolation(image_interpolation)
        self.scalars_only = bool(scalars_only)

    @staticmethod
    def parse_axes(axes: int | tuple[int, ...]) -> tuple[int, ...]:
        values = (axes,) if isinstance(axes, int) else tuple(axes)
        for axis in values:
            if isinstance(axis, bool) or not isinstance(axis, int) or axis not in (0, 1, 2):
                raise ValueError(f"All axes must be 0, 1 or 2, got {axes!r}")
        return values

    def get_params(
        self, axes: tuple[int, ...], downsampling_range: tuple[float, float]
    ) -> tuple[int, float]:
        axis = axes[int(torch.randint(0, len(axes), (1,)).item())]
        return axis, self.sample_uniform(*downsampling_range)

    def apply_transform(self, subject: Subject) -> Subject:
        first = subject.get_first_image()
        axes = self.axes
        if first.is_2d() and 2 in axes:
            warnings.warn(
                f'Input image is 2D, but "2" is in axes: {self.axes}', RuntimeWarning, stacklevel=2
            )
            axes = tuple(axis for axis in axes if axis != 2)
        axis, downsampling = self.get_params(axes, self.downsampling_range)
        target_spacing = [float(v) for v in subject.spacing]
        target_spacing[axis] *= downsampling
        shape = first.spatial_shape
        affine = first.affine.copy()
        base: dict[str, Any] = self._get_base_args()
        downsample = Resample(
            target=(target_spacing[0], target_spacing[1], target_spacing[2]),
            image_interpolation="nearest",
            scalars_only=self.scalars_only,
            **base,
        )
        upsample = Resample(
            target=(shape, affine),
            image_interpolation=self.image_interpolation,
            scalars_only=self.scalars_only,
            **base,
        )
        downsampled: Subject = self._apply_child(downsample, subject)
        result: Subject = self._apply_child(upsample, downsampled)
        return result
