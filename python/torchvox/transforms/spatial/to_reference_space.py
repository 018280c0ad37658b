"""Place tensors in the physical space of a reference image (TorchIO's ``ToReferenceSpace``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...data.image import Image
from ...data.subject import Subject
from ..spatial_transform import SpatialTransform
from .resample import reference_grid_from_spacing

__all__ = ["ToReferenceSpace", "build_image_from_reference"]


class ToReferenceSpace(SpatialTransform):
    """Give each image the affine of ``reference`` resampled to the image's shape.

    Useful to put a network output (e.g. a downsampled segmentation) back in the
    space of the input: the voxel data are not interpolated, only the affine is
    replaced by the one the reference would have at the tensor's resolution.

    Args:
        reference: The image whose field of view the tensors cover.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    def __init__(self, reference: Image, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(reference, Image):
            raise TypeError(
                f"The reference must be a torchvox Image, got {type(reference).__name__}"
            )
        self.reference = reference
        self.args_names = ["reference"]

    def apply_transform(self, subject: Subject) -> Subject:
        for image in self.get_images(subject):
            new_image = build_image_from_reference(image.data, self.reference)
            image.set_data(new_image.data)
            image.affine = new_image.affine
        return subject

    @staticmethod
    def from_tensor(tensor: torch.Tensor, reference: Image) -> Image:
        """Build an image of ``reference``'s class holding ``tensor`` in its space."""
        return build_image_from_reference(tensor, reference)


def build_image_from_reference(tensor: torch.Tensor, reference: Image) -> Image:
    """An image of ``reference``'s class with ``tensor`` and the reference's affine at its shape.

    The affine is the one TorchIO gets by resampling the reference to spacing
    ``reference.spacing * reference_shape / tensor_shape``.
    """
    input_shape = np.array(reference.spatial_shape)
    output_shape = np.array(tensor.shape[-3:])
    spacing = np.array(reference.spacing) * input_shape / output_shape
    _, affine = reference_grid_from_spacing(
        tuple(reference.spatial_shape), reference.affine, spacing
    )
    return reference.__class__(tensor=tensor, affine=affine)
