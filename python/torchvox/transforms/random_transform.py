"""Base class of augmentation transforms that draw random parameters."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .transform import Transform

__all__ = ["RandomTransform"]


class RandomTransform(Transform):
    """Base class of stochastic transforms.

    Every random number is drawn from torch's default generator, so
    ``torch.manual_seed`` (and PyTorch's per-worker seeding in a ``DataLoader``)
    makes results reproducible. Random transforms usually delegate to a
    deterministic counterpart, which records itself in the subject history, so
    they do not record themselves.

    Args:
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _records_history = False

    def parse_degrees(self, degrees: float | Sequence[float]) -> tuple[float, float]:
        return self._parse_range(degrees, "degrees")

    def parse_translation(self, translation: float | Sequence[float]) -> tuple[float, float]:
        return self._parse_range(translation, "translation")

    @staticmethod
    def sample_uniform(a: float, b: float) -> float:
        """Draw one float32 value from U(a, b) with torch's RNG (as TorchIO does)."""
        return float(torch.empty(1, dtype=torch.float32).uniform_(a, b).item())

    @staticmethod
    def _get_random_seed() -> int:
        """Draw a seed in [0, 2**31) from torch's RNG."""
        return int(torch.randint(0, 2**31, (1,)).item())

    @staticmethod
    def sample_uniform_sextet(params: Sequence[float]) -> tuple[float, float, float]:
        """Draw one value per axis from the ranges ``(a0, b0, a1, b1, a2, b2)``."""
        values = [RandomTransform.sample_uniform(a, b) for a, b in zip(params[::2], params[1::2])]
        if len(values) != 3:
            raise ValueError(f"Expected six range bounds, got {tuple(params)!r}")
        return values[0], values[1], values[2]
