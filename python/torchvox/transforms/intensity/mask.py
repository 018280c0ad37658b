"""Mask: set the voxels outside a mask to a constant."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..intensity_transform import IntensityTransform
from ..masking import TypeMaskingMethod, validate_masking_method

if TYPE_CHECKING:
    from ...data.image import Image
    from ...data.subject import Subject

__all__ = ["Mask", "mask"]


def mask(tensor: torch.Tensor, mask: torch.Tensor, outside_value: float) -> torch.Tensor:
    """Return a copy of ``tensor`` with voxels where ``mask`` is false set to ``outside_value``.

    A one-channel mask is expanded over the channels of ``tensor`` with a
    ``RuntimeWarning``, as in TorchIO. The dtype of ``tensor`` is kept.
    """
    if mask.shape[0] != tensor.shape[0]:
        if mask.shape[0] != 1:
            raise ValueError(
                f"A mask with shape {tuple(mask.shape)} cannot mask an image with shape"
                f" {tuple(tensor.shape)}"
            )
        warnings.warn(
            f"Expanding mask with shape {tuple(mask.shape)} to match shape"
            f" {tuple(tensor.shape)} of input image",
            RuntimeWarning,
            stacklevel=2,
        )
    return tensor.masked_fill(~mask.expand_as(tensor), outside_value)


class Mask(IntensityTransform):
    """Set voxels outside the mask to ``outside_value``.

    Args:
        masking_method: The mask; see :mod:`torchvox.transforms.masking`.
        outside_value: Value given to voxels outside the mask.
        labels: With a label-map name, the labels making up the mask (default: every
            non-zero voxel).
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: For an invalid ``masking_method`` or a non-numeric ``outside_value``.
        ValueError: For ``labels`` that are not a sequence of ints.
    """

    _replaces_data = True

    def __init__(
        self,
        masking_method: TypeMaskingMethod,
        outside_value: float = 0,
        labels: Sequence[int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        validate_masking_method(masking_method)
        if isinstance(outside_value, bool) or not isinstance(
            outside_value, int | float | np.integer | np.floating
        ):
            raise TypeError(f'"outside_value" must be a number, got {outside_value!r}')
        if labels is not None and (
            isinstance(labels, str) or not all(isinstance(v, int | np.integer) for v in labels)
        ):
            raise ValueError(f'"labels" must be a sequence of ints, got {labels!r}')
        self.masking_method = masking_method
        self.outside_value = outside_value
        self.labels = labels
        # TorchIO's attribute name.
        self.masking_labels = labels
        # TorchIO records only masking_method; the other two are needed to replay exactly.
        self.args_names = ["masking_method", "outside_value", "labels"]

    def apply_transform(self, subject: Subject) -> Subject:
        for image in self.get_images(subject):
            mask_data = self.get_mask_from_masking_method(
                self.masking_method, subject, image.data, self.labels
            )
            self.apply_masking(image, mask_data)
        return subject

    def apply_masking(self, image: Image, mask_data: torch.Tensor) -> None:
        """Set the voxels of ``image`` outside ``mask_data`` to ``outside_value``.

        Args:
            image: The image (its data are replaced by a new tensor).
            mask_data: Boolean ``(1, W, H, D)`` or ``(C, W, H, D)`` mask.
        """
        image.set_data(mask(image.data, mask_data, self.outside_value))
