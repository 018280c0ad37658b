"""Base class of the intensity normalisations computed over a mask."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..intensity_transform import IntensityTransform
from ..masking import TypeMaskingMethod, validate_masking_method

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["NormalizationTransform"]


class NormalizationTransform(IntensityTransform):
    """Base class of :class:`RescaleIntensity` and :class:`ZNormalization`.

    Subclasses implement :meth:`apply_normalization`, which is called once per
    intensity image with the voxels its statistics come from.

    Args:
        masking_method: Voxels the statistics are computed over; see
            :mod:`torchvox.transforms.masking`. ``None`` means every voxel.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: For an invalid ``masking_method``.
    """

    #: Whether :meth:`apply_normalization` accepts ``None`` for "every voxel".
    #: The built-in normalisations do, so that their kernels skip the mask; a
    #: user's subclass gets a boolean tensor, as in TorchIO.
    _accepts_no_mask: ClassVar[bool] = False

    def __init__(self, masking_method: TypeMaskingMethod = None, **kwargs: Any):
        super().__init__(**kwargs)
        validate_masking_method(masking_method)
        self.masking_method = masking_method
        self.args_names = ["masking_method"]

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            if self.masking_method is None and self._accepts_no_mask:
                mask = None
            else:
                mask = self.get_mask_from_masking_method(self.masking_method, subject, image.data)
            self.apply_normalization(subject, name, mask)
        return subject

    def apply_normalization(
        self, subject: Subject, image_name: str, mask: torch.Tensor | None
    ) -> None:
        """Normalise ``subject[image_name]`` in place.

        Args:
            subject: The subject being transformed (a copy, if ``copy=True``).
            image_name: Name of the intensity image to normalise.
            mask: Boolean ``(1, W, H, D)`` or ``(C, W, H, D)`` tensor of the
                voxels to compute statistics over (``None`` only for the
                built-in subclasses, meaning every voxel).
        """
        raise NotImplementedError
