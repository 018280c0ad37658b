"""Data model: images, subjects, datasets, loaders and I/O."""

from . import io
from .dataset import SubjectsDataset
from .image import Image, LabelMap, ScalarImage
from .loader import SubjectsLoader
from .subject import Subject

__all__ = [
    "Image",
    "LabelMap",
    "ScalarImage",
    "Subject",
    "SubjectsDataset",
    "SubjectsLoader",
    "io",
]
