"""TorchIO's ``torchio.transforms.preprocessing.intensity`` import path."""

from ..intensity import Clamp, Mask, RescaleIntensity, ZNormalization
from ..intensity.histogram_standardization import HistogramStandardization
from ..intensity.normalization_transform import NormalizationTransform
from ..intensity.pca import PCA
from ..intensity.to import To

__all__ = [
    "PCA",
    "Clamp",
    "HistogramStandardization",
    "Mask",
    "NormalizationTransform",
    "RescaleIntensity",
    "To",
    "ZNormalization",
]
