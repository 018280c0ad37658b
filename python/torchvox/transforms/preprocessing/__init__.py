"""TorchIO's ``torchio.transforms.preprocessing`` import path.

Re-exports the preprocessing transforms (implemented in
:mod:`torchvox.transforms.spatial`, :mod:`torchvox.transforms.intensity` and
:mod:`torchvox.transforms.label`) under the names TorchIO exports here, plus
the three modules of their kinds.
"""

from . import intensity, label, spatial
from .intensity import (
    PCA,
    Clamp,
    HistogramStandardization,
    Mask,
    RescaleIntensity,
    To,
    ZNormalization,
)
from .label import (
    Contour,
    KeepLargestComponent,
    OneHot,
    RemapLabels,
    RemoveLabels,
    SequentialLabels,
)
from .spatial import (
    CopyAffine,
    Crop,
    CropOrPad,
    EnsureShapeMultiple,
    Pad,
    Resample,
    Resize,
    ToCanonical,
    ToOrientation,
    ToReferenceSpace,
    Transpose,
)

__all__ = [
    "PCA",
    "Clamp",
    "Contour",
    "CopyAffine",
    "Crop",
    "CropOrPad",
    "EnsureShapeMultiple",
    "HistogramStandardization",
    "KeepLargestComponent",
    "Mask",
    "OneHot",
    "Pad",
    "RemapLabels",
    "RemoveLabels",
    "Resample",
    "RescaleIntensity",
    "Resize",
    "SequentialLabels",
    "To",
    "ToCanonical",
    "ToOrientation",
    "ToReferenceSpace",
    "Transpose",
    "ZNormalization",
    "intensity",
    "label",
    "spatial",
]
