"""Base class of transforms that modify label maps only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .transform import Transform

if TYPE_CHECKING:
    from ..data.image import LabelMap
    from ..data.subject import Subject

__all__ = ["LabelTransform"]


class LabelTransform(Transform):
    """Transform that modifies :class:`~torchvox.LabelMap` instances only."""

    def get_images_dict(self, subject: Subject) -> dict[str, LabelMap]:
        """Return ``{name: label_map}`` for the label maps this transform applies to."""
        from ..data.image import LabelMap

        images = subject.get_images_dict(
            intensity_only=False, include=self.include, exclude=self.exclude
        )
        return {name: image for name, image in images.items() if isinstance(image, LabelMap)}

    def get_images(self, subject: Subject) -> list[LabelMap]:
        """Return the label maps this transform applies to."""
        return list(self.get_images_dict(subject).values())
