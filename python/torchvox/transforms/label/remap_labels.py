"""RemapLabels: change label values through a mapping, optionally inside a mask."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native, to_numpy
from ..label_transform import LabelTransform
from ..masking import TypeMaskingMethod, validate_masking_method
from ._native_arrays import from_native, to_native

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["RemapLabels"]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def validate_remapping(remapping: object) -> None:
    """Check that ``remapping`` maps numbers to numbers, none of them NaN.

    Raises:
        TypeError: If it is not a mapping or holds something else than numbers.
        ValueError: If a label is NaN or infinite.
    """
    if not isinstance(remapping, Mapping):
        raise TypeError(f'"remapping" must be a dict of labels, got {remapping!r}')
    for old, new in remapping.items():
        if not (_is_number(old) and _is_number(new)):
            raise TypeError(f'"remapping" must map numbers to numbers, got {old!r}: {new!r}')
        if not (math.isfinite(old) and math.isfinite(new)):
            raise ValueError(f'"remapping" labels must be finite, got {old!r}: {new!r}')


class RemapLabels(LabelTransform):
    """Change the values of label maps: every ``old`` voxel becomes ``new``.

    All voxels are compared with the input, so ``{1: 2, 2: 1}`` swaps two labels.
    Images containing none of the keys are left untouched. The dtype is kept.

    Args:
        remapping: ``{old_label: new_label}``.
        masking_method: Where to remap (default everywhere); any masking method of
            :mod:`torchvox.transforms.masking`. A mask makes the inverse correct when
            several labels were merged, e.g. ``masking_method='Right'``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: For a ``remapping`` that is not a dict of numbers or an invalid
            ``masking_method``.
        ValueError: For NaN labels; when called, if a new label does not fit the
            dtype of the label map (e.g. 300 in uint8, 1.5 in an integer map).

    Example:
        >>> import torch, torchvox as tio
        >>> image = tio.LabelMap(tensor=torch.tensor([0, 1, 2, 3, 4]).reshape(1, 1, 1, -1))
        >>> tio.RemapLabels({1: 2, 2: 1, 3: 1, 4: 7})(image).data
        tensor([[[[0, 2, 1, 1, 7]]]])
    """

    _replaces_data = True

    def __init__(
        self,
        remapping: dict[int, int],
        masking_method: TypeMaskingMethod = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        validate_remapping(remapping)
        validate_masking_method(masking_method)
        #: Base keyword arguments, given to the inverse transform.
        self.kwargs = kwargs
        self.remapping = remapping
        self.masking_method = masking_method
        self.args_names = ["remapping", "masking_method"]

    def apply_transform(self, subject: Subject) -> Subject:
        if not self.remapping:
            return subject
        pairs = [(float(old), float(new)) for old, new in self.remapping.items()]
        for image in self.get_images(subject):
            data = image.data
            array = to_native(data)
            present = set(native().unique_labels(array))
            # As in TorchIO, an image holding none of the old labels is not touched
            # (and its mask is not computed).
            if not present.intersection(old for old, _ in pairs):
                continue
            mask = None
            if self.masking_method is not None:
                mask_tensor = self.get_mask_from_masking_method(self.masking_method, subject, data)
                mask = to_numpy(mask_tensor.to(torch.uint8))
            remapped = native().remap_labels(array, pairs, mask)
            image.set_data(from_native(remapped, data.dtype))
        return subject

    def is_invertible(self) -> bool:
        # Not always exactly (see TorchIO's documentation), but the inverse exists.
        return True

    def inverse(self) -> RemapLabels:
        """Return the RemapLabels with the inverted mapping and the same mask.

        Raises:
            RuntimeError: If two labels were mapped to the same value.
        """
        targets = list(self.remapping.values())
        if len(set(targets)) < len(targets):
            raise RuntimeError(
                "Labels mapping cannot be inverted because original values"
                f" are not unique: {self.remapping}"
            )
        inverse_remapping = {new: old for old, new in self.remapping.items()}
        return RemapLabels(inverse_remapping, masking_method=self.masking_method, **self.kwargs)
