"""KeepLargestComponent: keep the largest connected component of a label map."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._backend import native, to_tensor
from ..label_transform import LabelTransform
from ._native_arrays import to_native

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["KeepLargestComponent"]


class KeepLargestComponent(LabelTransform):
    """Keep only the largest connected component of the non-zero voxels.

    Components are face-connected (6 neighbours), as SimpleITK's
    ``ConnectedComponent`` by default; every non-zero value is foreground. The
    output is a uint8 mask of the largest component (as TorchIO's
    ``RelabelComponent(...) == 1``); among components of equal size the one whose
    first voxel comes first with the first axis fastest wins, SimpleITK's order
    on TorchIO's arrays.

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
            largest = native().keep_largest_component(to_native(image.data), False, "F")
            image.set_data(to_tensor(largest))
        return subject
