"""Transforms with TorchIO 1.2.1's API: preprocessing, augmentation and containers.

``__all__`` lists the names TorchIO's ``torchio.transforms`` exports that torchvox
implements (``import torchvox as tio`` exposes them at the top level), plus SomeOf.
"""

from .composition import Compose, OneOf, SomeOf
from .fourier import FourierTransform
from .intensity import Clamp, Mask, RescaleIntensity, ZNormalization
from .intensity.bias_field import BiasField, RandomBiasField
from .intensity.blur import Blur, RandomBlur
from .intensity.gamma import Gamma, RandomGamma
from .intensity.ghosting import Ghosting, RandomGhosting
from .intensity.histogram_standardization import HistogramStandardization, train_histogram
from .intensity.labels_to_image import LabelsToImage, RandomLabelsToImage
from .intensity.motion import Motion, RandomMotion
from .intensity.noise import Noise, RandomNoise
from .intensity.normalization_transform import NormalizationTransform
from .intensity.pca import PCA
from .intensity.spike import RandomSpike, Spike
from .intensity.swap import RandomSwap, Swap
from .intensity.to import To
from .intensity_transform import IntensityTransform
from .interpolation import Interpolation
from .label import (
    Contour,
    KeepLargestComponent,
    OneHot,
    RemapLabels,
    RemoveLabels,
    SequentialLabels,
)
from .label_transform import LabelTransform
from .lambda_transform import Lambda
from .random_transform import RandomTransform
from .spatial import (
    BoundsTransform,
    CopyAffine,
    Crop,
    CropOrPad,
    EnsureShapeMultiple,
    Flip,
    Pad,
    RandomFlip,
    ToCanonical,
    ToOrientation,
    Transpose,
)
from .spatial.affine import Affine, RandomAffine
from .spatial.affine_elastic import AffineElasticDeformation, RandomAffineElasticDeformation
from .spatial.anisotropy import RandomAnisotropy
from .spatial.elastic import ElasticDeformation, RandomElasticDeformation
from .spatial.resample import Resample
from .spatial.resize import Resize
from .spatial.to_reference_space import ToReferenceSpace
from .spatial_transform import SpatialTransform
from .transform import Transform

__all__ = [
    "PCA",
    "Affine",
    "AffineElasticDeformation",
    "BiasField",
    "Blur",
    "Clamp",
    "Compose",
    "Contour",
    "CopyAffine",
    "Crop",
    "CropOrPad",
    "ElasticDeformation",
    "EnsureShapeMultiple",
    "Flip",
    "FourierTransform",
    "Gamma",
    "Ghosting",
    "HistogramStandardization",
    "IntensityTransform",
    "KeepLargestComponent",
    "LabelTransform",
    "LabelsToImage",
    "Lambda",
    "Mask",
    "Motion",
    "Noise",
    "OneHot",
    "OneOf",
    "Pad",
    "RandomAffine",
    "RandomAffineElasticDeformation",
    "RandomAnisotropy",
    "RandomBiasField",
    "RandomBlur",
    "RandomElasticDeformation",
    "RandomFlip",
    "RandomGamma",
    "RandomGhosting",
    "RandomLabelsToImage",
    "RandomMotion",
    "RandomNoise",
    "RandomSpike",
    "RandomSwap",
    "RemapLabels",
    "RemoveLabels",
    "Resample",
    "RescaleIntensity",
    "Resize",
    "SequentialLabels",
    "SomeOf",
    "SpatialTransform",
    "Spike",
    "Swap",
    "To",
    "ToCanonical",
    "ToOrientation",
    "ToReferenceSpace",
    "Transform",
    "Transpose",
    "ZNormalization",
    "train_histogram",
]

from .monai_adapter import MonaiAdapter

__all__ += ["MonaiAdapter"]

# Importable from here but, as in TorchIO, not exported at the top level.
_NOT_EXPORTED = (BoundsTransform, Interpolation, NormalizationTransform, RandomTransform)

# TorchIO's import paths of the same classes, loaded so that they are attributes too.
from . import augmentation, preprocessing  # noqa: E402, F401  (tio.transforms.augmentation...)
