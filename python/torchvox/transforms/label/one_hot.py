"""OneHot: one-hot encoding of label maps, inverted by an argmax over channels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..._backend import native, to_tensor
from ..label_transform import LabelTransform
from ._native_arrays import from_native, to_native

if TYPE_CHECKING:
    from ...data.image import LabelMap
    from ...data.subject import Subject

__all__ = ["OneHot"]


class OneHot(LabelTransform):
    """Re-encode single-channel label maps as one channel per class.

    A label map ``(1, I, J, K)`` with values in ``[0, N)`` becomes ``(N, I, J, K)``
    holding 1 in channel ``v`` where the input was ``v``, in the dtype of the input
    (float values are truncated toward zero first, like ``tensor.long()``). The
    inverse (``transform.inverse()``) takes the argmax over channels, returning
    an int64 ``(1, I, J, K)`` map.

    Args:
        num_classes: Number of output channels ``N``; ``-1`` (or ``None``) uses the
            largest label plus one, as :func:`torch.nn.functional.one_hot`.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``num_classes`` is not an integer.
        ValueError: If ``num_classes`` is 0 or smaller than -1; when called, if a
            label is negative, not finite or not smaller than ``num_classes``.
        RuntimeError: When called on a label map with more than one channel.
    """

    _replaces_data = True

    def __init__(self, num_classes: int | None = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if num_classes is not None:
            if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
                raise TypeError(f'"num_classes" must be an int, got {num_classes!r}')
            if num_classes == 0 or num_classes < -1:
                raise ValueError(
                    f'"num_classes" must be positive or -1 (automatic), got {num_classes}'
                )
        self.num_classes = num_classes
        self.args_names = ["num_classes"]
        self.invert_transform = False

    def apply_transform(self, subject: Subject) -> Subject:
        for image in self.get_images(subject):
            if self.invert_transform:
                self.argmax(image)
            else:
                self.one_hot(image)
        return subject

    @staticmethod
    def argmax(image: LabelMap) -> None:
        """Replace ``image`` data by its int64 argmax over channels (first maximum wins)."""
        array = to_native(image.data)
        image.set_data(to_tensor(native().argmax(array)))

    def one_hot(self, image: LabelMap) -> None:
        """Replace the data of a single-channel ``image`` by its one-hot encoding."""
        if image.num_channels > 1:
            raise RuntimeError(
                f"The number of input channels must be 1, but it is {image.num_channels}"
            )
        data = image.data
        automatic = self.num_classes is None or self.num_classes == -1
        classes = None if automatic else int(self.num_classes)  # type: ignore[arg-type]
        encoded = native().one_hot(to_native(data), classes)
        image.set_data(from_native(encoded, data.dtype))
