"""torchvox: fast 3D medical image loading, preprocessing, augmentation and patch
sampling for PyTorch, with TorchIO's 1.x API (``import torchvox as tio``)."""

from ._backend import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = ["__version__", "get_num_threads", "set_num_threads"]
