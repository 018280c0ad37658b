"""Resize images to a target spatial shape by resampling (TorchIO 1.2.1's ``Resize``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ...data.subject import Subject
from ..spatial_transform import SpatialTransform
from .crop_or_pad import CropOrPad
from .resample import Resample

__all__ = ["Resize"]


class Resize(SpatialTransform):
    """Resample images so their spatial shape becomes ``target_shape``.

    The output spacing is ``input_shape / target_shape * input_spacing``; the
    field of view is kept. If rounding leaves a different shape, a
    :class:`~torchvox.transforms.CropOrPad` fixes it (with a warning).

    Args:
        target_shape: Output shape (int or three ints); ``-1`` keeps an axis.
        image_interpolation: Interpolation of scalar images.
        label_interpolation: Interpolation of label maps.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _records_history = False

    def __init__(
        self,
        target_shape: Any,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        values = np.atleast_1d(np.asarray(target_shape))
        if values.size == 1:
            values = np.repeat(values, 3)
        if values.size != 3 or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"target_shape must be an int or three ints, got {target_shape!r}")
        if np.any((values < 1) & (values != -1)):
            raise ValueError(f"target_shape values must be positive or -1, got {target_shape!r}")
        self.target_shape = values.astype(int)
        self.image_interpolation = self.parse_interpolation(image_interpolation)
        self.label_interpolation = self.parse_interpolation(label_interpolation)
        self.args_names = ["target_shape", "image_interpolation", "label_interpolation"]

    def apply_transform(self, subject: Subject) -> Subject:
        shape_in = np.asarray(subject.spatial_shape)
        shape_out = self.target_shape.copy()
        keep = shape_out == -1
        shape_out[keep] = shape_in[keep]
        spacing_out = shape_in / shape_out * np.asarray(subject.spacing)
        base: dict[str, Any] = self._get_base_args()
        resample = Resample(
            tuple(float(v) for v in spacing_out),
            image_interpolation=self.image_interpolation,
            label_interpolation=self.label_interpolation,
            **base,
        )
        resampled: Subject = self._apply_child(resample, subject)
        if resampled.spatial_shape != tuple(int(v) for v in shape_out):
            warnings.warn(
                f"Output shape {resampled.spatial_shape} != target shape {tuple(shape_out)}."
                " Fixing with CropOrPad",
                RuntimeWarning,
                stacklevel=2,
            )
            crop_pad = CropOrPad(tuple(int(v) for v in shape_out), **base)
            resampled = self._apply_child(crop_pad, resampled)
        return resampled
