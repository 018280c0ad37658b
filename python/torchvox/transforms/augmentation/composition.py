"""TorchIO's ``torchio.transforms.augmentation.composition`` import path."""

from ..composition import Compose, OneOf, SomeOf

__all__ = ["Compose", "OneOf", "SomeOf"]
