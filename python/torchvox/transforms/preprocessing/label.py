"""TorchIO's ``torchio.transforms.preprocessing.label`` import path."""

from ..label import (
    Contour,
    KeepLargestComponent,
    OneHot,
    RemapLabels,
    RemoveLabels,
    SequentialLabels,
)
from ..label_transform import LabelTransform

__all__ = [
    "Contour",
    "KeepLargestComponent",
    "LabelTransform",
    "OneHot",
    "RemapLabels",
    "RemoveLabels",
    "SequentialLabels",
]
