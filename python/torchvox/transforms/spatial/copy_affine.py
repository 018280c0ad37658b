"""CopyAffine: give every image the affine of a reference image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..spatial_transform import SpatialTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["CopyAffine"]


class CopyAffine(SpatialTransform):
    """Copy the affine of the image ``target`` to the other images of the subject.

    Meant for affines that differ only by rounding (e.g. after format conversions),
    which would otherwise fail the subject's consistency checks. Use with care: a
    wrong affine misplaces anatomy (e.g. left and right).

    Args:
        target: Name of the reference image in the subject.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: If ``target`` is not a string.
        RuntimeError: When called, if ``target`` is not in the subject.
    """

    _replaces_data = True

    def __init__(self, target: str, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(target, str):
            raise ValueError(
                f'"target" must be a string, got {target!r} of type {type(target).__name__}'
            )
        self.target = target
        self.args_names = ["target"]

    def apply_transform(self, subject: Subject) -> Subject:
        if self.target not in subject:
            raise RuntimeError(f'Target image "{self.target}" not found in subject')
        reference = subject.get_image(self.target)
        affine = np.array(reference.affine, dtype=np.float64)
        for image in self.get_images(subject):
            if image is reference:
                continue
            # Load first: a lazy image would otherwise read its affine from the file.
            image.load()
            image.affine = affine.copy()
        return subject
