"""torchvox: fast 3D medical image loading, preprocessing, augmentation and patch
sampling for PyTorch, with TorchIO's 1.x API (``import torchvox as tio``)."""

from . import constants, data, datasets, transforms, types, utils
from ._backend import get_num_threads, set_num_threads
from .constants import *  # noqa: F403
from .data import (
    GridAggregator,
    GridSampler,
    Image,
    LabelMap,
    LabelSampler,
    Queue,
    ScalarImage,
    Subject,
    SubjectsDataset,
    SubjectsLoader,
    UniformSampler,
    WeightedSampler,
    inference,
    io,
    sampler,
)
from .transforms import *  # noqa: F403

__version__ = "0.1.0"

__all__ = [
    "Image",
    "LabelMap",
    "ScalarImage",
    "Subject",
    "SubjectsDataset",
    "SubjectsLoader",
    "__version__",
    "constants",
    "data",
    "datasets",
    "get_num_threads",
    "io",
    "set_num_threads",
    "types",
    "utils",
]
__all__ += ["transforms", *transforms.__all__]
__all__ += [
    "GridAggregator",
    "GridSampler",
    "LabelSampler",
    "Queue",
    "UniformSampler",
    "WeightedSampler",
    "inference",
    "sampler",
]
# Batch preprocessing of folders / CSVs (local processes or Dask) and plots.
from . import visualization  # noqa: E402
from .processing import PreprocessReport, preprocess  # noqa: E402

__all__ += ["PreprocessReport", "preprocess", "visualization"]
# Conversion from/to TorchIO objects.
from .interop import from_torchio, to_torchio  # noqa: E402

__all__ += ["from_torchio", "to_torchio"]
# TorchIO's ``tio.download`` helpers (download_url, extract_archive, MD5 checks).
from . import download  # noqa: E402

__all__ += ["download"]
