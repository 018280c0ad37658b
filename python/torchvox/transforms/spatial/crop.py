"""Crop: remove voxels from the image borders, keeping world positions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native, to_numpy, to_tensor
from ..masking import TypeBounds
from ..transform import kernel_supports
from .bounds_transform import BoundsTransform

if TYPE_CHECKING:
    from ...data.image import Image
    from ...data.subject import Subject

__all__ = ["Crop", "crop_tensor"]


def crop_tensor(
    tensor: torch.Tensor, start: tuple[int, int, int], stop: tuple[int, int, int]
) -> torch.Tensor:
    """Return a new C-contiguous copy of ``tensor[:, i0:i1, j0:j1, k0:k1]``.

    Raises:
        ValueError: If the crop leaves no voxel along an axis.
    """
    shape = (stop[0] - start[0], stop[1] - start[1], stop[2] - start[2])
    if min(shape) < 1:
        raise ValueError(
            f"Cropping spatial shape {tuple(tensor.shape[1:])} from {start} to {stop}"
            " leaves no voxels"
        )
    if kernel_supports(tensor):
        return to_tensor(native().crop_pad(to_numpy(tensor), start, shape))
    (i0, j0, k0), (i1, j1, k1) = start, stop
    return tensor[:, i0:i1, j0:j1, k0:k1].clone(memory_format=torch.contiguous_format)


def _cropped_affine(affine: np.ndarray, start: tuple[int, int, int]) -> np.ndarray:
    new = np.array(affine, dtype=np.float64)
    new[:3, 3] = new[:3, :3] @ np.asarray(start, dtype=np.float64) + new[:3, 3]
    return new


class Crop(BoundsTransform):
    """Crop an image, updating the affine so voxels keep their world positions.

    Args:
        cropping: ``n``, ``(i, j, k)`` or ``(i0, i1, j0, j1, k0, k1)``: voxels removed
            at the start and end of each spatial axis.
        copy: If True, the input is not modified: the output is a new subject whose
            cropped images hold copies of the patches only (whole images are not
            copied). If False, the images are cropped in place.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For invalid ``cropping``.
    """

    _replaces_data = True

    _bounds_argument = "cropping"

    def __init__(self, cropping: TypeBounds, copy: bool = True, **kwargs: Any):
        if not isinstance(copy, bool | np.bool_):
            raise TypeError(f'"copy" must be a bool, got {copy!r}')
        self._copy_patch = bool(copy)
        # The base class would deep-copy whole images; only the patches are copied.
        super().__init__(cropping, copy=False, **kwargs)
        self.cropping = cropping
        self.args_names = ["cropping"]

    def _requests_copy(self) -> bool:
        # self.copy is False (as recorded by TorchIO); the patch copy is requested here.
        return self._copy_patch

    def _crop_image(
        self, image: Image, start: tuple[int, int, int], stop: tuple[int, int, int]
    ) -> None:
        data = crop_tensor(image.data, start, stop)
        affine = _cropped_affine(image.affine, start)
        image.set_data(data)
        image.affine = affine

    def apply_transform(self, subject: Subject) -> Subject:
        i0, i1, j0, j1, k0, k1 = self._six_bounds()
        shape = subject.spatial_shape
        start = (i0, j0, k0)
        stop = (shape[0] - i1, shape[1] - j1, shape[2] - k1)
        # The base class protects the input (sharing image tensors with the copy, see
        # transform.py), so only the patches are copied, here.
        for image in self.get_images(subject):
            self._crop_image(image, start, stop)
        return subject

    def inverse(self) -> Any:
        from .pad import Pad

        return Pad(self.cropping, include=self.include, exclude=self.exclude)
