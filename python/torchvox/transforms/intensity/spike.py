"""Spike and RandomSpike: MRI spike (herringbone) artefacts (TorchIO 1.2.1 semantics).

Each spike adds ``intensity * max|k|`` at one position of the centred k-space.
The Rust kernel adds the corresponding cosines analytically instead of running
FFTs, reproducing TorchIO's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native
from ..fourier import FourierTransform
from ..intensity_transform import IntensityTransform
from ..label._native_arrays import from_native, to_native
from ..random_transform import RandomTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["RandomSpike", "Spike"]


def _parse_positions(positions: object) -> np.ndarray:
    """Validate spike positions: an ``(N, 3)`` array of values in ``[0, 1)``."""
    array = np.asarray(positions, dtype=float)
    if array.size == 0:
        return array.reshape(0, 3)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"spikes_positions must have shape (N, 3), got {array.shape}")
    if not np.all((array >= 0) & (array < 1)):
        raise ValueError(f"spikes_positions must be in [0, 1), got {positions!r}")
    return np.asarray(positions)


class RandomSpike(RandomTransform, IntensityTransform, FourierTransform):
    """Add random MRI spike artefacts.

    Args:
        num_spikes: Number of spikes ``n``; ``(a, b)`` draws ``n ~ U{a, ..., b}``.
        intensity: Ratio ``r`` between the spike intensity and the k-space maximum;
            ``(a, b)`` draws ``r ~ U(a, b)``, a single ``d`` draws ``U(-d, d)``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _replaces_data = True

    def __init__(
        self,
        num_spikes: int | tuple[int, int] = (1, 1),
        intensity: float | tuple[float, float] = (1, 3),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.intensity_range = self._parse_range(intensity, "intensity_range")
        self.num_spikes_range = self._parse_range(
            num_spikes, "num_spikes", min_constraint=0, type_constraint=int
        )

    def apply_transform(self, subject: Subject) -> Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        positions: dict[str, np.ndarray] = {}
        intensities: dict[str, float] = {}
        for name in images:
            positions[name], intensities[name] = self.get_params(
                self.num_spikes_range, self.intensity_range
            )
        transform = Spike(
            spikes_positions=positions, intensity=intensities, **self._get_base_args()
        )
        result: Subject = self._apply_child(transform, subject)
        return result

    def get_params(
        self, num_spikes_range: tuple[int, int], intensity_range: tuple[float, float]
    ) -> tuple[np.ndarray, float]:
        """Draw spike positions ``(N, 3)`` in ``[0, 1)`` and the intensity, as TorchIO."""
        low, high = num_spikes_range
        num_spikes = int(torch.randint(int(low), int(high) + 1, (1,)).item())
        intensity = self.sample_uniform(*intensity_range)
        positions = torch.rand(num_spikes, 3).numpy()
        return positions, intensity

    def _get_named_arguments(self) -> dict[str, object]:
        return {"num_spikes": self.num_spikes_range, "intensity": self.intensity_range}


class Spike(IntensityTransform, FourierTransform):
    """Add MRI spike artefacts.

    For a ``(C, I, J, K)`` image, position ``p`` in ``[0, 1)^3`` selects the
    centred k-space index ``floor(p * (I, J, K))``. Output is float32, unless
    there are no spikes or ``intensity`` is 0 (image returned unchanged).

    Args:
        spikes_positions: ``(N, 3)`` positions in ``[0, 1)``, or ``{image_name: positions}``.
        intensity: Ratio between each spike and the k-space maximum, or a dict.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: If positions are not ``(N, 3)`` values in ``[0, 1)`` or the
            intensity is not finite.
    """

    _replaces_data = True

    def __init__(
        self,
        spikes_positions: np.ndarray | dict[str, np.ndarray],
        intensity: float | dict[str, float],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        values = (
            spikes_positions.values()
            if isinstance(spikes_positions, Mapping)
            else [spikes_positions]
        )
        for positions in values:
            _parse_positions(positions)
        for value in intensity.values() if isinstance(intensity, Mapping) else [intensity]:
            if not np.isfinite(float(value)):
                raise ValueError(f"intensity must be finite, got {value!r}")
        self.spikes_positions = spikes_positions
        self.intensity = intensity
        self.args_names = ["spikes_positions", "intensity"]
        self.invert_transform = False

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            positions = _parse_positions(self.get_parameter(self.spikes_positions, name))
            intensity = float(self.get_parameter(self.intensity, name))
            if intensity == 0 or len(positions) == 0:
                continue  # TorchIO returns the channels untouched
            shape = np.array(image.spatial_shape)
            indices = np.floor(positions * shape).astype(int)
            result = native().spike(
                to_native(image.data),
                [tuple(int(v) for v in index) for index in indices.tolist()],
                intensity,
                self.invert_transform,
            )
            image.set_data(from_native(result, torch.float32))
        return subject
