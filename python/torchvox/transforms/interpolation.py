"""Interpolation names accepted by resampling transforms.

The names are TorchIO 1.2.1's (SimpleITK interpolators). They are parsed
case-insensitively; ``'cubic'`` is accepted everywhere as an alias of
``'bspline'`` (TorchIO's enum has the alias but its transforms reject it).
``'label'`` (from TorchIO 2.0) resamples label maps by partial volumes (one-hot,
linear interpolation, argmax); it has no SimpleITK interpolator.
"""

from __future__ import annotations

import enum

__all__ = ["Interpolation", "get_sitk_interpolator", "parse_interpolation"]


class Interpolation(enum.Enum):
    """Interpolation methods, valued by the name of the SimpleITK interpolator.

    ``CUBIC`` is an alias of ``BSPLINE`` (cubic B-spline).
    """

    NEAREST = "sitkNearestNeighbor"
    LINEAR = "sitkLinear"
    BSPLINE = "sitkBSpline"
    CUBIC = "sitkBSpline"
    GAUSSIAN = "sitkGaussian"
    LABEL_GAUSSIAN = "sitkLabelGaussian"
    HAMMING = "sitkHammingWindowedSinc"
    COSINE = "sitkCosineWindowedSinc"
    WELCH = "sitkWelchWindowedSinc"
    LANCZOS = "sitkLanczosWindowedSinc"
    BLACKMAN = "sitkBlackmanWindowedSinc"
    LABEL = "label"


#: Canonical lower-case names, in declaration order (aliases excluded).
SUPPORTED_NAMES: tuple[str, ...] = tuple(member.name.lower() for member in Interpolation)
_ALIASES = {"cubic": "bspline"}


def parse_interpolation(interpolation: object, argument: str = "interpolation") -> str:
    """Return the canonical lower-case name of an interpolation method.

    Args:
        interpolation: A name such as ``'linear'`` or ``'NEAREST'``, or an
            :class:`Interpolation` member.
        argument: Name of the user argument, used in error messages.

    Returns:
        One of :data:`SUPPORTED_NAMES` (``'cubic'`` becomes ``'bspline'``).

    Raises:
        TypeError: If ``interpolation`` is neither a string nor a member.
        ValueError: If the name is unknown.
    """
    if isinstance(interpolation, Interpolation):
        return interpolation.name.lower()
    if not isinstance(interpolation, str):
        raise TypeError(
            f'"{argument}" must be a string, got {interpolation!r}'
            f" of type {type(interpolation).__name__}"
        )
    name = interpolation.lower()
    name = _ALIASES.get(name, name)
    if name not in SUPPORTED_NAMES:
        accepted = [*SUPPORTED_NAMES, *_ALIASES]
        raise ValueError(f'"{argument}" must be one of {accepted}, got {interpolation!r}')
    return name


def get_sitk_interpolator(interpolation: str) -> int:
    """Return the SimpleITK interpolator constant for an interpolation name.

    Args:
        interpolation: Any name accepted by :func:`parse_interpolation`.

    Returns:
        The ``SimpleITK.sitk*`` integer constant.

    Raises:
        ValueError: For unknown names and for ``'label'``.
    """
    import SimpleITK as sitk  # noqa: N813 (lazy: only resampling through ITK needs it)

    name = parse_interpolation(interpolation)
    if name == "label":
        raise ValueError("The 'label' interpolation has no SimpleITK interpolator")
    return int(getattr(sitk, Interpolation[name.upper()].value))
