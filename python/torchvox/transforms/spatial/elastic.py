"""Elastic deformation with a cubic B-spline control grid (TorchIO 1.2.1 conventions).

The control points are TorchIO's: an ``(n0, n1, n2, 3)`` array of displacements
in mm, given to ``sitk.BSplineTransformInitializer(image, mesh=n - 3)`` in ITK's
LPS space. ITK's initializer lays the grid over the image's physical bounding
box (continuous indices ``-0.625 .. size - 0.375``), with each grid axis along
the image axis closest to a physical axis and running towards increasing LPS
coordinates. :func:`voxel_aligned_control_points` reproduces that layout, so
the Rust kernel can evaluate the spline separably along the voxel axes into a
dense field; the warp then interpolates once. The inverse is a numerical
inversion of the dense field (TorchIO negates the control points, which is
only approximate).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from numbers import Number
from typing import Any

import numpy as np
import torch

from ..._backend import native
from ...data.image import Image, ScalarImage
from ...data.subject import Subject
from ..fusion import resample_or_defer
from ..random_transform import RandomTransform
from ..spatial_transform import SpatialTransform
from .affine import channel_minima
from .resample import BSplineField, ChainStep

__all__ = [
    "ElasticDeformation",
    "RandomElasticDeformation",
    "elastic_field",
    "voxel_aligned_control_points",
]

SPLINE_ORDER = 3
#: ITK pads the B-spline transform domain by 1/8 voxel on each side.
_DOMAIN_EPSILON = 1.0 / 8.0
_FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])


def _itk_grid_layout(
    shape: Sequence[int], affine: np.ndarray
) -> tuple[list[int], list[bool], np.ndarray]:
    """Image axis, reversal and physical length of each ITK control-grid axis.

    Follows ``itk::BSplineTransformInitializer``: the domain origin is the
    corner nearest the bounding-box minimum (LPS), and grid axis ``d`` is the
    edge from that corner most aligned with physical axis ``d``.

    Returns:
        ``(image_axes, reversed, lengths)``: grid axis ``d`` runs along voxel axis
        ``image_axes[d]``, towards decreasing voxel index if ``reversed[d]``, over
        ``lengths[d]`` mm.
    """
    lps = _FLIP_XY @ np.asarray(affine, dtype=np.float64)
    size = np.asarray(shape, dtype=np.float64)
    start = -0.5 - _DOMAIN_EPSILON
    corners = []
    for corner_id in range(8):
        index = np.array(
            [start + ((corner_id >> i) & 1) * (size[i] + 2 * _DOMAIN_EPSILON) for i in range(3)]
        )
        corners.append(lps[:3, :3] @ index + lps[:3, 3])
    points = np.array(corners)
    minimum = points.min(axis=0)
    origin_id = 0
    best = np.inf
    for corner_id, point in enumerate(points):
        distance = float(np.sum((point - minimum) ** 2))
        if distance < best:
            best, origin_id = distance, corner_id
    origin = points[origin_id]
    chosen: list[int] = []
    for d in range(3):
        axis = np.zeros(3)
        axis[d] = 1.0
        min_angle = np.inf
        pick = -1
        for i in range(3):
            opposite = (1 << i) ^ origin_id
            vector = points[opposite] - origin
            vector = vector / np.linalg.norm(vector)
            theta = float(np.arccos(np.clip(axis @ vector, -1.0, 1.0)))
            if theta < min_angle and opposite not in chosen:
                min_angle, pick = theta, opposite
        chosen.append(pick)
    image_axes = [int(np.log2(corner ^ origin_id)) for corner in chosen]
    reversed_axes = [bool((origin_id >> axis) & 1) for axis in image_axes]
    lengths = np.array([np.linalg.norm(points[corner] - origin) for corner in chosen])
    return image_axes, reversed_axes, lengths


def voxel_aligned_control_points(
    control_points: np.ndarray, shape: Sequence[int], affine: np.ndarray
) -> np.ndarray:
    """Reorder TorchIO control points (ITK grid axes, LPS mm) to voxel axes, RAS mm.

    Args:
        control_points: ``(n0, n1, n2, 3)`` displacements as TorchIO passes them to ITK.
        shape: Spatial shape of the image.
        affine: Voxel -> RAS affine of the image.

    Returns:
        ``(m0, m1, m2, 3)`` float64 array whose axis ``v`` follows voxel axis ``v``
        (increasing index) and whose vectors are RAS.
    """
    image_axes, reversed_axes, _ = _itk_grid_layout(shape, affine)
    points = np.asarray(control_points, dtype=np.float64)
    for grid_axis, flip in enumerate(reversed_axes):
        if flip:
            points = np.flip(points, axis=grid_axis)
    order = np.argsort(image_axes)
    points = np.transpose(points, (*order, 3))
    return np.ascontiguousarray(points * np.array([-1.0, -1.0, 1.0]))


def control_grid_spacing(
    control_points: np.ndarray, shape: Sequence[int], affine: np.ndarray
) -> np.ndarray:
    """Spacing (mm) of ITK's control grid along each grid axis."""
    _, _, lengths = _itk_grid_layout(shape, affine)
    mesh = np.asarray(control_points.shape[:-1], dtype=float) - SPLINE_ORDER
    return np.asarray(lengths / mesh)


def elastic_field(
    control_points: np.ndarray, shape: Sequence[int], affine: np.ndarray, invert: bool = False
) -> np.ndarray:
    """Dense ``(3, I, J, K)`` float32 displacement field (RAS mm) of TorchIO control points.

    Args:
        control_points: ``(n0, n1, n2, 3)`` TorchIO control points (LPS mm).
        shape: Spatial shape of the image.
        affine: Voxel -> RAS affine of the image.
        invert: Return the numerical inverse of the field instead.
    """
    aligned = voxel_aligned_control_points(control_points, shape, affine)
    size = (int(shape[0]), int(shape[1]), int(shape[2]))
    field = native().bspline_field(aligned, size)
    if invert:
        field = native().invert_field(field, np.asarray(affine, dtype=np.float64))
    return np.asarray(field)


def _parse_control_points(control_points: Any) -> np.ndarray:
    array = (
        control_points.numpy()
        if isinstance(control_points, torch.Tensor)
        else np.asarray(control_points)
    )
    if array.ndim != 4 or array.shape[-1] != 3 or min(array.shape[:3]) < 4:
        raise ValueError(
            f"control_points must have shape (n0, n1, n2, 3) with every n >= 4, got {array.shape}"
        )
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("control_points must be finite")
    return array


def _parse_max_displacement(max_displacement: Any) -> tuple[float, float, float]:
    values = (
        (max_displacement,) * 3 if isinstance(max_displacement, Number) else tuple(max_displacement)
    )
    if len(values) != 3:
        raise ValueError(f"max_displacement must be one or three numbers, got {max_displacement!r}")
    for axis, number in enumerate(values):
        if isinstance(number, bool) or not isinstance(number, Number) or not number >= 0:  # type: ignore[operator]
            raise ValueError(
                "The maximum displacement at each control point for axis"
                f" {axis} must be a number greater or equal to 0, not {number}"
            )
    return float(values[0]), float(values[1]), float(values[2])


class ElasticDeformation(SpatialTransform):
    """Apply a dense elastic deformation defined by B-spline control points.

    Args:
        control_points: ``(n0, n1, n2, 3)`` displacements in mm (TorchIO/ITK
            conventions: LPS components, grid laid out by
            ``sitk.BSplineTransformInitializer``).
        max_displacement: Maximum displacement per axis in mm, used for the
            folding warning; all zeros means identity.
        image_interpolation: Interpolation of scalar images.
        label_interpolation: Interpolation of label maps.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Voxels coming from outside get the channel minimum. Scalar images become
    float32 (as in TorchIO); label maps keep their dtype.
    """

    _replaces_data = True

    def __init__(
        self,
        control_points: Any,
        max_displacement: Any,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.control_points = _parse_control_points(control_points)
        self.max_displacement = _parse_max_displacement(max_displacement)
        self.image_interpolation = self.parse_interpolation(image_interpolation)
        self.label_interpolation = self.parse_interpolation(label_interpolation)
        self.invert_transform = False
        self.args_names = [
            "control_points",
            "image_interpolation",
            "label_interpolation",
            "max_displacement",
        ]

    def _effective_points(self, image: Image) -> np.ndarray:
        points = self.control_points.copy()
        if image.is_2d():
            points[..., -1] = 0  # no displacement along the IS axis
        return points

    def check_folding(self, image: Image) -> None:
        """Warn if the maximum displacement exceeds half the control-grid spacing."""
        spacing = control_grid_spacing(self.control_points, image.spatial_shape, image.affine)
        conflicts = np.array(self.max_displacement) > spacing / 2
        if np.any(conflicts):
            (where,) = np.where(conflicts)
            warnings.warn(
                "The maximum displacement is larger than the coarse grid spacing for"
                f" dimensions: {where.tolist()}, so folding may occur. Choose fewer"
                " control points or a smaller maximum displacement",
                RuntimeWarning,
                stacklevel=2,
            )

    def get_field(self, image: Image) -> np.ndarray:
        """``(3, I, J, K)`` displacement (RAS mm) on ``image``'s grid (inverse if inverting)."""
        return elastic_field(
            self._effective_points(image),
            image.spatial_shape,
            image.affine,
            invert=self.invert_transform,
        )

    def get_chain_step(self, image: Image) -> ChainStep:
        """The deformation of ``image``'s grid as a coordinate-chain step.

        The forward deformation is a :class:`BSplineField` (the warp evaluates it
        on the fly where it can); the inverse is its dense numerical inverse.
        """
        affine = np.array(image.affine, dtype=np.float64)
        if self.invert_transform:
            return (self.get_field(image), affine)
        points = voxel_aligned_control_points(
            self._effective_points(image), image.spatial_shape, affine
        )
        return BSplineField(points, image.spatial_shape, affine)

    def apply_transform(self, subject: Subject) -> Subject:
        if not any(self.max_displacement):
            return subject
        subject.check_consistent_spatial_shape()
        steps: dict[tuple[Any, ...], ChainStep] = {}
        for image in self.get_images(subject):
            self.check_folding(image)
            key = (tuple(image.spatial_shape), np.asarray(image.affine).tobytes(), image.is_2d())
            if key not in steps:
                steps[key] = self.get_chain_step(image)
            is_scalar = isinstance(image, ScalarImage)
            interpolation = self.image_interpolation if is_scalar else self.label_interpolation
            affine = np.array(image.affine, dtype=np.float64)
            chain = [steps[key]]
            resample_or_defer(
                image, image.spatial_shape, affine, chain, interpolation, channel_minima, True
            )
        return subject


class RandomElasticDeformation(RandomTransform, SpatialTransform):
    """Random dense elastic deformation.

    A coarse grid of ``num_control_points`` displacements, each drawn from
    U(-max_displacement, max_displacement) mm per axis, is interpolated with
    cubic B-splines.

    Args:
        num_control_points: Control points per axis (int or three ints, each >= 4).
        max_displacement: Maximum displacement per axis in mm (number or three numbers).
        locked_borders: 0, 1 or 2 outer layers of control points with zero
            displacement, on all three axes (TorchIO locks only the first two).
        image_interpolation: Interpolation of scalar images.
        label_interpolation: Interpolation of label maps.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _replaces_data = True

    def __init__(
        self,
        num_control_points: int | tuple[int, int, int] = 7,
        max_displacement: float | tuple[float, float, float] = 7.5,
        locked_borders: int = 2,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        points = (
            (num_control_points,) * 3
            if not isinstance(num_control_points, Sequence)
            else tuple(num_control_points)
        )
        if len(points) != 3:
            raise ValueError(
                f"num_control_points must be an int or three ints, got {num_control_points!r}"
            )
        for axis, number in enumerate(points):
            if isinstance(number, bool) or not isinstance(number, int | np.integer) or number < 4:
                raise ValueError(
                    f"The number of control points for axis {axis} must be an integer"
                    f" greater than 3, not {number}"
                )
        self.num_control_points = (int(points[0]), int(points[1]), int(points[2]))
        self.max_displacement = _parse_max_displacement(max_displacement)
        if locked_borders not in (0, 1, 2) or isinstance(locked_borders, bool):
            raise ValueError(f"locked_borders must be 0, 1, or 2, got {locked_borders!r}")
        if locked_borders == 2 and 4 in self.num_control_points:
            raise ValueError(
                "Setting locked_borders to 2 and using less than 5 control points results"
                " in an identity transform. Lock fewer borders or use more control points."
            )
        self.num_locked_borders = int(locked_borders)
        self.image_interpolation = self.parse_interpolation(image_interpolation)
        self.label_interpolation = self.parse_interpolation(label_interpolation)

    @staticmethod
    def get_params(
        num_control_points: Sequence[int],
        max_displacement: Sequence[float],
        num_locked_borders: int,
    ) -> np.ndarray:
        """Draw the control points (``torch.rand``, as TorchIO) and lock the borders."""
        field = torch.rand(*num_control_points, 3)
        field -= 0.5
        field *= 2
        for dimension in range(3):
            field[..., dimension] *= max_displacement[dimension]
        for i in range(num_locked_borders):
            for axis in range(3):
                index: list[Any] = [slice(None)] * 3
                index[axis] = i
                field[tuple(index)] = 0
                index[axis] = -1 - i
                field[tuple(index)] = 0
        result: np.ndarray = field.numpy()
        return result

    def get_elastic(self) -> ElasticDeformation:
        """Sample control points and return the deterministic transform."""
        points = self.get_params(
            self.num_control_points, self.max_displacement, self.num_locked_borders
        )
        return ElasticDeformation(
            control_points=points,
            max_displacement=self.max_displacement,
            image_interpolation=self.image_interpolation,
            label_interpolation=self.label_interpolation,
            **self._get_base_args(),
        )

    def apply_transform(self, subject: Subject) -> Subject:
        subject.check_consistent_spatial_shape()
        result: Subject = self._apply_child(self.get_elastic(), subject)
        return result
