"""Resampling onto a new grid (``Resample``) and the warp helpers shared by every
spatial transform that moves voxels (affine, elastic, fused chains).

A *chain* is a list of coordinate transforms applied, in order, to world points
of the output grid to find where to sample the input (the convention of ITK's
``ResampleImageFilter``): 4x4 RAS world -> world matrices and
``(field, field_affine)`` pairs, where ``field`` is a ``(3, I, J, K)`` float32
displacement in mm and a point ``p`` maps to ``p + field(p)``. The Rust kernel
interpolates once for the whole chain; SimpleITK's rarer interpolators
(gaussian, label_gaussian and the windowed sincs) go through SimpleITK.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from ..._backend import NATIVE_ARRAY_DTYPES, native, to_numpy, to_tensor
from ...data.image import Image, ScalarImage
from ...data.pending import PendingVoxels, deferring
from ...data.subject import Subject
from ..fusion import resample_or_defer
from ..spatial_transform import SpatialTransform

__all__ = [
    "BSplineField",
    "ChainStep",
    "Resample",
    "reference_grid_from_spacing",
    "warp_image",
    "warp_tensor",
]


class BSplineField:
    """A cubic B-spline displacement field on an image grid, as a chain step.

    The warp kernel evaluates it row by row, without a dense field in memory,
    when it is the first step of a nearest or linear warp onto its own grid (an
    elastic deformation on its own, or followed by affines) or onto a grid
    aligned with it (followed by a resampling), where it is evaluated exactly at
    the target points. Anywhere else it is evaluated densely once, and images
    that share the step share that field.

    Args:
        control_points: ``(n0, n1, n2, 3)`` float64 displacements along voxel
            axes, in RAS mm (see ``voxel_aligned_control_points``).
        shape: Spatial shape ``(I, J, K)`` of the image grid.
        affine: ``(4, 4)`` voxel -> RAS affine of the image grid.
    """

    def __init__(self, control_points: np.ndarray, shape: Sequence[int], affine: np.ndarray):
        self.control_points = np.ascontiguousarray(control_points, dtype=np.float64)
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.affine = np.asarray(affine, dtype=np.float64)
        self._dense: np.ndarray | None = None

    def dense(self) -> np.ndarray:
        """The ``(3, I, J, K)`` float32 displacement field (RAS mm), evaluated once."""
        if self._dense is None:
            self._dense = np.asarray(native().bspline_field(self.control_points, self.shape))
        return self._dense

    def on_grid(self, shape: Sequence[int], affine: np.ndarray) -> bool:
        """Whether the field lies exactly on the grid (``shape``, ``affine``)."""
        return self.shape == tuple(int(v) for v in shape) and np.array_equal(self.affine, affine)

    def aligned_with(self, affine: np.ndarray) -> bool:
        """Whether a grid of voxel -> RAS ``affine`` is aligned with the field's.

        Aligned: the grid's voxel -> field voxel map only scales, shifts or flips
        each axis (off-diagonal terms below ``1e-9`` of their row, the rounding
        of composed affines), as the native warp decides; it then evaluates the
        field exactly at the grid's points.
        """
        to_field = np.linalg.solve(self.affine, np.asarray(affine, dtype=np.float64))[:3, :3]
        size = np.abs(to_field).sum(axis=1)
        off_diagonal = np.abs(to_field - np.diag(np.diag(to_field)))
        return bool(np.all(np.diag(to_field) != 0) and np.all(off_diagonal <= 1e-9 * size[:, None]))


#: One step of a coordinate chain: a 4x4 world -> world matrix, (field, field_affine)
#: or a B-spline field.
ChainStep = Union[np.ndarray, tuple[np.ndarray, np.ndarray], BSplineField]


def _native_steps(
    chain: Sequence[ChainStep],
    shape: tuple[int, int, int],
    target_affine: np.ndarray,
    interpolation: str,
) -> list[Any]:
    """The chain as the native warp takes it.

    A leading B-spline field on the target grid of a nearest or linear warp, or
    on a grid aligned with it, is passed as its control points (the kernel
    evaluates it row by row at the target points); other B-spline fields are
    passed densely.
    """
    steps: list[Any] = []
    for position, step in enumerate(chain):
        if isinstance(step, BSplineField):
            if (
                position == 0
                and interpolation in ("nearest", "linear")
                and (step.on_grid(shape, target_affine) or step.aligned_with(target_affine))
            ):
                steps.append((step.control_points, step.shape, step.affine))
            else:
                steps.append((step.dense(), step.affine))
        elif isinstance(step, tuple):
            steps.append(
                (np.ascontiguousarray(step[0], np.float32), np.asarray(step[1], np.float64))
            )
        else:
            steps.append(np.ascontiguousarray(step, np.float64))
    return steps


#: Interpolations the Rust kernel implements; others go through SimpleITK.
NATIVE_INTERPOLATIONS = ("nearest", "linear", "bspline", "label")
_FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])

TypeTarget = Any


def _as_native_array(data: torch.Tensor) -> tuple[np.ndarray, torch.dtype | None]:
    """C-contiguous NumPy view of ``data`` in a dtype the kernel accepts.

    Returns:
        The array and, if it had to be cast, the dtype to cast the result back to.
    """
    array = to_numpy(data)
    if array.dtype.type in NATIVE_ARRAY_DTYPES:
        return array, None
    restore = data.dtype if data.dtype != torch.bool else torch.uint8
    cast = np.float32 if array.dtype.kind == "f" else np.int64
    return np.ascontiguousarray(array.astype(cast)), restore


def _sitk_image(channel: np.ndarray, affine: np.ndarray) -> Any:
    import SimpleITK as sitk  # noqa: N813 (only the rare interpolators need it)

    image = sitk.GetImageFromArray(np.ascontiguousarray(channel.transpose(2, 1, 0)))
    lps = _FLIP_XY @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def _sitk_warp(
    array: np.ndarray,
    affine: np.ndarray,
    shape: Sequence[int],
    target_affine: np.ndarray,
    chain: Sequence[ChainStep],
    interpolation: str,
    fill: Sequence[float],
) -> np.ndarray:
    """The same warp through SimpleITK, for interpolators the kernel lacks."""
    import SimpleITK as sitk  # noqa: N813

    from ..interpolation import get_sitk_interpolator

    composite = sitk.CompositeTransform(3)
    # ITK applies the most recently added transform first.
    for step in reversed(list(chain)):
        if isinstance(step, tuple):
            field, field_affine = step
            vectors = np.moveaxis(np.asarray(field, np.float64), 0, -1) * np.array(
                [-1.0, -1.0, 1.0]
            )
            vector_image = sitk.GetImageFromArray(
                np.ascontiguousarray(vectors.transpose(2, 1, 0, 3)), isVector=True
            )
            reference = _sitk_image(np.zeros(field.shape[1:], np.float32), field_affine)
            vector_image.CopyInformation(reference)
            composite.AddTransform(sitk.DisplacementFieldTransform(vector_image))
        else:
            lps = _FLIP_XY @ np.asarray(step, np.float64) @ _FLIP_XY
            transform = sitk.AffineTransform(3)
            transform.SetMatrix(lps[:3, :3].flatten().tolist())
            transform.SetTranslation(lps[:3, 3].tolist())
            composite.AddTransform(transform)
    reference = _sitk_image(np.zeros(tuple(shape), np.float32), target_affine)
    channels = []
    for channel, value in zip(array, fill, strict=True):
        resampler = sitk.ResampleImageFilter()
        resampler.SetReferenceImage(reference)
        resampler.SetOutputPixelType(sitk.GetImageFromArray(channel[:1, :1, :1]).GetPixelID())
        resampler.SetTransform(composite)
        resampler.SetInterpolator(get_sitk_interpolator(interpolation))
        resampler.SetDefaultPixelValue(float(value))
        result = resampler.Execute(_sitk_image(channel, affine))
        channels.append(sitk.GetArrayFromImage(result).transpose(2, 1, 0))
    return np.ascontiguousarray(np.stack(channels))


def warp_tensor(
    data: torch.Tensor,
    affine: np.ndarray,
    shape: Sequence[int],
    target_affine: np.ndarray,
    chain: Sequence[ChainStep],
    interpolation: str,
    fill: Sequence[float] | float = 0.0,
) -> torch.Tensor:
    """Resample a ``(C, I, J, K)`` tensor onto a grid through a coordinate chain.

    Args:
        data: ``(C, I, J, K)`` tensor.
        affine: ``(4, 4)`` voxel -> RAS world affine of ``data``.
        shape: Output spatial shape ``(I', J', K')``.
        target_affine: ``(4, 4)`` voxel -> world affine of the output grid.
        chain: Coordinate transforms mapping output world points to input ones.
        interpolation: Canonical interpolation name.
        fill: Value for points outside the input, one per channel or one for all.

    Returns:
        ``(C, I', J', K')`` tensor of the input's dtype.
    """
    call = _WarpCall.of(data, affine, shape, target_affine, chain, interpolation, fill)
    if interpolation in NATIVE_INTERPOLATIONS:
        result = call.native()
    else:
        result = call.sitk()
    tensor = to_tensor(result)
    if call.restore is not None:
        tensor = tensor.to(call.restore)
    return tensor


@dataclass(frozen=True)
class _WarpCall:
    """The arguments of one call of the warp kernel, in the forms it takes."""

    array: np.ndarray
    restore: torch.dtype | None
    affine: np.ndarray
    shape: tuple[int, int, int]
    target_affine: np.ndarray
    steps: list[Any]
    interpolation: str
    fills: list[float]

    @classmethod
    def of(
        cls,
        data: torch.Tensor,
        affine: np.ndarray,
        shape: Sequence[int],
        target_affine: np.ndarray,
        chain: Sequence[ChainStep],
        interpolation: str,
        fill: Sequence[float] | float,
    ) -> _WarpCall:
        """The call for the arguments of :func:`warp_tensor`."""
        array, restore = _as_native_array(data)
        if isinstance(fill, int | float | np.integer | np.floating):
            fills = [float(fill)] * array.shape[0]
        else:
            fills = [float(v) for v in fill]
        target_affine = np.asarray(target_affine, dtype=np.float64)
        shape3 = (int(shape[0]), int(shape[1]), int(shape[2]))
        # SimpleITK's interpolators take every field densely ("sinc" never matches).
        native_name = interpolation if interpolation in NATIVE_INTERPOLATIONS else "sinc"
        return cls(
            array,
            restore,
            np.asarray(affine, dtype=np.float64),
            shape3,
            target_affine,
            _native_steps(chain, shape3, target_affine, native_name),
            interpolation,
            fills,
        )

    def _arguments(self) -> tuple[Any, ...]:
        """The arguments both warps take, in their order."""
        return (
            self.array,
            self.affine,
            self.shape,
            self.target_affine,
            self.steps,
            self.interpolation,
            self.fills,
        )

    def native(self, boxes: np.ndarray | None = None) -> np.ndarray:
        """The native kernel's result (for ``boxes``, see
        :data:`~torchvox.data.pending.WarpKernel`)."""
        return native().warp(*self._arguments(), boxes)

    def sitk(self) -> np.ndarray:
        """SimpleITK's result, for the interpolators the kernel lacks."""
        return _sitk_warp(*self._arguments())


#: Interpolations whose kernels compute each voxel on its own (the row
#: kernels), so a pending warp computes only the voxels a sampler needs.
_PENDING_INTERPOLATIONS = ("nearest", "linear")


def warp_image(
    image: Image,
    shape: Sequence[int],
    target_affine: np.ndarray,
    chain: Sequence[ChainStep],
    interpolation: str,
    fill: Sequence[float] | float = 0.0,
    source: tuple[torch.Tensor, np.ndarray] | None = None,
) -> None:
    """Resample ``image`` in place onto (``shape``, ``target_affine``) through ``chain``.

    Inside :func:`~torchvox.data.pending.deferred_voxels`, a nearest or linear
    warp of a dtype the kernel takes is left pending on the image.

    Args:
        source: The ``(data, affine)`` to resample instead of the image's own
            (a fused run resamples the data it started from).
    """
    data, affine = source if source is not None else (image.data, image.affine)
    if deferring() and interpolation in _PENDING_INTERPOLATIONS:
        call = _WarpCall.of(data, affine, shape, target_affine, chain, interpolation, fill)
        if call.restore is None:
            result_shape = (call.array.shape[0], *call.shape)
            image._defer_voxels(PendingVoxels(call.native, result_shape, data.dtype))
            image.affine = np.array(target_affine, dtype=np.float64)
            return
    image.set_data(warp_tensor(data, affine, shape, target_affine, chain, interpolation, fill))
    image.affine = np.array(target_affine, dtype=np.float64)


def reference_grid_from_spacing(
    shape: Sequence[int], affine: np.ndarray, spacing: Sequence[float]
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The grid TorchIO's ``Resample`` builds for a target spacing.

    Same directions, ``floor(size * old_spacing / new_spacing)`` voxels (singleton
    axes stay 1) and the same centre as the input grid.

    Returns:
        ``(shape, affine)`` of the new grid.
    """
    affine = np.asarray(affine, dtype=np.float64)
    old_size = np.asarray(shape, dtype=float)
    old_spacing = np.linalg.norm(affine[:3, :3], axis=0)
    new_spacing = np.asarray(spacing, dtype=float)
    direction = affine[:3, :3] / old_spacing
    center = affine[:3, :3] @ ((old_size - 1) / 2) + affine[:3, 3]
    new_size = np.floor(old_size * old_spacing / new_spacing)
    new_size[old_size == 1] = 1
    new_affine = np.eye(4)
    new_affine[:3, :3] = direction * new_spacing
    new_affine[:3, 3] = center - new_affine[:3, :3] @ ((new_size - 1) / 2)
    size = new_size.astype(int)
    return (int(size[0]), int(size[1]), int(size[2])), new_affine


def antialias_sigmas(old_spacing: np.ndarray, new_spacing: np.ndarray) -> np.ndarray:
    """Gaussian sigmas (mm) before downsampling (Cardoso et al., MICCAI 2015).

    Axes that are not downsampled get sigma 0.
    """
    factor = np.asarray(new_spacing, float) / np.asarray(old_spacing, float)
    variance = (factor**2 - 1) * (2 * np.sqrt(2 * np.log(2))) ** (-2)
    sigmas = np.asarray(old_spacing, float) * np.sqrt(np.clip(variance, 0, None))
    sigmas[factor <= 1] = 0.0
    return sigmas


def _zero_fill(_: torch.Tensor) -> float:
    return 0.0


class Resample(SpatialTransform):
    """Resample images onto a new voxel grid.

    Args:
        target: Output spacing in mm (one number or three), the path of a reference
            image, an :class:`~torchvox.Image`, the name of an image in the subject,
            or a tuple ``(spatial_shape, affine)``.
        image_interpolation: Interpolation of scalar images (``'linear'``,
            ``'nearest'``, ``'bspline'``/``'cubic'``, or SimpleITK's
            ``'gaussian'``, ``'label_gaussian'``, ``'hamming'``, ``'cosine'``,
            ``'welch'``, ``'lanczos'``, ``'blackman'``).
        label_interpolation: Interpolation of label maps (``'nearest'``, or
            ``'label'`` for partial-volume one-hot interpolation).
        pre_affine_name: Name of an image key holding a ``(4, 4)`` matrix applied to
            the image affine (left-multiplied) before resampling.
        scalars_only: Resample only scalar images.
        antialias: Smooth scalar images with a Gaussian before downsampling.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Voxels outside the input get 0; the dtype of each image is kept.
    """

    _replaces_data = True

    def __init__(
        self,
        target: TypeTarget = 1,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        pre_affine_name: str | None = None,
        scalars_only: bool = False,
        antialias: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.target = target
        self.image_interpolation = self.parse_interpolation(image_interpolation)
        self.label_interpolation = self.parse_interpolation(label_interpolation)
        if pre_affine_name is not None and not isinstance(pre_affine_name, str):
            raise TypeError(f'"pre_affine_name" must be a string or None, got {pre_affine_name!r}')
        self.pre_affine_name = pre_affine_name
        self.scalars_only = bool(scalars_only)
        self.antialias = bool(antialias)
        self._check_target(target)
        self.args_names = [
            "target",
            "image_interpolation",
            "label_interpolation",
            "pre_affine_name",
            "scalars_only",
            "antialias",
        ]

    @staticmethod
    def _parse_spacing(spacing: Any) -> tuple[float, float, float]:
        message = (
            "Target must be a string, a positive number or a sequence of positive"
            f" numbers, got {spacing!r}"
        )
        if isinstance(spacing, bool):
            raise ValueError(message)
        if isinstance(spacing, int | float | np.integer | np.floating):
            values = [float(spacing)] * 3
        else:
            flat = (
                list(np.asarray(spacing).flat) if isinstance(spacing, np.ndarray) else list(spacing)
            )
            if len(flat) != 3 or not all(
                isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
                for v in flat
            ):
                raise ValueError(message)
            values = [float(v) for v in flat]
        if not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(f'Spacing must be strictly positive, got "{spacing}"')
        return values[0], values[1], values[2]

    def _check_target(self, target: Any) -> None:
        if isinstance(target, str | Path | Image):
            return
        if isinstance(target, tuple) and len(target) == 2:
            shape, affine = target
            if not (isinstance(shape, Sized) and len(shape) == 3):
                raise ValueError(
                    f"Target shape must be a sequence of three integers, got {shape!r}"
                )
            if any(int(n) < 1 for n in list(shape)):  # type: ignore[call-overload]
                raise ValueError(f"Target shape must be positive, got {shape!r}")
            matrix = np.asarray(affine, dtype=np.float64)
            if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
                raise ValueError(f"Target affine must be a finite (4, 4) array, got {affine!r}")
            if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
                raise ValueError(f"Target affine is singular: {matrix.tolist()}")
            return
        if isinstance(target, int | float | np.integer | np.floating) or (
            isinstance(target, Sized) and isinstance(target, Iterable)
        ):
            self._parse_spacing(target)
            return
        raise ValueError(f'Target not understood: "{target!r}"')

    @staticmethod
    def check_affine(affine_name: str, image: Image) -> None:
        matrix = image[affine_name]
        if not isinstance(matrix, np.ndarray | torch.Tensor):
            raise TypeError(
                f"The affine matrix must be a NumPy array or PyTorch tensor, got {type(matrix)}"
            )
        if tuple(matrix.shape) != (4, 4):
            raise ValueError(f"The affine matrix shape must be (4, 4), got {tuple(matrix.shape)}")

    def _target_grid(
        self, image: Image, subject: Subject
    ) -> tuple[tuple[int, int, int], np.ndarray]:
        target = self.target
        if isinstance(target, str | Path | Image):
            if isinstance(target, Image):
                reference = target
            elif Path(target).is_file():
                reference = ScalarImage(target)
            else:
                try:
                    reference = subject.get_image(str(target))
                except KeyError as error:
                    raise ValueError(
                        f'Image name "{target}" not found in subject. If "{target}" is a'
                        " path, it does not exist or permission has been denied"
                    ) from error
            shape = reference.spatial_shape
            return (int(shape[0]), int(shape[1]), int(shape[2])), np.array(
                reference.affine, np.float64
            )
        if isinstance(target, tuple) and len(target) == 2:
            shape, affine = target
            return (int(shape[0]), int(shape[1]), int(shape[2])), np.asarray(affine, np.float64)
        return reference_grid_from_spacing(
            image.spatial_shape, image.affine, self._parse_spacing(target)
        )

    def _is_target_image(self, image: Image, subject: Subject) -> bool:
        if self.target is image:
            return True
        if isinstance(self.target, str):
            try:
                return subject.get_image(self.target) is image
            except KeyError:
                return False
        return False

    def apply_transform(self, subject: Subject) -> Subject:
        if self.pre_affine_name is not None:
            images = subject.get_images(intensity_only=False)
            if not any(self.pre_affine_name in image for image in images):
                raise ValueError(
                    f'An affine name was given ("{self.pre_affine_name}"), but it was not'
                    " found in any image in the subject"
                )
        for image in self.get_images(subject):
            if self._is_target_image(image, subject):
                continue
            is_scalar = isinstance(image, ScalarImage)
            if not is_scalar and self.scalars_only:
                continue
            interpolation = self.image_interpolation if is_scalar else self.label_interpolation
            if self.pre_affine_name is not None and self.pre_affine_name in image:
                self.check_affine(self.pre_affine_name, image)
                matrix = image[self.pre_affine_name]
                matrix = matrix.numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
                image.affine = matrix @ image.affine
            shape, affine = self._target_grid(image, subject)
            if self.antialias and is_scalar:
                self._smooth(image, affine)
            resample_or_defer(image, shape, affine, [], interpolation, _zero_fill)
        return subject

    @staticmethod
    def _smooth(image: Image, target_affine: np.ndarray) -> None:
        old_spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
        new_spacing = np.linalg.norm(target_affine[:3, :3], axis=0)
        sigmas_mm = antialias_sigmas(old_spacing, new_spacing)
        if not np.any(sigmas_mm > 0):
            return
        array, restore = _as_native_array(image.data)
        sigmas = tuple(float(s) for s in sigmas_mm / old_spacing)
        smoothed = to_tensor(native().gaussian_filter(array, sigmas))
        image.set_data(smoothed.to(restore) if restore is not None else smoothed)
