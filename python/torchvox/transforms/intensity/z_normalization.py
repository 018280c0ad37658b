"""ZNormalization: subtract the mean and divide by the standard deviation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native, to_tensor
from ..masking import TypeMaskingMethod, statistics_inputs
from .normalization_transform import NormalizationTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["ZNormalization"]


class ZNormalization(NormalizationTransform):
    """Standardise intensities: ``(x - mean) / std``; the output is float32.

    The mean and the (unbiased) standard deviation are computed over the masked
    voxels of all channels, in one pass of a native kernel (float64 sums; TorchIO
    sums in float32, so results agree to float32 rounding).

    Args:
        masking_method: Voxels used for the statistics; see
            :mod:`torchvox.transforms.masking`.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: For an invalid ``masking_method``.
        RuntimeError: When called, if the standard deviation of the masked voxels is
            zero or the mask is empty.
    """

    _replaces_data = True
    # No mask array is built when every voxel counts.
    _accepts_no_mask = True

    def __init__(self, masking_method: TypeMaskingMethod = None, **kwargs: Any):
        super().__init__(masking_method, **kwargs)

    def apply_normalization(
        self, subject: Subject, image_name: str, mask: torch.Tensor | None
    ) -> None:
        image = subject[image_name]
        normalized = self.znorm(image.data, mask)
        if normalized is None:
            raise RuntimeError(
                f'Standard deviation is 0 for masked values in image "{image_name}" ({image.path})'
            )
        image.set_data(normalized)

    @staticmethod
    def znorm(tensor: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        """Return the standardised float32 tensor, or None if the std is zero.

        Args:
            tensor: ``(C, I, J, K)`` data.
            mask: Boolean mask of shape ``(1, I, J, K)`` or ``(C, I, J, K)``, or None for
                all voxels.

        Raises:
            RuntimeError: If the mask selects fewer than two voxels.
            ValueError: If the masked values contain NaN.
        """
        if mask is not None and not bool(mask.any()):
            raise RuntimeError("The mask used to compute the statistics is empty")
        volume, mask_array = statistics_inputs(tensor, mask)
        kernels = native()
        total = kernels.statistics(volume, mask_array)["total"]
        if total["has_nan"]:
            raise ValueError("The values used to compute the statistics contain NaN")
        if total["count"] < 2:
            raise RuntimeError("The standard deviation needs at least two voxels in the mask")
        mean, std = float(total["mean"]), float(total["std_unbiased"])
        # TorchIO compares its float32 std with zero.
        if np.float32(std) == 0:
            return None
        return to_tensor(kernels.z_normalize(volume, mean, std))
