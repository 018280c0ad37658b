"""The ``masking_method`` machinery shared by transforms that restrict work to a mask.

A masking method selects the voxels of an image used to compute statistics
(:class:`~torchvox.transforms.ZNormalization`, :class:`~torchvox.transforms.RescaleIntensity`)
or the voxels kept (:class:`~torchvox.transforms.Mask`). TorchIO 1.2.1 accepts:

* ``None``: every voxel;
* a callable receiving the ``(C, I, J, K)`` tensor and returning a boolean tensor;
* the name of a :class:`~torchvox.LabelMap` in the subject, optionally restricted to
  some ``labels``;
* an anatomical half, ``'Left'``, ``'Right'``, ``'Anterior'``, ``'Posterior'``,
  ``'Inferior'`` or ``'Superior'`` (case-insensitive full words; the image is assumed
  to be in RAS+ orientation, as TorchIO does);
* bounds, an int or 3 or 6 non-negative ints as for :class:`~torchvox.transforms.Crop`:
  the mask is the box left after cropping them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch

if TYPE_CHECKING:
    from ..data.subject import Subject

__all__ = [
    "ANATOMICAL_AXES",
    "TypeBounds",
    "TypeMaskingMethod",
    "TypeSixBounds",
    "get_mask_from_anatomical_label",
    "get_mask_from_bounds",
    "get_mask_from_masking_method",
    "parse_bounds",
    "statistics_inputs",
    "validate_masking_method",
]

TypeSixBounds: TypeAlias = tuple[int, int, int, int, int, int]
TypeBounds: TypeAlias = int | Sequence[int] | None
TypeMaskingMethod: TypeAlias = str | Callable[[torch.Tensor], torch.Tensor] | TypeBounds | None

ANATOMICAL_AXES = ("Left", "Right", "Posterior", "Anterior", "Inferior", "Superior")


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def parse_bounds(bounds: object, argument: str = "bounds") -> TypeSixBounds | None:
    """Expand a bounds argument to six non-negative ints ``(i0, i1, j0, j1, k0, k1)``.

    Args:
        bounds: ``None``, an int ``n`` (all six equal), three ints ``(i, j, k)``
            (each used at both ends of its axis) or six ints.
        argument: Name of the user argument, used in error messages.

    Returns:
        The six values, or ``None`` if ``bounds`` is ``None``.

    Raises:
        ValueError: If a value is not a non-negative integer or the length is not 1, 3 or 6.
    """
    if bounds is None:
        return None
    if _is_integer(bounds):
        values: tuple[object, ...] = (bounds,)
    elif isinstance(bounds, torch.Tensor | np.ndarray):
        values = tuple(np.asarray(bounds).reshape(-1).tolist())
    elif isinstance(bounds, Sequence) and not isinstance(bounds, str):
        values = tuple(bounds)
    else:
        raise ValueError(
            f'"{argument}" must be an int or a sequence of 3 or 6 ints, got {bounds!r}'
        )
    for value in values:
        if not _is_integer(value) or int(value) < 0:  # type: ignore[call-overload]
            raise ValueError(
                f'"{argument}" values must be integers greater than or equal to zero,'
                f" got {bounds!r}"
            )
    ints = tuple(int(value) for value in values)  # type: ignore[call-overload]
    if len(ints) == 1:
        n = ints[0]
        return n, n, n, n, n, n
    if len(ints) == 3:
        i, j, k = ints
        return i, i, j, j, k, k
    if len(ints) == 6:
        i0, i1, j0, j1, k0, k1 = ints
        return i0, i1, j0, j1, k0, k1
    raise ValueError(f'"{argument}" must be an int or a sequence of 3 or 6 ints, got {bounds!r}')


def validate_masking_method(masking_method: object, argument: str = "masking_method") -> None:
    """Check the type of a masking method at construction time.

    Names cannot be checked against a subject yet, so any string is accepted here.

    Raises:
        TypeError: If the value is not None, a string, a callable or bounds.
        ValueError: If bounds are malformed.
    """
    if masking_method is None or isinstance(masking_method, str) or callable(masking_method):
        return
    if _is_integer(masking_method) or isinstance(masking_method, list | tuple):
        parse_bounds(masking_method, argument)
        return
    raise TypeError(
        f'"{argument}" must be None, a callable, the name of a label map, an anatomical'
        f" label {ANATOMICAL_AXES} or bounds (1, 3 or 6 ints), got {masking_method!r}"
        f" of type {type(masking_method).__name__}"
    )


def get_mask_from_anatomical_label(anatomical_label: str, tensor: torch.Tensor) -> torch.Tensor:
    """Return a boolean mask of one half of the image, assuming RAS+ orientation.

    Args:
        anatomical_label: One of :data:`ANATOMICAL_AXES` (case-insensitive).
        tensor: The ``(C, I, J, K)`` image.

    Returns:
        Boolean tensor of the shape of ``tensor``. For an odd size the middle slice
        belongs to the Right/Anterior/Superior half, as in TorchIO.
    """
    label = anatomical_label.capitalize()
    if label not in ANATOMICAL_AXES:
        raise ValueError(
            f"Anatomical label must be one of {ANATOMICAL_AXES}, got {anatomical_label!r}"
        )
    mask = torch.zeros(tensor.shape, dtype=torch.bool)
    axis = {"L": 1, "R": 1, "P": 2, "A": 2, "I": 3, "S": 3}[label[0]]
    half = tensor.shape[axis] // 2
    index: list[slice] = [slice(None)] * 4
    # The positive direction (Right, Anterior, Superior) is the upper half in RAS+.
    index[axis] = (
        slice(half, None) if label in ("Right", "Anterior", "Superior") else slice(None, half)
    )
    mask[tuple(index)] = True
    return mask


def get_mask_from_bounds(bounds: object, tensor: torch.Tensor) -> torch.Tensor:
    """Return a boolean mask that is true inside the box left after cropping ``bounds``.

    Args:
        bounds: Anything accepted by :func:`parse_bounds` (not ``None``).
        tensor: The ``(C, I, J, K)`` image.
    """
    parsed = parse_bounds(bounds, "masking_method")
    if parsed is None:
        raise ValueError("Bounds cannot be None")
    i0, i1, j0, j1, k0, k1 = parsed
    _, si, sj, sk = tensor.shape
    mask = torch.zeros(tensor.shape, dtype=torch.bool)
    mask[:, i0 : max(si - i1, 0), j0 : max(sj - j1, 0), k0 : max(sk - k1, 0)] = True
    return mask


def _label_map_mask(label_map: Any, labels: Sequence[int] | None) -> torch.Tensor:
    data = label_map.data
    if labels is None:
        return data.bool()
    return torch.isin(data, torch.as_tensor(list(labels), dtype=data.dtype))


def statistics_inputs(
    tensor: torch.Tensor, mask: torch.Tensor | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Arrays for the ``statistics`` kernel, with TorchIO's float32 semantics.

    TorchIO computes statistics on the data converted to float32; float32, int16 and
    uint8 values are exact in float32 and are passed as they are, other dtypes are
    converted first.

    Args:
        tensor: ``(C, I, J, K)`` image.
        mask: Boolean mask of shape ``(1, I, J, K)`` or ``(C, I, J, K)``, or None.

    Returns:
        The volume and mask arrays (views whenever possible).
    """
    from .._backend import to_numpy

    if tensor.dtype not in (torch.float32, torch.int16, torch.uint8):
        tensor = tensor.float()
    mask_array = None if mask is None else to_numpy(mask)
    return to_numpy(tensor), mask_array


def get_mask_from_masking_method(
    masking_method: TypeMaskingMethod,
    subject: Subject,
    tensor: torch.Tensor,
    labels: Sequence[int] | None = None,
) -> torch.Tensor:
    """Compute the boolean mask selected by ``masking_method`` for one image.

    Args:
        masking_method: See the module documentation.
        subject: Subject holding the image (and any label map named by the method).
        tensor: The ``(C, I, J, K)`` image data the mask applies to.
        labels: With a label-map name, the labels that belong to the mask
            (default: every non-zero voxel).

    Returns:
        A boolean tensor of shape ``(C, I, J, K)`` or, for label maps with one
        channel, ``(1, I, J, K)``.

    Raises:
        ValueError: If the method is not understood.
    """
    from ..data.image import LabelMap

    if masking_method is None:
        return torch.ones(tensor.shape, dtype=torch.bool)
    if callable(masking_method):
        mask = masking_method(tensor)
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(np.asarray(mask))
        return mask.bool()
    if isinstance(masking_method, str):
        candidate = subject.get(masking_method)
        if isinstance(candidate, LabelMap):
            return _label_map_mask(candidate, labels)
        if masking_method.capitalize() in ANATOMICAL_AXES:
            return get_mask_from_anatomical_label(masking_method, tensor)
    elif _is_integer(masking_method) or (
        isinstance(masking_method, list | tuple) and all(_is_integer(n) for n in masking_method)
    ):
        return get_mask_from_bounds(masking_method, tensor)
    names = subject.get_images_names() if hasattr(subject, "get_images_names") else list(subject)
    raise ValueError(
        "masking_method must be a callable, the name of a label map in the subject"
        f" {tuple(names)}, an anatomical label {ANATOMICAL_AXES} or bounds (an int or"
        f" 3 or 6 ints); got {masking_method!r} of type {type(masking_method).__name__}"
    )
