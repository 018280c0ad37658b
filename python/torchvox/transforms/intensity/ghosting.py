"""Ghosting and RandomGhosting: MRI ghosting artefacts (TorchIO 1.2.1 semantics).

Every ``num_ghosts``-th plane of the centred k-space along one axis is scaled by
``1 - intensity`` and the central planes are restored. The Rust kernel runs 1D
real FFTs along that axis only, which gives the same result as TorchIO's 3D FFTs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

__all__ = ["Ghosting", "RandomGhosting"]


def _values(value: object) -> list[Any]:
    return list(value.values()) if isinstance(value, Mapping) else [value]


class RandomGhosting(RandomTransform, IntensityTransform):
    """Add random MRI ghosting artefacts.

    Args:
        num_ghosts: Number of ghosts ``n``; ``(a, b)`` draws ``n ~ U{a, ..., b}``, a
            single ``d`` draws from ``U{0, ..., d}``.
        axes: Axis, or axes to choose from at random, along which ghosts appear.
            As in TorchIO, anatomical (string) axes only trigger an orientation
            check and are then ignored when drawing.
        intensity: Artefact strength ``s`` relative to the k-space maximum;
            ``(a, b)`` draws ``s ~ U(a, b)``, a single ``d`` draws ``U(0, d)``.
        restore: Fraction of the k-space centre restored after removing the
            planes (``None``: only the central plane); a range as for ``intensity``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: If ``axes`` is None or holds ints other than 0, 1, 2, or a range
            is invalid.
    """

    _replaces_data = True

    def __init__(
        self,
        num_ghosts: int | tuple[int, int] = (4, 10),
        axes: int | str | Sequence[int | str] = (0, 1, 2),
        intensity: float | tuple[float, float] = (0.5, 1),
        restore: float | tuple[float, float] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if axes is None:
            raise ValueError("Axes cannot be None")
        axes_tuple = (axes,) if isinstance(axes, int | str) else tuple(axes)
        for axis in axes_tuple:
            if not isinstance(axis, str) and axis not in (0, 1, 2):
                raise ValueError(f'Axes must be in (0, 1, 2), not "{axes}"')
        self.axes = axes_tuple
        self.num_ghosts_range = self._parse_range(
            num_ghosts, "num_ghosts", min_constraint=0, type_constraint=int
        )
        self.intensity_range = self._parse_range(intensity, "intensity_range", min_constraint=0)
        self.restore = (
            None
            if restore is None
            else self._parse_range(restore, "restore", min_constraint=0, max_constraint=1)
        )

    def apply_transform(self, subject: Subject) -> Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        if any(isinstance(axis, str) for axis in self.axes):
            subject.check_consistent_orientation()
        num_ghosts_by_name: dict[str, int] = {}
        axis_by_name: dict[str, int] = {}
        intensity_by_name: dict[str, float] = {}
        restore_by_name: dict[str, float | None] = {}
        for name, image in images.items():
            axes = tuple(a for a in self.axes if a != 2) if image.is_2d() else self.axes
            low, high = self.num_ghosts_range
            (
                num_ghosts_by_name[name],
                axis_by_name[name],
                intensity_by_name[name],
                restore_by_name[name],
            ) = self.get_params(
                (int(low), int(high)),
                tuple(int(a) for a in axes if not isinstance(a, str)),
                self.intensity_range,
                self.restore,
            )
        transform = Ghosting(
            num_ghosts=num_ghosts_by_name,
            axis=axis_by_name,
            intensity=intensity_by_name,
            restore=restore_by_name,
            **self._get_base_args(),
        )
        result: Subject = self._apply_child(transform, subject)
        return result

    def get_params(
        self,
        num_ghosts_range: tuple[int, int],
        axes: tuple[int, ...],
        intensity_range: tuple[float, float],
        restore_range: tuple[float, float] | None,
    ) -> tuple[int, int, float, float | None]:
        """Draw (num_ghosts, axis, intensity, restore) with torch's RNG, as TorchIO."""
        low, high = num_ghosts_range
        num_ghosts = int(torch.randint(low, high + 1, (1,)).item())
        axis = axes[int(torch.randint(0, len(axes), (1,)).item())]
        intensity = self.sample_uniform(*intensity_range)
        restore = None if restore_range is None else self.sample_uniform(*restore_range)
        return num_ghosts, axis, intensity, restore

    def _get_named_arguments(self) -> dict[str, object]:
        return {
            "num_ghosts": self.num_ghosts_range,
            "axes": self.axes,
            "intensity": self.intensity_range,
            "restore": self.restore,
        }


class Ghosting(IntensityTransform, FourierTransform):
    """Add MRI ghosting artefacts.

    Each channel of a ``(C, I, J, K)`` image gets the artefact; the output is
    float32 (TorchIO's ``.real.float()``), unless ``num_ghosts`` or ``intensity``
    is 0, in which case the image is returned unchanged.

    Args:
        num_ghosts: Number of ghosts (int >= 0), or ``{image_name: value}``.
        axis: Spatial axis 0, 1 or 2 along which ghosts appear, or a dict.
        intensity: Artefact strength relative to the k-space maximum, or a dict.
        restore: Fraction in ``[0, 1]`` of the k-space centre to restore
            (``None``: the central plane only), or a dict.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For negative ``num_ghosts``, an axis not in 0..2, a non-finite
            intensity or a ``restore`` outside ``[0, 1]``.
    """

    _replaces_data = True

    def __init__(
        self,
        num_ghosts: int | dict[str, int],
        axis: int | dict[str, int],
        intensity: float | dict[str, float],
        restore: float | dict[str, float | None] | None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        for value in _values(num_ghosts):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"num_ghosts must be a non-negative int, got {value!r}")
        for value in _values(axis):
            if isinstance(value, bool) or value not in (0, 1, 2):
                raise ValueError(f"axis must be 0, 1 or 2, got {value!r}")
        for value in _values(intensity):
            if not np.isfinite(float(value)):
                raise ValueError(f"intensity must be finite, got {value!r}")
        for value in _values(restore):
            if value is not None and not 0 <= float(value) <= 1:
                raise ValueError(f"restore must be None or in [0, 1], got {value!r}")
        self.num_ghosts = num_ghosts
        self.axis = axis
        self.intensity = intensity
        self.restore = restore
        self.args_names = ["num_ghosts", "axis", "intensity", "restore"]

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            num_ghosts = int(self.get_parameter(self.num_ghosts, name))
            axis = int(self.get_parameter(self.axis, name))
            intensity = float(self.get_parameter(self.intensity, name))
            restore = self.get_parameter(self.restore, name)
            if not num_ghosts or not intensity:
                continue  # TorchIO returns the channels untouched
            result = native().ghosting(
                to_native(image.data),
                num_ghosts,
                axis,
                intensity,
                None if restore is None else float(restore),
            )
            image.set_data(from_native(result, torch.float32))
        return subject
