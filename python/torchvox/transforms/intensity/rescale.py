"""RescaleIntensity: linear map of intensities to a range."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native, to_tensor
from ..masking import TypeMaskingMethod, statistics_inputs
from .normalization_transform import NormalizationTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["RescaleIntensity"]


class RescaleIntensity(NormalizationTransform):
    """Rescale intensities linearly to ``out_min_max``; the output is float32.

    Computed by native kernels: one statistics pass (percentiles by counting value bits, no
    sort) and one rescaling pass, with TorchIO's float32 arithmetic. Intensities
    below/above the given percentiles of the masked voxels are clipped to them
    first; then ``[in_min, in_max]`` (default: the minimum and maximum after
    clipping) maps linearly onto ``[out_min, out_max]``. If the mask is empty or the
    input range is zero, a ``RuntimeWarning`` is issued and the image is unchanged.

    Args:
        out_min_max: Output range ``(out_min, out_max)``; a single value ``d`` means
            ``(-d, d)``.
        percentiles: Percentiles ``(low, high)`` in [0, 100] of the masked intensities
            used for clipping, e.g. ``(0.5, 99.5)`` as in nnU-Net; a single value ``d``
            means ``(0, d)``.
        masking_method: Voxels used to compute the percentiles; see
            :mod:`torchvox.transforms.masking`.
        in_min_max: Input range mapped onto the output range, e.g. ``(-1000, 1000)``
            for CT; default: the range of the clipped image.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For malformed ranges or percentiles outside [0, 100].
        TypeError: For an invalid ``masking_method``.
    """

    _replaces_data = True
    _accepts_no_mask = True

    def __init__(
        self,
        out_min_max: float | Sequence[float] = (0, 1),
        percentiles: float | Sequence[float] = (0, 100),
        masking_method: TypeMaskingMethod = None,
        in_min_max: Sequence[float] | None = None,
        **kwargs: Any,
    ):
        super().__init__(masking_method, **kwargs)
        self.out_min_max = out_min_max
        self.out_min, self.out_max = self._parse_range(out_min_max, "out_min_max")
        self.percentiles = self._parse_range(
            percentiles, "percentiles", min_constraint=0, max_constraint=100
        )
        self.in_min_max = (
            None if in_min_max is None else self._parse_range(in_min_max, "in_min_max")
        )
        self.args_names = ["out_min_max", "percentiles", "masking_method", "in_min_max"]

    def apply_normalization(
        self, subject: Subject, image_name: str, mask: torch.Tensor | None
    ) -> None:
        image = subject[image_name]
        image.set_data(self.rescale(image.data, mask, image_name))

    def rescale(
        self, tensor: torch.Tensor, mask: torch.Tensor | None, image_name: str
    ) -> torch.Tensor:
        """Return the rescaled float32 tensor (or ``tensor`` itself if not possible).

        Args:
            tensor: ``(C, I, J, K)`` data.
            mask: Boolean mask of shape ``(1, I, J, K)`` or ``(C, I, J, K)``, or None for
                all voxels.
            image_name: Name used in warnings and errors.

        Raises:
            ValueError: If the masked values contain NaN.
        """
        if mask is not None and not bool(mask.any()):
            warnings.warn(
                f'Rescaling image "{image_name}" not possible because the mask to compute'
                " the statistics is empty",
                RuntimeWarning,
                stacklevel=2,
            )
            return tensor
        volume, mask_array = statistics_inputs(tensor, mask)
        kernels = native()
        if mask_array is None:
            # No moments needed: the radix kernel finds the range and percentiles.
            total = kernels.range_percentiles(volume, list(self.percentiles))
        else:
            total = kernels.statistics(volume, mask_array, list(self.percentiles))["total"]
        if total["has_nan"]:
            raise ValueError(f'Image "{image_name}" contains NaN values')
        low, high = (float(v) for v in total["percentiles"])
        if self.in_min_max is None:
            if mask is None:
                data_min, data_max = float(total["min"]), float(total["max"])
            else:
                extremes = torch.aminmax(torch.from_numpy(volume))
                data_min, data_max = float(extremes.min), float(extremes.max)
            # The extremes of the image after clipping it to the percentiles, in float32.
            in_min = float(np.float32(min(max(data_min, low), high)))
            in_max = float(np.float32(min(max(data_max, low), high)))
        else:
            in_min, in_max = (float(v) for v in self.in_min_max)
        if in_max - in_min == 0:
            warnings.warn(
                f'Rescaling image "{image_name}" not possible because all the intensity'
                " values are the same",
                RuntimeWarning,
                stacklevel=2,
            )
            return tensor
        rescaled = kernels.rescale(
            volume,
            in_min,
            in_max,
            float(self.out_min),
            float(self.out_max),
            clip_min=low,
            clip_max=high,
        )
        return to_tensor(rescaled)
