"""TorchIO's ``torchio.transforms.augmentation.intensity`` import path."""

from ..intensity.bias_field import BiasField, RandomBiasField
from ..intensity.blur import Blur, RandomBlur
from ..intensity.gamma import Gamma, RandomGamma
from ..intensity.ghosting import Ghosting, RandomGhosting
from ..intensity.labels_to_image import LabelsToImage, RandomLabelsToImage
from ..intensity.motion import Motion, RandomMotion
from ..intensity.noise import Noise, RandomNoise
from ..intensity.spike import RandomSpike, Spike
from ..intensity.swap import RandomSwap, Swap

__all__ = [
    "BiasField",
    "Blur",
    "Gamma",
    "Ghosting",
    "LabelsToImage",
    "Motion",
    "Noise",
    "RandomBiasField",
    "RandomBlur",
    "RandomGamma",
    "RandomGhosting",
    "RandomLabelsToImage",
    "RandomMotion",
    "RandomNoise",
    "RandomSpike",
    "RandomSwap",
    "Spike",
    "Swap",
]
