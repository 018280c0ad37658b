"""TorchIO's ``torchio.transforms.augmentation`` import path.

The random transforms live with their deterministic counterparts in
:mod:`torchvox.transforms.spatial` and :mod:`torchvox.transforms.intensity`;
this package and its modules re-export them where TorchIO users import them
from, so that ``from torchvox.transforms.augmentation import RandomTransform``
works as it does in TorchIO.
"""

from ..random_transform import RandomTransform
from . import composition, intensity, spatial

__all__ = ["RandomTransform", "composition", "intensity", "spatial"]
