"""Patch samplers (``torchvox.sampler``)."""

from typing import Any

from .label import LabelSampler
from .sampler import PatchSampler, RandomSampler
from .uniform import UniformSampler
from .weighted import WeightedSampler

__all__ = [
    "GridSampler",
    "LabelSampler",
    "PatchSampler",
    "RandomSampler",
    "UniformSampler",
    "WeightedSampler",
]


def __getattr__(name: str) -> Any:
    # GridSampler lives in torchvox.data.inference, which imports this package:
    # resolving it lazily avoids a circular import.
    if name == "GridSampler":
        from ..inference.grid_sampler import GridSampler

        return GridSampler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
