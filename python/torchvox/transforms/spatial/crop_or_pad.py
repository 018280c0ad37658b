"""CropOrPad: crop and/or pad to a target shape."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..spatial_transform import SpatialTransform
from ..transform import TypeSixBounds, TypeTripletInt
from .crop import Crop, _cropped_affine
from .pad import Pad, check_padding_mode, pad_and_crop_tensor, padded_affine

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["CropOrPad"]

TypeTargetShapeAxis = int | float | None
_UNITS = ("voxels", "mm", "cm")
_LOCATIONS = ("center", "random")


def _split_evenly(amounts: Sequence[int]) -> TypeSixBounds:
    """``n`` voxels per axis -> ``(ceil(n/2), floor(n/2))`` at the (start, end)."""
    result: list[int] = []
    for amount in amounts:
        n = int(amount)
        result.extend([n - n // 2, n // 2])
    i0, i1, j0, j1, k0, k1 = result
    return i0, i1, j0, j1, k0, k1


class CropOrPad(SpatialTransform):
    """Crop and/or pad the images to a target shape.

    The affine is updated so voxels keep their world positions. The applied
    :class:`Pad` and :class:`Crop` (padding first) are recorded in the history.

    Args:
        target_shape: ``(I, J, K)`` or a single value for all axes; ``None`` for an axis
            keeps its size. If ``None`` altogether, the shape of the bounding box of
            the mask ``mask_name`` is used.
        padding_mode: See :class:`Pad`.
        mask_name: Name of a label map: the output is centred on the bounding box of its
            non-zero voxels (or of ``labels``). If the mask is missing or empty, the
            volume centre is used, with a ``RuntimeWarning``.
        labels: Labels of ``mask_name`` that make up the mask.
        only_crop: Only crop (axes that would need padding keep their size).
        only_pad: Only pad (axes that would need cropping keep their size).
        location: ``'center'`` splits the cropping evenly between both ends;
            ``'random'`` draws the start of each crop window with ``torch.randint``.
            Padding is always centred.
        units: Units of ``target_shape``: ``'voxels'`` (ints), ``'mm'`` or ``'cm'``
            (converted with the image spacing and rounded).
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For invalid arguments (messages name the argument).
        TypeError: If ``target_shape`` is a string.
    """

    _replaces_data = True

    _records_history = False

    def __init__(
        self,
        target_shape: int | float | Sequence[TypeTargetShapeAxis] | None = None,
        padding_mode: str | float | Callable[..., Any] = 0,
        mask_name: str | None = None,
        labels: Sequence[int] | None = None,
        only_crop: bool = False,
        only_pad: bool = False,
        location: str = "center",
        units: str = "voxels",
        **kwargs: Any,
    ):
        if target_shape is None and mask_name is None:
            raise ValueError('If "mask_name" is None, a "target_shape" must be given')
        super().__init__(**kwargs)
        if units not in _UNITS:
            raise ValueError(f'"units" must be one of {_UNITS}, got {units!r}')
        self.units = units
        self.target_shape = (
            None if target_shape is None else self._parse_target_shape(target_shape, units)
        )
        check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        if mask_name is not None and not isinstance(mask_name, str):
            raise ValueError(f'"mask_name" must be a string or None, got {mask_name!r}')
        if location not in _LOCATIONS:
            raise ValueError(f'"location" must be one of {_LOCATIONS}, got {location!r}')
        if location == "random" and mask_name is not None:
            raise ValueError(
                "location='random' cannot be combined with \"mask_name\": the mask"
                " defines the centre of the output"
            )
        self.location = location
        if mask_name is None and labels is not None:
            raise ValueError(f'If "mask_name" is None, "labels" must be None, got {labels!r}')
        if labels is not None and (
            isinstance(labels, str) or not all(isinstance(v, int | np.integer) for v in labels)
        ):
            raise ValueError(f'"labels" must be a sequence of ints, got {labels!r}')
        self.mask_name = mask_name
        self.labels = labels
        if only_crop and only_pad:
            raise ValueError('"only_crop" and "only_pad" cannot both be True')
        self.only_crop = bool(only_crop)
        self.only_pad = bool(only_pad)
        self.args_names = [
            "target_shape",
            "padding_mode",
            "mask_name",
            "labels",
            "only_crop",
            "only_pad",
            "location",
            "units",
        ]

    @staticmethod
    def _parse_target_shape(
        target_shape: object, units: str
    ) -> tuple[TypeTargetShapeAxis, TypeTargetShapeAxis, TypeTargetShapeAxis]:
        if isinstance(target_shape, str):
            raise TypeError(
                '"target_shape" must be a number or a sequence of 3 numbers or None,'
                f" got the string {target_shape!r}"
            )
        if isinstance(target_shape, bool):
            raise ValueError(f'"target_shape" must be a number, got {target_shape!r}')
        if isinstance(target_shape, int | float | np.integer | np.floating):
            values: list[Any] = [target_shape] * 3
        else:
            try:
                values = list(target_shape)  # type: ignore[call-overload]
            except TypeError:
                raise ValueError(
                    '"target_shape" must be a number or a sequence of 3 numbers or None,'
                    f" got {target_shape!r}"
                ) from None
            if len(values) != 3:
                raise ValueError(f'"target_shape" must have 3 elements, got {target_shape!r}')
        parsed: list[TypeTargetShapeAxis] = []
        for value in values:
            if value is None:
                parsed.append(None)
                continue
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                raise ValueError(f'"target_shape" elements must be numbers or None, got {value!r}')
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f'"target_shape" values must be positive, got {value!r}')
            if units == "voxels":
                if not float(value).is_integer():
                    raise ValueError(
                        f"\"target_shape\" must contain integers when units='voxels', got {value!r}"
                    )
                parsed.append(int(value))
            else:
                parsed.append(float(value))
        return parsed[0], parsed[1], parsed[2]

    def _resolve_target_voxels(self, subject: Subject) -> TypeTripletInt | None:
        if self.target_shape is None:
            return None
        spacing = subject.spacing
        source = subject.spatial_shape
        resolved: list[int] = []
        for value, step, size in zip(self.target_shape, spacing, source):
            if value is None:
                resolved.append(int(size))
            elif self.units == "voxels":
                resolved.append(int(value))
            else:
                factor = 10.0 if self.units == "cm" else 1.0
                resolved.append(round(float(value) * factor / float(step)))
        if min(resolved) < 1:
            raise ValueError(
                f"The target shape {tuple(resolved)} resolved from target_shape="
                f"{self.target_shape!r} (units={self.units!r}, spacing={spacing}) must be positive"
            )
        return resolved[0], resolved[1], resolved[2]

    def _random_split(self, amounts: Sequence[int]) -> TypeSixBounds:
        result: list[int] = []
        for amount in amounts:
            n = int(amount)
            if n == 0:
                result.extend([0, 0])
            else:
                start = int(torch.randint(0, n + 1, (1,)).item())
                result.extend([start, n - start])
        i0, i1, j0, j1, k0, k1 = result
        return i0, i1, j0, j1, k0, k1

    def _from_shapes(
        self, source: Sequence[int], target: Sequence[int]
    ) -> tuple[TypeSixBounds | None, TypeSixBounds | None]:
        difference = np.asarray(target, dtype=np.int64) - np.asarray(source, dtype=np.int64)
        cropping = np.maximum(-difference, 0)
        padding = np.maximum(difference, 0)
        crop: TypeSixBounds | None = None
        if cropping.any():
            if self.location == "random":
                crop = self._random_split(cropping.tolist())
            else:
                crop = _split_evenly(cropping.tolist())
        pad = _split_evenly(padding.tolist()) if padding.any() else None
        return pad, crop

    @staticmethod
    def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and one-past-last indices of the non-zero voxels of a 3D mask."""
        starts, stops = [], []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            (indices,) = np.nonzero(np.any(mask, axis=other))
            starts.append(indices[0])
            stops.append(indices[-1] + 1)
        return np.array(starts), np.array(stops)

    def _from_mask(
        self, subject: Subject, target: TypeTripletInt | None
    ) -> tuple[TypeSixBounds | None, TypeSixBounds | None]:
        assert self.mask_name is not None
        source = subject.spatial_shape
        fallback = target if target is not None else source
        if self.mask_name not in subject:
            warnings.warn(
                f'Mask name "{self.mask_name}" not found in subject keys'
                f" {tuple(subject.keys())}. Using volume center instead",
                RuntimeWarning,
                stacklevel=2,
            )
            return self._from_shapes(source, fallback)
        mask_image = subject.get_image(self.mask_name)
        mask = self.get_mask_from_masking_method(
            self.mask_name, subject, mask_image.data, self.labels
        ).numpy()
        if not mask.any():
            warnings.warn(
                f'All values found in the mask "{self.mask_name}" are zero.'
                " Using volume center instead",
                RuntimeWarning,
                stacklevel=2,
            )
            return self._from_shapes(source, fallback)
        # The box is computed from the first channel, as in TorchIO.
        box_start, box_stop = self._bounding_box(mask[0])
        center = (box_start + box_stop) / 2
        shape = box_stop - box_start if target is None else np.asarray(target)
        padding: list[int] = []
        cropping: list[int] = []
        for axis in range(3):
            size = int(shape[axis])
            middle = float(center[axis])
            # When the window cannot be centred exactly, it is shifted half a voxel
            # towards the start (TorchIO's convention).
            if (size % 2 == 0) != (middle % 1 == 0):
                middle -= 0.5
            begin = middle - size / 2
            end = middle + size / 2
            crop_start, pad_start = (begin, 0.0) if begin >= 0 else (0.0, -begin)
            crop_end, pad_end = (
                (source[axis] - end, 0.0) if end <= source[axis] else (0.0, end - source[axis])
            )
            padding.extend([int(pad_start), int(pad_end)])
            cropping.extend([int(crop_start), int(crop_end)])
        pad = tuple(padding) if any(padding) else None
        crop = tuple(cropping) if any(cropping) else None
        return pad, crop  # type: ignore[return-value]

    def compute_crop_or_pad(
        self, subject: Subject
    ) -> tuple[TypeSixBounds | None, TypeSixBounds | None]:
        """Return the ``(padding, cropping)`` bounds for ``subject`` (None when unused).

        With ``location='random'`` this draws the crop offsets.
        """
        target = self._resolve_target_voxels(subject)
        if self.mask_name is not None:
            return self._from_mask(subject, target)
        assert target is not None
        return self._from_shapes(subject.spatial_shape, target)

    def apply_transform(self, subject: Subject) -> Subject:
        subject.check_consistent_space()
        padding, cropping = self.compute_crop_or_pad(subject)
        # keep=None: this transform re-adds the kept images itself after the children.
        arguments = {
            "copy": self.copy,
            "include": self.include,
            "exclude": self.exclude,
            "keep": None,
            "parse_input": self.parse_input,
            "label_keys": self.label_keys,
        }
        pad = crop = None
        if padding is not None and not self.only_crop:
            pad = Pad(padding, padding_mode=self.padding_mode, **arguments)
        if cropping is not None and not self.only_pad:
            crop = Crop(cropping, **arguments)  # type: ignore[arg-type]
        if pad is not None and crop is not None:
            return self._pad_and_crop(pad, crop, subject)
        for child in (pad, crop):
            if child is not None:
                subject = self._apply_child(child, subject)
        return subject

    def _pad_and_crop(self, pad: Pad, crop: Crop, subject: Subject) -> Subject:
        """Apply ``pad`` then ``crop`` in one pass over each image.

        The result, the history (both transforms are recorded) and the random draws
        (each call draws ``torch.rand(1)`` for its probability, which is 1) are those
        of calling ``pad`` and then ``crop``, without writing the padded volume.
        """
        torch.rand(1)
        torch.rand(1)
        padding, cropping = pad._six_bounds(), crop._six_bounds()
        for image in pad.get_images(subject):
            pad._warn_truncation(image)
            affine = _cropped_affine(padded_affine(image.affine, padding), cropping[::2])
            image.set_data(pad_and_crop_tensor(image.data, padding, cropping, pad.padding_mode))
            image.affine = affine
        if self.parse_input:
            pad._add_transform_to_subject_history(subject)
            crop._add_transform_to_subject_history(subject)
        return subject
