"""SequentialLabels: renumber the labels of label maps as 0, 1, 2..."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._backend import native
from ..label_transform import LabelTransform
from ..masking import TypeMaskingMethod, validate_masking_method
from ._native_arrays import to_native
from .remap_labels import RemapLabels

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["SequentialLabels"]


class SequentialLabels(LabelTransform):
    """Remap the labels of each label map to consecutive integers from 0.

    The sorted labels ``(l0, l1, ...)`` of an image become ``(0, 1, ...)`` through a
    :class:`~torchvox.transforms.RemapLabels` that is recorded in the subject
    history (this transform is not), so the change is fully invertible:
    ``(0, 3, 5)`` becomes ``(0, 1, 2)`` and ``(7, 11, 99)`` becomes ``(0, 1, 2)``.

    Args:
        masking_method: Where to remap; see :class:`~torchvox.transforms.RemapLabels`.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _records_history = False
    _replaces_data = True

    def __init__(self, masking_method: TypeMaskingMethod = None, **kwargs: Any):
        super().__init__(**kwargs)
        validate_masking_method(masking_method)
        self.masking_method = masking_method
        self.args_names = ["masking_method"]

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            values = native().unique_labels(to_native(image.data))
            integral = not image.data.dtype.is_floating_point
            remapping = {
                (int(value) if integral else value): index for index, value in enumerate(values)
            }
            arguments = self._get_base_args()
            # The inner transform works on this image only, on the subject this call
            # owns; kept copies were already made by this call.
            arguments.update(include=[name], exclude=None, keep=None)
            transform = RemapLabels(remapping, masking_method=self.masking_method, **arguments)
            subject = self._apply_child(transform, subject)
        return subject
