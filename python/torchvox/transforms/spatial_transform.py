"""Base class of transforms that move voxels or change the image grid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .transform import Transform

if TYPE_CHECKING:
    from ..data.image import Image
    from ..data.subject import Subject

__all__ = ["SpatialTransform"]


class SpatialTransform(Transform):
    """Transform that modifies image bounds or voxel positions.

    It applies to every image of the subject (scalar images and label maps),
    restricted by ``include``/``exclude``.
    """

    def get_images(self, subject: Subject) -> list[Image]:
        """Return the images this transform applies to."""
        return subject.get_images(intensity_only=False, include=self.include, exclude=self.exclude)

    def get_images_dict(self, subject: Subject) -> dict[str, Image]:
        """Return ``{name: image}`` for the images this transform applies to."""
        return subject.get_images_dict(
            intensity_only=False, include=self.include, exclude=self.exclude
        )
