"""Flip (deterministic) and RandomFlip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native, to_numpy, to_tensor
from ..random_transform import RandomTransform
from ..spatial_transform import SpatialTransform
from ..transform import kernel_supports

if TYPE_CHECKING:
    from ...data.image import Image
    from ...data.subject import Subject

__all__ = ["Flip", "RandomFlip"]

_AXIS_LETTERS = "LRAPISTB"


def _parse_axes(axes: object) -> tuple[int | str, ...]:
    """Validate flip axes: ints in (0, 1, 2) or anatomical names.

    Raises:
        ValueError: For other ints or names whose first letter is not one of
            L, R, A, P, I, S, T, B.
    """
    if isinstance(axes, str) or not isinstance(axes, Sequence | np.ndarray | torch.Tensor):
        values: tuple[Any, ...] = (axes,)
    else:
        values = tuple(np.asarray(axes).tolist()) if not isinstance(axes, Sequence) else tuple(axes)
    for axis in values:
        if isinstance(axis, str):
            if not axis or axis[0].upper() not in _AXIS_LETTERS:
                raise ValueError(
                    f'Axis names in "axes" must start with one of {tuple(_AXIS_LETTERS)},'
                    f" got {axis!r}"
                )
        elif (
            isinstance(axis, bool)
            or not isinstance(axis, int | np.integer)
            or axis not in (0, 1, 2)
        ):
            raise ValueError(f'All "axes" must be 0, 1 or 2 or anatomical names, got {axes!r}')
    return tuple(a if isinstance(a, str) else int(a) for a in values)


def _resolve_axes(subject: Subject, axes: Sequence[int | str]) -> list[int]:
    """Turn anatomical names into spatial indices using the subject orientation."""
    if not any(isinstance(axis, str) for axis in axes):
        return sorted({int(axis) for axis in axes})
    subject.check_consistent_orientation()
    image = subject.get_first_image()
    resolved = set()
    for axis in axes:
        if isinstance(axis, str):
            resolved.add(3 + image.axis_name_to_index(axis))
        else:
            resolved.add(int(axis))
    return sorted(resolved)


def flip_tensor(tensor: torch.Tensor, axes: Sequence[int]) -> torch.Tensor:
    """Return a new ``(C, I, J, K)`` tensor reversed along spatial ``axes`` (0, 1, 2)."""
    if kernel_supports(tensor):
        return to_tensor(native().flip(to_numpy(tensor), list(axes)))
    return torch.flip(tensor, [1 + axis for axis in axes])


def _flip_image(image: Image, axes: Sequence[int]) -> None:
    image.set_data(flip_tensor(image.data, axes))


class Flip(SpatialTransform):
    """Reverse the order of voxels along the given axes.

    The affine is not modified (as in TorchIO): the image content is mirrored
    in world space.

    Args:
        axes: Index or tuple of indices of spatial dimensions (0, 1, 2), or anatomical
            names (``'Left'``, ``'AP'``, ``'i'``...; only the first letter counts),
            resolved through the image orientation; ``'Top'``/``'Bottom'`` name the
            second axis of 2D images.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For invalid axes.
    """

    _replaces_data = True

    def __init__(self, axes: int | str | Sequence[int | str], **kwargs: Any):
        super().__init__(**kwargs)
        self.axes = _parse_axes(axes)
        self.args_names = ["axes"]

    def apply_transform(self, subject: Subject) -> Subject:
        axes = _resolve_axes(subject, self.axes)
        if axes:
            for image in self.get_images(subject):
                _flip_image(image, axes)
        return subject

    def is_invertible(self) -> bool:
        return True

    def inverse(self) -> Flip:
        # A flip is its own inverse.
        return self


class RandomFlip(RandomTransform, SpatialTransform):
    """Reverse the order of voxels along axes chosen at random.

    Three uniform numbers are drawn with ``torch.rand(3)`` (as in TorchIO); axis ``i``
    flips if ``flip_probability > u[i]`` and ``i`` is one of ``axes``. The applied
    :class:`Flip` is recorded in the subject history.

    Args:
        axes: Candidate axes, as in :class:`Flip`.
        flip_probability: Probability that each candidate axis is flipped.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For invalid axes or a probability outside [0, 1].
    """

    _replaces_data = True

    def __init__(
        self,
        axes: int | str | Sequence[int | str] = 0,
        flip_probability: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.axes = _parse_axes(axes)
        self.flip_probability = self.parse_probability(flip_probability, "flip_probability")
        self.args_names = ["axes", "flip_probability"]

    @staticmethod
    def get_params(probability: float) -> list[bool]:
        """Draw, for each of the three axes, whether it flips."""
        flips: list[bool] = (probability > torch.rand(3)).tolist()
        return flips

    def apply_transform(self, subject: Subject) -> Subject:
        candidates = _resolve_axes(subject, self.axes)
        flips = self.get_params(self.flip_probability)
        axes = [axis for axis in range(3) if flips[axis] and axis in candidates]
        if not axes:
            return subject
        arguments = self._get_base_args()
        # This transform re-adds kept images itself; the child need not copy them too.
        arguments["keep"] = None
        flip = Flip(axes=axes, **arguments)
        result: Subject = self._apply_child(flip, subject)
        return result
