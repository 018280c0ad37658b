"""Spatial transforms: flips, crops, pads, reorientation."""

from .bounds_transform import BoundsTransform
from .copy_affine import CopyAffine
from .crop import Crop
from .crop_or_pad import CropOrPad
from .ensure_shape_multiple import EnsureShapeMultiple
from .flip import Flip, RandomFlip
from .orientation import ToCanonical, ToOrientation, Transpose
from .pad import Pad

__all__ = [
    "BoundsTransform",
    "CopyAffine",
    "Crop",
    "CropOrPad",
    "EnsureShapeMultiple",
    "Flip",
    "Pad",
    "RandomFlip",
    "ToCanonical",
    "ToOrientation",
    "Transpose",
]
