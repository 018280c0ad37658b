"""Label map transforms: one-hot encoding, contours, components and relabelling."""

from .contour import Contour
from .keep_largest_component import KeepLargestComponent
from .one_hot import OneHot
from .remap_labels import RemapLabels
from .remove_labels import RemoveLabels
from .sequential_labels import SequentialLabels

__all__ = [
    "Contour",
    "KeepLargestComponent",
    "OneHot",
    "RemapLabels",
    "RemoveLabels",
    "SequentialLabels",
]
