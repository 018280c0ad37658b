"""Pad: add voxels around the image, keeping world positions."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from numbers import Number
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native, to_numpy, to_tensor
from ..masking import TypeBounds
from ..transform import kernel_supports
from .bounds_transform import BoundsTransform

if TYPE_CHECKING:
    from ...data.image import Image
    from ...data.subject import Subject

__all__ = [
    "Pad",
    "PaddingModeError",
    "check_padding_mode",
    "pad_and_crop_tensor",
    "pad_tensor",
    "padded_affine",
]

#: NumPy modes forwarded as such (statistics are handled by torchvox, see Pad).
PADDING_MODES = (
    "empty",
    "edge",
    "wrap",
    "constant",
    "linear_ramp",
    "maximum",
    "mean",
    "median",
    "minimum",
    "reflect",
    "symmetric",
)
STATISTIC_MODES = ("maximum", "mean", "median", "minimum")


class PaddingModeError(KeyError, ValueError):
    """Invalid padding mode (a KeyError, as in TorchIO, and a ValueError)."""

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0]) if self.args else ""


def check_padding_mode(padding_mode: object, argument: str = "padding_mode") -> None:
    """Check a padding mode: a number, a NumPy mode name or a callable.

    Raises:
        PaddingModeError: Otherwise.
    """
    if isinstance(padding_mode, bool):
        valid = False
    else:
        valid = (
            isinstance(padding_mode, Number)
            or callable(padding_mode)
            or (isinstance(padding_mode, str) and padding_mode in PADDING_MODES)
        )
    if not valid:
        raise PaddingModeError(
            f'"{argument}" {padding_mode!r} is not valid. Valid options are'
            f" {list(PADDING_MODES)}, a number or a function"
        )


def _statistic(data: torch.Tensor, mode: str) -> float:
    """Statistic of the whole image (all channels) used as constant padding value.

    TorchIO computes it on the data converted to float32, so the median of a float64
    image is that of its float32 values.
    """
    if not kernel_supports(data):
        values = data.float()
        if mode == "maximum":
            return float(values.max().item())
        if mode == "minimum":
            return float(values.min().item())
        if mode == "mean":
            return float(values.mean().item())
        return float(np.median(values.numpy()))
    if mode == "median" and data.dtype not in (torch.float32, torch.int16, torch.uint8):
        data = data.float()
    percentiles = [50.0] if mode == "median" else []
    total = native().statistics(to_numpy(data), None, percentiles)["total"]
    if mode == "maximum":
        return float(total["max"])
    if mode == "minimum":
        return float(total["min"])
    if mode == "mean":
        return float(total["mean"])
    return float(total["percentiles"][0])


#: NumPy modes the crop_pad kernel implements (with the constant or ramp end value).
_KERNEL_MODES = ("constant", "empty", "edge", "wrap", "reflect", "symmetric", "linear_ramp")


def _mode_and_value(tensor: torch.Tensor, padding_mode: Any) -> tuple[Any, float]:
    """Kernel mode name (or the callable) and constant/ramp value for ``padding_mode``."""
    if isinstance(padding_mode, Number) and not isinstance(padding_mode, bool):
        return "constant", float(padding_mode)  # type: ignore[arg-type]
    if isinstance(padding_mode, str) and padding_mode in STATISTIC_MODES:
        return "constant", _statistic(tensor, padding_mode)
    return padding_mode, 0.0


def _numpy_pad(
    tensor: torch.Tensor, bounds: Sequence[int], mode: Any, value: float
) -> torch.Tensor:
    i0, i1, j0, j1, k0, k1 = bounds
    widths = ((0, 0), (i0, i1), (j0, j1), (k0, k1))
    array = tensor.numpy()
    if mode == "constant":
        if not tensor.is_floating_point() and math.isfinite(value):
            value = float(math.trunc(value))  # NumPy assigns floats to ints by truncation
        padded = np.pad(array, widths, mode="constant", constant_values=value)
    else:
        padded = np.pad(array, widths, mode=mode)
    return torch.from_numpy(np.ascontiguousarray(padded))


def pad_and_crop_tensor(
    tensor: torch.Tensor,
    padding: Sequence[int],
    cropping: Sequence[int],
    padding_mode: str | float | Callable[..., Any] = 0,
) -> torch.Tensor:
    """Pad then crop a ``(C, I, J, K)`` tensor, in one pass when a kernel can.

    The result equals :func:`pad_tensor` followed by cropping ``cropping`` voxels
    (``(i0, i1, j0, j1, k0, k1)``) from the padded tensor; statistic modes use the
    statistic of the unpadded tensor.

    Raises:
        ValueError: If an integer image cannot hold the constant value or nothing is
            left after cropping.
    """
    mode, value = _mode_and_value(tensor, padding_mode)
    spatial = tensor.shape[1:]
    start = tuple(cropping[2 * a] - padding[2 * a] for a in range(3))
    shape = tuple(
        spatial[a] + padding[2 * a] + padding[2 * a + 1] - cropping[2 * a] - cropping[2 * a + 1]
        for a in range(3)
    )
    if min(shape) < 1:
        raise ValueError(
            f"Padding {tuple(padding)} and cropping {tuple(cropping)} a spatial shape"
            f" {tuple(spatial)} leaves no voxels"
        )
    if isinstance(mode, str) and mode in _KERNEL_MODES and kernel_supports(tensor):
        # Output voxel (i, j, k) reads input voxel (i + start[0], ...): numpy.pad values
        # outside the input, exactly as padding first and slicing afterwards.
        result = native().crop_pad(to_numpy(tensor), start, shape, mode, value)
        return to_tensor(result)
    padded = _numpy_pad(tensor, padding, mode, value)
    i0, i1, j0, j1, k0, k1 = cropping
    _, si, sj, sk = padded.shape
    return padded[:, i0 : si - i1, j0 : sj - j1, k0 : sk - k1].clone(
        memory_format=torch.contiguous_format
    )


def pad_tensor(
    tensor: torch.Tensor,
    bounds: tuple[int, int, int, int, int, int],
    padding_mode: str | float | Callable[..., Any] = 0,
) -> torch.Tensor:
    """Return a new ``(C, I + i0 + i1, J + j0 + j1, K + k0 + k1)`` padded tensor.

    Args:
        tensor: ``(C, I, J, K)`` data.
        bounds: ``(i0, i1, j0, j1, k0, k1)`` voxels added at each end.
        padding_mode: A number (constant), a NumPy mode, a statistic mode computed
            once over the whole image, or a callable NumPy pad function.

    Raises:
        ValueError: If an integer image cannot hold the constant value.
    """
    return pad_and_crop_tensor(tensor, bounds, (0,) * 6, padding_mode)


def padded_affine(affine: np.ndarray, bounds: Sequence[int]) -> np.ndarray:
    """Affine of an image padded by ``bounds``: old voxel 0 becomes voxel ``low``."""
    low = np.array(bounds[::2], dtype=np.float64)
    new = np.array(affine, dtype=np.float64)
    new[:3, 3] = new[:3, :3] @ -low + new[:3, 3]
    return new


class Pad(BoundsTransform):
    """Pad an image, updating the affine so voxels keep their world positions.

    Args:
        padding: ``n``, ``(i, j, k)`` or ``(i0, i1, j0, j1, k0, k1)``: voxels added at
            the start and end of each spatial axis.
        padding_mode: A number (constant value); ``'constant'`` (zeros); a NumPy mode
            (``'empty'``, ``'edge'``, ``'wrap'``, ``'linear_ramp'``, ``'reflect'``,
            ``'symmetric'``); ``'maximum'``, ``'mean'``, ``'median'`` or ``'minimum'``,
            computed once per image over all its voxels and channels (unlike NumPy,
            which computes them along the padded axis); or a callable, passed to
            ``numpy.pad`` as a custom mode. Integer images must be able to hold the
            constant (TorchIO/NumPy would silently wrap it around).
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For invalid ``padding``.
        PaddingModeError: (a ``KeyError`` and ``ValueError``) for an invalid mode.
    """

    #: The padding modes taken by name (TorchIO's class attribute).
    PADDING_MODES = PADDING_MODES

    _replaces_data = True

    _bounds_argument = "padding"

    def __init__(
        self,
        padding: TypeBounds,
        padding_mode: str | float | Callable[..., Any] = 0,
        **kwargs: Any,
    ):
        super().__init__(padding, **kwargs)
        self.padding = padding
        check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        self.args_names = ["padding", "padding_mode"]

    # TorchIO exposes this as a classmethod.
    @classmethod
    def check_padding_mode(cls, padding_mode: object) -> None:
        check_padding_mode(padding_mode)

    def _warn_truncation(self, image: Image) -> None:
        if self.padding_mode in ("mean", "median") and not image.data.is_floating_point():
            warnings.warn(
                f'The value computed for padding mode "{self.padding_mode}" may be truncated'
                " because the image data type is not floating point. Consider converting"
                " the image to a floating point type first",
                RuntimeWarning,
                stacklevel=2,
            )

    def apply_transform(self, subject: Subject) -> Subject:
        bounds = self._six_bounds()
        for image in self.get_images(subject):
            self._warn_truncation(image)
            affine = padded_affine(image.affine, bounds)
            image.set_data(pad_tensor(image.data, bounds, self.padding_mode))
            image.affine = affine
        return subject

    def inverse(self) -> Any:
        from .crop import Crop

        return Crop(self.padding, include=self.include, exclude=self.exclude)
