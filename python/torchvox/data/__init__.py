"""Data model: images, subjects, datasets, loaders and I/O."""

from . import inference, io, sampler
from .dataset import SubjectsDataset
from .image import Image, LabelMap, ScalarImage
from .inference import GridAggregator, GridSampler
from .loader import SubjectsLoader
from .queue import Queue
from .sampler import LabelSampler, PatchSampler, UniformSampler, WeightedSampler
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
__all__ += [
    "GridAggregator",
    "GridSampler",
    "LabelSampler",
    "PatchSampler",
    "Queue",
    "UniformSampler",
    "WeightedSampler",
    "inference",
    "sampler",
]
