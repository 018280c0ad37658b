"""Motion and RandomMotion: MRI motion artefacts (TorchIO 1.2.1 semantics).

Following Shaw et al. (MIDL 2019) as TorchIO does: the image is rigidly moved
``num_transforms`` times, and the centred k-space is assembled from contiguous
segments along the last axis, each taken from one moved copy (the unmoved image
fills the segment holding the k-space centre). The Rust kernel resamples each
copy once and needs only 1D FFTs along the last axis.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native
from ..fourier import FourierTransform
from ..intensity_transform import IntensityTransform
from ..label._native_arrays import from_native, to_native
from ..random_transform import RandomTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["Motion", "RandomMotion"]

#: Interpolations the warp kernel implements (TorchIO accepts all SimpleITK ones).
_SUPPORTED_INTERPOLATIONS = ("nearest", "linear", "bspline")

#: RAS <-> LPS flip of the first two world axes.
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def euler_matrix(radians: np.ndarray) -> np.ndarray:
    """Rotation matrix of SimpleITK's ``Euler3DTransform`` (``R = Rz Rx Ry``).

    Args:
        radians: Rotation angles ``(x, y, z)`` in radians.

    Returns:
        A ``(3, 3)`` float64 matrix.
    """
    ax, ay, az = (float(v) for v in radians)
    cx, sx = np.cos(ax), np.sin(ax)
    cy, sy = np.cos(ay), np.sin(ay)
    cz, sz = np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx @ ry


def rigid_world_transform(degrees: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """The RAS world 4x4 matrix TorchIO's motion resampling applies.

    TorchIO builds an ``Euler3DTransform`` centred on the image, but rebuilds it
    from its matrix and translation parameter only, so the rotation ends up
    centred on the world origin: output LPS point ``p`` samples the input at
    ``R p + t``. Conjugating by the LPS flip gives the same map in RAS.

    Args:
        degrees: Rotation angles ``(x, y, z)`` in degrees (LPS axes, as SimpleITK).
        translation: Translation ``(x, y, z)`` in mm (LPS).
    """
    lps = np.eye(4)
    lps[:3, :3] = euler_matrix(np.radians(np.asarray(degrees, dtype=np.float64)))
    lps[:3, 3] = np.asarray(translation, dtype=np.float64)
    return _LPS @ lps @ _LPS


def segments_from_times(times: np.ndarray, last_index: int) -> tuple[list[int], list[int]]:
    """TorchIO's k-space segments: ends along the last axis and source images.

    Segment ``s`` ends at ``int(last_index * times[s])`` (the last one at
    ``last_index``); source ``s`` is the copy moved by transform ``s - 1``
    (0 = unmoved), except that the unmoved image and the copy of the segment
    holding the k-space centre (first time > 0.5) trade places.

    Raises:
        ValueError: If the times are not non-decreasing values in ``[0, 1]``.
    """
    times = np.asarray(times)
    if times.ndim != 1 or not np.all((times >= 0) & (times <= 1)):
        raise ValueError(f"times must be a 1D sequence of values in [0, 1], got {times!r}")
    ends = [int(v) for v in (last_index * times).astype(int).tolist()] + [last_index]
    if any(a > b for a, b in itertools.pairwise(ends)):
        raise ValueError(f"times must be non-decreasing, got {times!r}")
    num_spectra = len(times) + 1
    sources = list(range(num_spectra))
    index = int(np.where(times > 0.5)[0].min()) if np.any(times > 0.5) else num_spectra - 1
    sources[0], sources[index] = sources[index], sources[0]
    return ends, sources


class RandomMotion(RandomTransform, IntensityTransform, FourierTransform):
    """Add random MRI motion artefacts.

    Args:
        degrees: Rotation range in degrees, ``(a, b)`` or ``d`` for ``(-d, d)``.
        translation: Translation range in mm, ``(a, b)`` or ``t`` for ``(-t, t)``.
        num_transforms: Number of simulated movements (positive int).
        image_interpolation: ``'linear'``, ``'nearest'`` or ``'bspline'``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: If ``num_transforms`` is not a positive int or the
            interpolation is unknown.
    """

    _replaces_data = True

    def __init__(
        self,
        degrees: float | tuple[float, float] = 10,
        translation: float | tuple[float, float] = 10,
        num_transforms: int = 2,
        image_interpolation: str = "linear",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.degrees_range = self.parse_degrees(degrees)
        self.translation_range = self.parse_translation(translation)
        if (
            isinstance(num_transforms, bool)
            or not isinstance(num_transforms, int)
            or num_transforms < 1
        ):
            raise ValueError(
                "Number of transforms must be a strictly positive natural number,"
                f" not {num_transforms!r}"
            )
        self.num_transforms = num_transforms
        self.image_interpolation = _parse_motion_interpolation(
            self.parse_interpolation(image_interpolation)
        )

    def apply_transform(self, subject: Subject) -> Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        times: dict[str, np.ndarray] = {}
        degrees: dict[str, np.ndarray] = {}
        translation: dict[str, np.ndarray] = {}
        interpolation: dict[str, str] = {}
        for name, image in images.items():
            times[name], degrees[name], translation[name] = self.get_params(
                self.degrees_range,
                self.translation_range,
                self.num_transforms,
                is_2d=image.is_2d(),
            )
            interpolation[name] = self.image_interpolation
        transform = Motion(
            degrees=degrees,
            translation=translation,
            times=times,
            image_interpolation=interpolation,
            **self._get_base_args(),
        )
        result: Subject = self._apply_child(transform, subject)
        return result

    def get_params(
        self,
        degrees_range: tuple[float, float],
        translation_range: tuple[float, float],
        num_transforms: int,
        perturbation: float = 0.3,
        is_2d: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw (times, degrees, translation) with torch's RNG, as TorchIO."""
        degrees = self.get_params_array(degrees_range, num_transforms)
        translation = self.get_params_array(translation_range, num_transforms)
        if is_2d:  # in-plane motion only
            degrees[:, :-1] = 0
            translation[:, 2] = 0
        step = 1 / (num_transforms + 1)
        times = torch.arange(0, 1, step)[1:]
        noise = torch.FloatTensor(num_transforms)
        noise.uniform_(-step * perturbation, step * perturbation)
        times += noise
        return times.numpy(), degrees, translation

    @staticmethod
    def get_params_array(nums_range: tuple[float, float], num_transforms: int) -> np.ndarray:
        """``(num_transforms, 3)`` float32 values drawn from ``U(*nums_range)``."""
        return torch.FloatTensor(num_transforms, 3).uniform_(*nums_range).numpy()

    def _get_named_arguments(self) -> dict[str, object]:
        return {
            "degrees": self.degrees_range,
            "translation": self.translation_range,
            "num_transforms": self.num_transforms,
            "image_interpolation": self.image_interpolation,
        }


def _parse_motion_interpolation(name: str) -> str:
    if name not in _SUPPORTED_INTERPOLATIONS:
        raise ValueError(
            f"Motion supports image_interpolation in {_SUPPORTED_INTERPOLATIONS}, got {name!r}"
        )
    return name


class Motion(IntensityTransform, FourierTransform):
    """Add MRI motion artefacts.

    Args:
        degrees: ``(N, 3)`` rotations in degrees, or ``{image_name: array}``.
        translation: ``(N, 3)`` translations in mm, or a dict.
        times: ``N`` non-decreasing times in ``[0, 1]`` at which the movements
            happen, or a dict.
        image_interpolation: ``'linear'``, ``'nearest'`` or ``'bspline'``, or a dict.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    The output of a ``(C, I, J, K)`` image is float32.

    Raises:
        ValueError: For mismatched shapes, times outside ``[0, 1]`` or decreasing,
            or unsupported interpolations.
    """

    _replaces_data = True

    def __init__(
        self,
        degrees: np.ndarray | dict[str, np.ndarray],
        translation: np.ndarray | dict[str, np.ndarray],
        times: np.ndarray | dict[str, np.ndarray],
        image_interpolation: str | dict[str, str],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.degrees = degrees
        self.translation = translation
        self.times = times
        self.image_interpolation = image_interpolation
        for value in (
            image_interpolation.values()
            if isinstance(image_interpolation, Mapping)
            else [image_interpolation]
        ):
            _parse_motion_interpolation(self.parse_interpolation(value))
        self.args_names = ["degrees", "translation", "times", "image_interpolation"]

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            degrees = np.asarray(self.get_parameter(self.degrees, name), dtype=np.float64)
            translation = np.asarray(self.get_parameter(self.translation, name), dtype=np.float64)
            times = np.asarray(self.get_parameter(self.times, name))
            interpolation = self.parse_interpolation(
                self.get_parameter(self.image_interpolation, name)
            )
            degrees = degrees.reshape(-1, 3) if degrees.size else degrees.reshape(0, 3)
            translation = (
                translation.reshape(-1, 3) if translation.size else translation.reshape(0, 3)
            )
            if not len(degrees) == len(translation) == len(times.reshape(-1)):
                raise ValueError(
                    "degrees, translation and times must describe the same number of"
                    f" movements, got {len(degrees)}, {len(translation)} and {times.size}"
                )
            ends, sources = segments_from_times(times.reshape(-1), image.spatial_shape[2])
            transforms = [
                rigid_world_transform(d, t) for d, t in zip(degrees, translation, strict=True)
            ]
            result = native().motion(
                to_native(image.data),
                np.asarray(image.affine, dtype=np.float64),
                transforms,
                interpolation,
                ends,
                sources,
            )
            image.set_data(from_native(result, torch.float32))
        return subject
