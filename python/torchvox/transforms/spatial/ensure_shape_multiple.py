"""EnsureShapeMultiple: crop or pad so every spatial size is a multiple of n."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..spatial_transform import SpatialTransform
from .crop_or_pad import CropOrPad

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["EnsureShapeMultiple"]


class EnsureShapeMultiple(SpatialTransform):
    """Crop or pad so the size along each spatial axis is a multiple of ``n``.

    Useful for networks that downsample several times, e.g. a U-Net with three
    poolings needs multiples of 8. Delegates to :class:`CropOrPad`, whose
    :class:`Pad`/:class:`Crop` are recorded in the history. With ``'crop'``, an axis
    shorter than its multiple becomes 1 voxel long (so 2D images keep their
    singleton axis).

    Args:
        target_multiple: ``n`` for every axis, or ``(n_i, n_j, n_k)``.
        method: ``'pad'`` rounds sizes up, ``'crop'`` rounds them down.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: If a multiple is not a positive integer or ``method`` is invalid.
    """

    _replaces_data = True

    _records_history = False

    def __init__(
        self,
        target_multiple: int | Sequence[int],
        *,
        method: str = "pad",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if isinstance(target_multiple, int | np.integer):
            multiples: list[Any] = [target_multiple] * 3
        elif isinstance(target_multiple, Sequence | np.ndarray) and not isinstance(
            target_multiple, str
        ):
            multiples = list(target_multiple)
        else:
            raise ValueError(f'"target_multiple" must be an int or 3 ints, got {target_multiple!r}')
        if len(multiples) != 3 or not all(
            isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0 for n in multiples
        ):
            raise ValueError(
                '"target_multiple" must be a positive int or 3 positive ints,'
                f" got {target_multiple!r}"
            )
        self.target_multiple = np.array([int(n) for n in multiples])
        if method not in ("crop", "pad"):
            raise ValueError(f"\"method\" must be 'crop' or 'pad', got {method!r}")
        self.method = method
        self.args_names = ["target_multiple", "method"]

    def _get_reproducing_arguments(self) -> dict[str, object]:
        arguments = super()._get_reproducing_arguments()
        arguments["target_multiple"] = tuple(int(n) for n in self.target_multiple)
        return arguments

    def apply_transform(self, subject: Subject) -> Subject:
        source = np.asarray(subject.spatial_shape, dtype=np.int64)
        multiple = self.target_multiple
        if self.method == "crop":
            target = (source // multiple) * multiple
        else:
            target = -(-source // multiple) * multiple
        target = np.maximum(target, 1)
        crop_or_pad = CropOrPad(
            tuple(int(n) for n in target),
            copy=self.copy,
            include=self.include,
            exclude=self.exclude,
            keep=None,
            parse_input=self.parse_input,
            label_keys=self.label_keys,
        )
        result: Subject = self._apply_child(crop_or_pad, subject)
        return result
