"""Base class of transforms that change voxel intensities of scalar images only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar, cast

from .transform import Transform

if TYPE_CHECKING:
    from ..data.image import ScalarImage
    from ..data.subject import Subject

__all__ = ["IntensityTransform"]

ValueT = TypeVar("ValueT")


class IntensityTransform(Transform):
    """Transform that modifies voxel intensities.

    It applies to :class:`~torchvox.ScalarImage` instances only (label maps are left
    untouched), restricted by ``include``/``exclude``.
    """

    def get_images_dict(self, subject: Subject) -> dict[str, ScalarImage]:
        """Return ``{name: image}`` for the scalar images this transform applies to."""
        return subject.get_images_dict(
            intensity_only=True, include=self.include, exclude=self.exclude
        )

    def get_images(self, subject: Subject) -> list[ScalarImage]:
        """Return the scalar images this transform applies to."""
        return subject.get_images(intensity_only=True, include=self.include, exclude=self.exclude)

    @staticmethod
    def get_parameter(value: ValueT | Mapping[str, ValueT], name: str) -> ValueT:
        """Return ``value[name]`` for per-image parameter dicts, else ``value``."""
        if isinstance(value, Mapping):
            return cast(Mapping[str, ValueT], value)[name]
        return value

    def arguments_are_dict(self) -> bool:
        """Whether the reproducing arguments are per-image dicts.

        Raises:
            ValueError: If only some of them are dicts.
        """
        are_dict = [isinstance(value, dict) for value in self._get_named_arguments().values()]
        if all(are_dict):
            return True
        if not any(are_dict):
            return False
        raise ValueError("Either all or none of the arguments must be dicts")
