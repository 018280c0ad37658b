"""TorchIO's ``torchio.transforms.preprocessing.spatial`` import path."""

from ..spatial import (
    CopyAffine,
    Crop,
    CropOrPad,
    EnsureShapeMultiple,
    Pad,
    ToCanonical,
    ToOrientation,
    Transpose,
)
from ..spatial.bounds_transform import BoundsTransform
from ..spatial.resample import Resample
from ..spatial.resize import Resize
from ..spatial.to_reference_space import ToReferenceSpace

__all__ = [
    "BoundsTransform",
    "CopyAffine",
    "Crop",
    "CropOrPad",
    "EnsureShapeMultiple",
    "Pad",
    "Resample",
    "Resize",
    "ToCanonical",
    "ToOrientation",
    "ToReferenceSpace",
    "Transpose",
]
