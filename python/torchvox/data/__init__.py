"""Data model: images, subjects, datasets, loaders and I/O."""

from . import inference, io, sampler
from .cached_memory import release_cached_memory
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
    "release_cached_memory",
    "sampler",
]
