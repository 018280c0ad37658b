"""Affine transforms (scaling, rotation, translation) with TorchIO 1.2.1's conventions.

The transform is built as TorchIO builds it with SimpleITK, but as one 4x4 RAS
matrix: a scaling and an Euler rotation (ITK's Z * X * Y order, angles and
translation converted from RAS to LPS) about the image centre ``(shape - 1) / 2``
in world coordinates (or the world origin), composed as ``scaling(rotation(p))``.
Resampling uses the inverse of that composite (output points are mapped to
input points), so the image content moves by the forward transform; the inverse
transform uses the forward matrix and is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Number
from typing import Any

import numpy as np
import torch

from ..._backend import NATIVE_ARRAY_DTYPES, native, to_numpy
from ...constants import INTENSITY
from ...data.image import Image
from ...data.subject import Subject
from ..fusion import resample_or_defer
from ..random_transform import RandomTransform
from ..spatial_transform import SpatialTransform

__all__ = ["Affine", "RandomAffine", "affine_resampling_matrix"]

_FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])
_PAD_MODES = ("minimum", "mean", "otsu")


def _parse_default_value(value: Any) -> str | float:
    if isinstance(value, str) and value in _PAD_MODES:
        return value
    if isinstance(value, Number) and not isinstance(value, bool):
        if not np.isfinite(float(value)):  # type: ignore[arg-type]
            raise ValueError(f"default_pad_value must be finite, got {value!r}")
        return value  # type: ignore[return-value]
    raise ValueError(
        f'Value for default_pad_value must be "minimum", "otsu", "mean" or a number, got {value!r}'
    )


def _euler_zxy(radians: np.ndarray) -> np.ndarray:
    """ITK ``Euler3DTransform`` rotation matrix (``Rz @ Rx @ Ry``)."""
    ax, ay, az = radians
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _about(center: np.ndarray, linear: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 matrix of ``p -> linear (p - center) + center + translation``."""
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = center - linear @ center + translation
    return matrix


def affine_resampling_matrix(
    scales: Sequence[float],
    degrees: Sequence[float],
    translation: Sequence[float],
    center_ras: Sequence[float] | None,
    is_2d: bool = False,
    invert: bool = False,
) -> np.ndarray:
    """RAS world -> world matrix mapping output points to input points.

    Args:
        scales: Scaling factors per axis.
        degrees: Rotation angles (RAS, degrees) about each axis.
        translation: Translation in mm (RAS).
        center_ras: Centre of scaling and rotation in RAS mm, or None for the origin.
        is_2d: Keep the third axis fixed (scale 1, in-plane rotation only).
        invert: Return the forward transform instead (the exact inverse).

    Returns:
        A ``(4, 4)`` float64 matrix.
    """
    scaling = np.asarray(scales, dtype=float).copy()
    rotation = np.asarray(degrees, dtype=float).copy()
    shift = np.asarray(translation, dtype=float)
    if is_2d:
        scaling[2] = 1
        rotation[:-1] = 0
    lps = np.array([-1.0, -1.0, 1.0])
    center = np.zeros(3) if center_ras is None else np.asarray(center_ras, float) * lps
    scale_lps = _about(center, np.diag(scaling), np.zeros(3))
    rotate_lps = _about(center, _euler_zxy(np.radians(rotation) * lps), shift * lps)
    forward_lps = scale_lps @ rotate_lps
    forward = _FLIP_XY @ forward_lps @ _FLIP_XY
    return forward if invert else np.linalg.inv(forward)


def _borders(array: np.ndarray) -> np.ndarray:
    """Values of the six faces of a ``(I, J, K)`` array."""
    faces = (array[0], array[-1], array[:, 0], array[:, -1], array[:, :, 0], array[:, :, -1])
    return np.hstack([face.ravel() for face in faces])


def _otsu_threshold(values: np.ndarray) -> float:
    import SimpleITK as sitk  # noqa: N813 (tiny 1D image: exact ITK Otsu threshold)

    otsu = sitk.OtsuThresholdImageFilter()
    otsu.Execute(sitk.GetImageFromArray(values.reshape(1, 1, -1)))
    return float(otsu.GetThreshold())


def channel_minima(tensor: torch.Tensor) -> list[float]:
    """Per-channel minimum of a ``(C, I, J, K)`` tensor (NaN if a channel has NaN).

    TorchIO's fill value for affine and elastic transforms. CPU tensors of the
    kernels' dtypes are scanned by the native kernel on every thread (NumPy's
    reduction takes one thread about 2 ms for a 1 mm brain, while the warp's
    threads wait); other dtypes go through NumPy, and tensors NumPy cannot view
    (bfloat16, GPU, autograd) through torch.
    """
    try:
        array = tensor.numpy()
    except (TypeError, RuntimeError):  # no NumPy dtype (bfloat16), GPU or autograd tensors
        return [float(channel.min()) for channel in tensor.detach()]
    if array.ndim == 4 and array.size and array.dtype.type in NATIVE_ARRAY_DTYPES:
        minima: list[float] = native().channel_minima(to_numpy(array))
        return minima
    return [float(channel.min()) for channel in array]


def pad_values(tensor: torch.Tensor, mode: str | float) -> list[float]:
    """Per-channel fill values.

    ``'minimum'``: channel minimum; ``'mean'``: mean of the border voxels; ``'otsu'``:
    mean of the border voxels below their Otsu threshold; a number: that number.
    """
    if mode == "minimum":
        return channel_minima(tensor)
    values = []
    for channel in tensor:
        if mode in ("mean", "otsu"):
            borders = _borders(channel.numpy().astype(np.float64, copy=False))
            if mode == "otsu":
                below = borders[borders < _otsu_threshold(borders)]
                values.append(float(below.mean()) if below.any() else float(borders.mean()))
            else:
                values.append(float(borders.mean()))
        else:
            values.append(float(mode))
    return values


def _parse_triplet(value: Any, name: str, positive: bool = False) -> tuple[float, float, float]:
    array = np.asarray(value, dtype=float).ravel() if not isinstance(value, str) else None
    if array is None or array.size not in (1, 3) or not np.all(np.isfinite(array)):
        raise ValueError(f'"{name}" must be one or three finite numbers, got {value!r}')
    if array.size == 1:
        array = np.repeat(array, 3)
    if positive and np.any(array <= 0):
        raise ValueError(f'"{name}" must be positive, got {value!r}')
    return float(array[0]), float(array[1]), float(array[2])


class Affine(SpatialTransform):
    """Apply a scaling, rotation and translation.

    Args:
        scales: Scaling factors ``(s1, s2, s3)`` (or one for all axes). Values
            above 1 zoom in.
        degrees: Rotation angles in degrees about the three RAS axes.
        translation: Translation in mm along the three RAS axes.
        center: ``'image'`` rotates and scales about the image centre; ``'origin'``
            about the world origin.
        default_pad_value: Value of scalar voxels that come from outside the
            image: ``'minimum'`` (per channel), ``'mean'`` (mean of the border
            voxels), ``'otsu'`` (mean of the border voxels below their Otsu
            threshold) or a number.
        default_pad_label: Value of label voxels that come from outside.
        image_interpolation: Interpolation of scalar images.
        label_interpolation: Interpolation of label maps (``'nearest'`` or ``'label'``).
        check_shape: Check that all images have the same spatial shape.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Scalar images become float32 (as in TorchIO); label maps keep their dtype.
    """

    _replaces_data = True

    def __init__(
        self,
        scales: Any,
        degrees: Any,
        translation: Any,
        center: str = "image",
        default_pad_value: str | float = "minimum",
        default_pad_label: int | float = 0,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        check_shape: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.scales = _parse_triplet(scales, "scales", positive=True)
        self.degrees = _parse_triplet(degrees, "degrees")
        self.translation = _parse_triplet(translation, "translation")
        if center not in ("image", "origin"):
            raise ValueError(f'Center argument must be "image" or "origin", not "{center}"')
        self.center = center
        self.use_image_center = center == "image"
        self.default_pad_value = _parse_default_value(default_pad_value)
        if isinstance(default_pad_label, bool) or not isinstance(default_pad_label, int | float):
            raise ValueError(f'default_pad_label must be a number, but it is "{default_pad_label}"')
        self.default_pad_label = float(default_pad_label)
        self.image_interpolation = self.parse_interpolation(image_interpolation)
        self.label_interpolation = self.parse_interpolation(label_interpolation)
        self.invert_transform = False
        self.check_shape = bool(check_shape)
        self.args_names = [
            "scales",
            "degrees",
            "translation",
            "center",
            "default_pad_value",
            "default_pad_label",
            "image_interpolation",
            "label_interpolation",
            "check_shape",
        ]

    def get_matrix(self, image: Image) -> np.ndarray:
        """RAS world -> world matrix mapping output points of ``image`` to input points."""
        center = image.get_center() if self.use_image_center else None
        return affine_resampling_matrix(
            self.scales,
            self.degrees,
            self.translation,
            center,
            is_2d=image.is_2d(),
            invert=self.invert_transform,
        )

    def image_fill(self, image: Image) -> tuple[str, Callable[[torch.Tensor], list[float] | float]]:
        """Interpolation and the function computing per-channel fill values for ``image``.

        As in TorchIO, the image's ``type`` decides (an ``Image`` of type
        ``INTENSITY`` is interpolated like a :class:`ScalarImage`).
        """
        if image.type == INTENSITY:
            mode = self.default_pad_value
            return self.image_interpolation, lambda tensor: pad_values(tensor, mode)
        label = self.default_pad_label
        return self.label_interpolation, lambda _: label

    def apply_transform(self, subject: Subject) -> Subject:
        if self.check_shape:
            subject.check_consistent_spatial_shape()
        for image in self.get_images(subject):
            matrix = self.get_matrix(image)
            interpolation, fill = self.image_fill(image)
            affine = np.array(image.affine, dtype=np.float64)
            resample_or_defer(
                image, image.spatial_shape, affine, [matrix], interpolation, fill, True
            )
        return subject


def _parse_scales_isotropic(scales: Any, isotropic: bool) -> None:
    length = 1 if isinstance(scales, Number) else len(scales)
    if isotropic and length in (3, 6):
        raise ValueError(
            'If "isotropic" is True, the value for "scales" must have length 1 or 2,'
            f' but "{scales}" was passed'
        )


class RandomAffine(RandomTransform, SpatialTransform):
    """Random affine transformation.

    Args:
        scales: Scaling ranges: ``x`` -> U(1 - x, 1 + x) per axis, ``(a, b)`` ->
            U(a, b), or 3 / 6 values per axis.
        degrees: Rotation ranges in degrees: ``x`` -> U(-x, x), ``(a, b)``, 3 or 6 values.
        translation: Translation ranges in mm, like ``degrees``.
        isotropic: Use the first sampled scale for all axes (``scales`` must then
            have one or two values).
        center: ``'image'`` or ``'origin'``.
        default_pad_value: ``'minimum'``, ``'mean'``, ``'otsu'`` or a number.
        default_pad_label: Fill value for label maps.
        image_interpolation: Interpolation of scalar images.
        label_interpolation: Interpolation of label maps.
        check_shape: Check that all images have the same spatial shape.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _replaces_data = True

    def __init__(
        self,
        scales: Any = 0.1,
        degrees: Any = 10,
        translation: Any = 0,
        isotropic: bool = False,
        center: str = "image",
        default_pad_value: str | float = "minimum",
        default_pad_label: int | float = 0,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        check_shape: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.isotropic = bool(isotropic)
        _parse_scales_isotropic(scales, self.isotropic)
        self.scales = self.parse_params(scales, 1, "scales", min_constraint=0)
        self.degrees = self.parse_params(degrees, 0, "degrees")
        self.translation = self.parse_params(translation, 0, "translation")
        if center not in ("image", "origin"):
            raise ValueError(f'Center argument must be "image" or "origin", not "{center}"')
        self.center = center
        self.default_pad_value = _parse_default_value(default_pad_value)
        if isinstance(default_pad_label, bool) or not isinstance(default_pad_label, int | float):
            raise ValueError(f'default_pad_label must be a number, but it is "{default_pad_label}"')
        self.default_pad_label = float(default_pad_label)
        self.image_interpolation = self.parse_interpolation(image_interpolation)
        self.label_interpolation = self.parse_interpolation(label_interpolation)
        self.check_shape = bool(check_shape)

    @staticmethod
    def get_params(
        scales: Sequence[float],
        degrees: Sequence[float],
        translation: Sequence[float],
        isotropic: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample scales, angles and translation (float64 tensors of 3 values)."""
        scaling = torch.as_tensor(
            RandomTransform.sample_uniform_sextet(scales), dtype=torch.float64
        )
        if isotropic:
            scaling.fill_(scaling[0])
        rotation = torch.as_tensor(
            RandomTransform.sample_uniform_sextet(degrees), dtype=torch.float64
        )
        shift = torch.as_tensor(
            RandomTransform.sample_uniform_sextet(translation), dtype=torch.float64
        )
        return scaling, rotation, shift

    def get_affine(self) -> Affine:
        """Sample parameters and return the deterministic :class:`Affine`."""
        scaling, rotation, shift = self.get_params(
            self.scales, self.degrees, self.translation, self.isotropic
        )
        return Affine(
            scales=tuple(float(v) for v in scaling.tolist()),
            degrees=tuple(float(v) for v in rotation.tolist()),
            translation=tuple(float(v) for v in shift.tolist()),
            center=self.center,
            default_pad_value=self.default_pad_value,
            default_pad_label=self.default_pad_label,
            image_interpolation=self.image_interpolation,
            label_interpolation=self.label_interpolation,
            check_shape=self.check_shape,
            **self._get_base_args(),
        )

    def apply_transform(self, subject: Subject) -> Subject:
        result: Subject = self._apply_child(self.get_affine(), subject)
        return result
