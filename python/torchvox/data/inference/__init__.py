"""Dense inference by patches (``torchvox.inference``)."""

from .aggregator import GridAggregator
from .grid_sampler import GridSampler

__all__ = ["GridAggregator", "GridSampler"]
