"""Contour: keep only the border voxels of the foreground of a label map."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._backend import native
from ..label_transform import LabelTransform
from ._native_arrays import from_native, to_native

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["Contour"]


class Contour(LabelTransform):
    """Keep only the borders of the connected components of a binary label map.

    As SimpleITK's ``BinaryContour`` with its defaults, which TorchIO uses: a voxel
    equal to 1 stays 1 if one of its 6 face neighbours inside the volume is not 1,
    and becomes 0 otherwise; every other value is kept. The dtype is kept.

    Args:
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        RuntimeError: When called on a label map with more than one channel.
    """

    _replaces_data = True

    def __init__(self, *args: Any, **kwargs: Any):
        # Positional arguments are the Transform's (``p`` first), as in TorchIO.
        super().__init__(*args, **kwargs)
        self.args_names = []

    def apply_transform(self, subject: Subject) -> Subject:
        for image in self.get_images(subject):
            if image.num_channels > 1:
                raise RuntimeError(
                    f"The number of input channels must be 1, but it is {image.num_channels}"
                )
            data = image.data
            contour = native().binary_contour(to_native(data), False, 1.0, 0.0)
            image.set_data(from_native(contour, data.dtype))
        return subject
