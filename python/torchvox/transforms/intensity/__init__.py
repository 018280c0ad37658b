"""Intensity transforms: normalisation, clamping, masking."""

from .clamp import Clamp
from .mask import Mask
from .rescale import RescaleIntensity
from .z_normalization import ZNormalization

__all__ = ["Clamp", "Mask", "RescaleIntensity", "ZNormalization"]
