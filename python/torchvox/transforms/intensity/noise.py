"""Noise and RandomNoise: additive Gaussian noise (TorchIO 1.2.1 semantics).

The noise is drawn in Rust from an explicit seed with a counter-based stream
per chunk, so it is reproducible, independent of the thread count, and the
inverse subtracts exactly the same noise. (The values differ from TorchIO's,
which come from ``torch.randn``; the distribution is the same.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._backend import native, to_tensor
from ...data.pending import deferring
from ..intensity_transform import IntensityTransform
from ..label._native_arrays import to_native
from ..random_transform import RandomTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["Noise", "RandomNoise"]


class RandomNoise(RandomTransform, IntensityTransform):
    """Add Gaussian noise with random mean and standard deviation.

    Args:
        mean: Range of the mean, ``(a, b)`` or ``d`` for ``(-d, d)``.
        std: Range of the standard deviation, ``(a, b)`` or ``d`` for ``(0, d)``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For invalid ranges (e.g. a negative std).
    """

    _replaces_data = True

    def __init__(
        self,
        mean: float | tuple[float, float] = 0,
        std: float | tuple[float, float] = (0, 0.25),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.mean_range = self._parse_range(mean, "mean")
        self.std_range = self._parse_range(std, "std", min_constraint=0)

    def apply_transform(self, subject: Subject) -> Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        means: dict[str, float] = {}
        stds: dict[str, float] = {}
        seeds: dict[str, int] = {}
        for name in images:
            means[name], stds[name], seeds[name] = self.get_params(self.mean_range, self.std_range)
        transform = Noise(mean=means, std=stds, seed=seeds, **self._get_base_args())
        result: Subject = self._apply_child(transform, subject)
        return result

    def get_params(
        self, mean_range: tuple[float, float], std_range: tuple[float, float]
    ) -> tuple[float, float, int]:
        """Draw (mean, std, seed) with torch's RNG, as TorchIO."""
        mean = self.sample_uniform(*mean_range)
        std = self.sample_uniform(*std_range)
        seed = self._get_random_seed()
        return mean, std, seed

    def _get_named_arguments(self) -> dict[str, object]:
        return {"mean": self.mean_range, "std": self.std_range}


class Noise(IntensityTransform):
    """Add Gaussian noise ``N(mean, std^2)`` drawn from ``seed``.

    Output dtype as ``tensor + float32_tensor`` in PyTorch (float64 stays float64,
    others become float32). The inverse subtracts the same noise.

    Args:
        mean: Mean of the noise, or ``{image_name: mean}``.
        std: Standard deviation (>= 0), or a dict.
        seed: Integer seed, or a dict.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For a negative or non-finite std, a non-finite mean.
        TypeError: For a seed that is not an int.
    """

    _replaces_data = True

    def __init__(
        self,
        mean: float | dict[str, float],
        std: float | dict[str, float],
        seed: int | dict[str, int],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        for value in mean.values() if isinstance(mean, Mapping) else [mean]:
            if not np.isfinite(float(value)):
                raise ValueError(f"mean must be finite, got {value!r}")
        for value in std.values() if isinstance(std, Mapping) else [std]:
            if not np.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"std must be finite and non-negative, got {value!r}")
        for value in seed.values() if isinstance(seed, Mapping) else [seed]:
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"seed must be an int, got {value!r}")
        self.noise_mean = mean
        self.noise_std = std
        self.seed = seed
        self.invert_transform = False
        self.args_names = ["mean", "std", "seed"]

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            mean = float(self.get_parameter(self.noise_mean, name))
            std = float(self.get_parameter(self.noise_std, name))
            seed = int(self.get_parameter(self.seed, name)) % 2**64
            invert = bool(self.invert_transform)
            pending = image._pending_voxels() if deferring() else None
            if pending is not None and pending.accepts_noise():
                # Added to the voxels when they are computed (see data.pending).
                pending.add_noise(mean, std, seed, invert)
                continue
            result = native().noise(to_native(image.data), mean, std, seed, invert)
            image.set_data(to_tensor(result))
        return subject

    def _get_named_arguments(self) -> dict[str, object]:
        return {"mean": self.noise_mean, "std": self.noise_std, "seed": self.seed}
