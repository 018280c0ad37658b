"""Gamma and RandomGamma: per-channel power-law contrast changes (TorchIO 1.2.1).

Each channel is cast to float32 and raised to its own ``gamma``; channels with
negative values use ``sign(x) |x|^gamma``. Runs in Rust, one pass per channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native
from ...utils import to_tuple
from ..intensity_transform import IntensityTransform
from ..label._native_arrays import from_native, to_native
from ..random_transform import RandomTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["Gamma", "RandomGamma"]


class RandomGamma(RandomTransform, IntensityTransform):
    """Randomly change contrast by raising each channel to a power.

    ``gamma = exp(beta)`` with ``beta ~ U(*log_gamma)``, one draw per channel.

    Args:
        log_gamma: Range of ``beta``, ``(a, b)`` or ``d`` for ``(-d, d)``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _replaces_data = True

    def __init__(self, log_gamma: float | tuple[float, float] = (-0.3, 0.3), **kwargs: Any):
        super().__init__(**kwargs)
        self.log_gamma_range = self._parse_range(log_gamma, "log_gamma")

    def apply_transform(self, subject: Subject) -> Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        gammas: dict[str, float | Sequence[float]] = {
            name: [self.get_params(self.log_gamma_range) for _ in range(image.num_channels)]
            for name, image in images.items()
        }
        transform = Gamma(gamma=gammas, **self._get_base_args())
        result: Subject = self._apply_child(transform, subject)
        return result

    def get_params(self, log_gamma_range: tuple[float, float]) -> float:
        """Draw ``exp(U(*log_gamma_range))`` with torch's RNG."""
        return float(np.exp(self.sample_uniform(*log_gamma_range)))

    def _get_named_arguments(self) -> dict[str, object]:
        return {"log_gamma": self.log_gamma_range}


class Gamma(IntensityTransform):
    """Raise each channel of a ``(C, I, J, K)`` image to a power; returns float32.

    If a channel has negative values, ``sign(x) |x|^gamma`` is used. The inverse
    is TorchIO's approximation ``x * power(x, 1 - gamma)``.

    Args:
        gamma: One exponent, one per channel, or ``{image_name: value(s)}``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For non-finite exponents, or (when called) a number of
            exponents different from the number of channels.
    """

    _replaces_data = True

    def __init__(
        self, gamma: float | Sequence[float] | dict[str, float | Sequence[float]], **kwargs: Any
    ):
        super().__init__(**kwargs)
        for value in gamma.values() if isinstance(gamma, Mapping) else [gamma]:
            if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
                raise ValueError(f"gamma must be finite, got {value!r}")
        self.gamma = gamma
        self.args_names = ["gamma"]
        self.invert_transform = False

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            value = self.get_parameter(self.gamma, name)
            if isinstance(value, np.ndarray | torch.Tensor):
                value = value.tolist()
            gammas = [float(g) for g in to_tuple(value, length=image.num_channels)]
            if len(gammas) != image.num_channels:
                raise ValueError(
                    f"Image {name!r} has {image.num_channels} channels but {len(gammas)}"
                    " gamma values were given"
                )
            result = native().gamma(to_native(image.data), gammas, bool(self.invert_transform))
            image.set_data(from_native(result, torch.float32))
        return subject
