"""RemoveLabels: set some labels to the background label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..masking import TypeMaskingMethod
from .remap_labels import RemapLabels

__all__ = ["RemoveLabels"]


class RemoveLabels(RemapLabels):
    """Remove labels from label maps by remapping them to the background label.

    This transform is not invertible.

    Args:
        labels: Labels to remove.
        background_label: Value that replaces them.
        masking_method: Where to remove them; see
            :class:`~torchvox.transforms.RemapLabels`.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``labels`` is not a sequence of numbers or ``background_label``
            is not a number.
    """

    def __init__(
        self,
        labels: Sequence[int],
        background_label: int = 0,
        masking_method: TypeMaskingMethod = None,
        **kwargs: Any,
    ):
        if isinstance(labels, str) or not isinstance(labels, Sequence | np.ndarray | set):
            raise TypeError(f'"labels" must be a sequence of labels, got {labels!r}')
        remapping = {label: background_label for label in labels}
        super().__init__(remapping, masking_method, **kwargs)
        self.labels = labels
        self.background_label = background_label
        self.args_names = ["labels", "background_label", "masking_method"]

    def is_invertible(self) -> bool:
        return False

    def inverse(self) -> RemapLabels:
        raise RuntimeError(f"{self.name} is not invertible")
