"""Fused (lazy) resampling: one interpolation for a run of spatial transforms.

When a :class:`~torchvox.transforms.Compose` has ``fuse=True``, each run of
consecutive *fusable* children (``Resample`` without antialiasing, ``Affine``,
``ElasticDeformation``, ``AffineElasticDeformation`` and their random
versions) is applied lazily: every transform still computes its parameters
and records itself in the history, but instead of interpolating it appends
its coordinate mapping to a per-image chain and moves the image to its new
grid. The image data are replaced by a zero-cost placeholder of the new shape
(an expanded view, no memory). When the run ends, each image is interpolated
once, from its original data, through the whole chain. Replaying the history
with a fused ``Compose`` reproduces the output exactly.

A run only fuses what one interpolation can stand for:

- A transform that asks for another interpolation of an image, or for
  another fill value (evaluated on the image's original data), first has that
  image interpolated through the steps so far, then starts a new chain from
  the result: the user's choice of interpolation or padding is never dropped.
- A step onto a coarser grid (a larger spacing on some axis, as when
  simulating a low-resolution acquisition) ends the run: the detail it loses
  must stay lost for the transforms after it.

Intensity images become float32 if any transform of the run converts them.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from ..data.image import Image
    from .composition import Compose
    from .spatial.resample import ChainStep

__all__ = ["FusionRun", "apply_fused", "current_run", "is_fusable"]

FillFunction = Callable[[torch.Tensor], "list[float] | float"]

_RUN_NUMBERS = itertools.count()

_CURRENT: contextvars.ContextVar[FusionRun | None] = contextvars.ContextVar(
    "torchvox_fusion_run", default=None
)


@dataclass
class _LazyImage:
    """What a deferred image needs for its single interpolation."""

    data: torch.Tensor
    affine: np.ndarray
    interpolation: str
    fill: list[float] | float
    to_float32: bool
    chain: list[ChainStep] = field(default_factory=list)


class FusionRun:
    """Deferred resampling of the images of one subject during a run of transforms."""

    def __init__(self) -> None:
        self._images: dict[int, tuple[Image, _LazyImage]] = {}
        #: Distinct for every run of the process (recorded in subject histories).
        self.number = next(_RUN_NUMBERS)
        #: Whether a step moved an image to a coarser grid (the run must end).
        self.coarsened = False

    def defer(
        self,
        image: Image,
        shape: Sequence[int],
        target_affine: np.ndarray,
        chain: Sequence[ChainStep],
        interpolation: str,
        fill: FillFunction,
        to_float32: bool,
    ) -> None:
        """Record that ``image`` moves to (``shape``, ``target_affine``) through ``chain``.

        ``chain`` maps points of the new grid to points of the image's current grid.
        """
        key = id(image)
        if key in self._images and not _continues(self._images[key][1], interpolation, fill):
            self._interpolate(*self._images.pop(key))
        self.coarsened = self.coarsened or _coarsens(image.affine, target_affine)
        if key in self._images:
            state = self._images[key][1]
            state.to_float32 = state.to_float32 or to_float32
        else:
            state = _LazyImage(
                data=image.data,
                affine=np.array(image.affine, dtype=np.float64),
                interpolation=interpolation,
                fill=fill(image.data),
                to_float32=to_float32,
            )
            self._images[key] = (image, state)
        # New steps come first: they act on the newest grid's points.
        state.chain = [*chain, *state.chain]
        dtype = torch.float32 if state.to_float32 and _is_intensity(image) else state.data.dtype
        placeholder = torch.zeros((), dtype=dtype).expand(
            state.data.shape[0], *(int(n) for n in shape)
        )
        image.set_data(placeholder)
        image.affine = np.array(target_affine, dtype=np.float64)

    def flush(self) -> None:
        """Interpolate every deferred image once and forget the run."""
        for image, state in self._images.values():
            self._interpolate(image, state)
        self._images.clear()

    @staticmethod
    def _interpolate(image: Image, state: _LazyImage) -> None:
        """Gives ``image`` its data on its current grid, through the whole chain."""
        from .spatial.resample import warp_image

        data = state.data
        if state.to_float32 and _is_intensity(image) and data.dtype != torch.float32:
            data = data.to(torch.float32)
        warp_image(
            image,
            image.spatial_shape,
            image.affine,
            state.chain,
            state.interpolation,
            state.fill,
            source=(data, state.affine),
        )


def _continues(state: _LazyImage, interpolation: str, fill: FillFunction) -> bool:
    """Whether a step with ``interpolation`` and ``fill`` can join ``state``'s chain."""
    if interpolation != state.interpolation:
        return False
    new = np.atleast_1d(np.asarray(fill(state.data), dtype=np.float64))
    old = np.atleast_1d(np.asarray(state.fill, dtype=np.float64))
    return new.shape == old.shape and bool(np.array_equal(new, old, equal_nan=True))


def _coarsens(current_affine: np.ndarray, target_affine: np.ndarray) -> bool:
    """Whether the grid of ``target_affine`` has a larger spacing on some axis."""
    current = np.linalg.norm(np.asarray(current_affine, dtype=np.float64)[:3, :3], axis=0)
    target = np.linalg.norm(np.asarray(target_affine, dtype=np.float64)[:3, :3], axis=0)
    # The tolerance keeps spacings stored in float32 (as in NIfTI headers) equal.
    return bool(np.any(target > current * (1 + 1e-6)))


def _is_intensity(image: Image) -> bool:
    # By type, as TorchIO's Affine decides: an Image of type INTENSITY counts.
    from ..constants import INTENSITY

    return image.type == INTENSITY


def current_run() -> FusionRun | None:
    """The run collecting deferred resamplings, if a fused Compose is applying one."""
    return _CURRENT.get()


def is_fusable(transform: object) -> bool:
    """Whether ``transform`` can join a fused run."""
    from .spatial.affine import Affine, RandomAffine
    from .spatial.affine_elastic import AffineElasticDeformation, RandomAffineElasticDeformation
    from .spatial.elastic import ElasticDeformation, RandomElasticDeformation
    from .spatial.resample import NATIVE_INTERPOLATIONS, Resample

    fusable = (
        Affine,
        RandomAffine,
        ElasticDeformation,
        RandomElasticDeformation,
        AffineElasticDeformation,
        RandomAffineElasticDeformation,
    )
    if getattr(transform, "keep", None) is not None:
        return False  # kept copies must hold real data
    if isinstance(transform, Resample):
        return (
            not transform.antialias
            and transform.pre_affine_name is None
            and transform.image_interpolation in NATIVE_INTERPOLATIONS
            and transform.label_interpolation in NATIVE_INTERPOLATIONS
        )
    if isinstance(transform, fusable):
        names = [
            getattr(transform, n, "linear") for n in ("image_interpolation", "label_interpolation")
        ]
        return all(name in NATIVE_INTERPOLATIONS for name in names)
    return False


def apply_fused(compose: Compose, subject: Any) -> Any:
    """Apply the children of ``compose``, fusing runs of fusable transforms."""
    from ..data.subject import Subject

    if not isinstance(subject, Subject):
        for child in compose.transforms:
            subject = compose._apply_child(child, subject)
        return subject
    run: FusionRun | None = None
    token: contextvars.Token[FusionRun | None] | None = None

    def end_run() -> None:
        nonlocal run, token
        if run is not None and token is not None:
            _CURRENT.reset(token)
            finished, run, token = run, None, None
            finished.flush()

    try:
        for child in compose.transforms:
            fusable = is_fusable(child)
            if not fusable:
                end_run()
            elif run is None:
                run = FusionRun()
                token = _CURRENT.set(run)
            subject = compose._apply_child(child, subject)
            if run is not None and run.coarsened:
                end_run()
    finally:
        end_run()
    return subject


def resample_or_defer(
    image: Image,
    shape: Sequence[int],
    target_affine: np.ndarray,
    chain: Sequence[ChainStep],
    interpolation: str,
    fill: FillFunction,
    to_float32: bool = False,
) -> None:
    """Resample ``image`` now, or defer it to the active fused run.

    Args:
        image: The image to move.
        shape: New spatial shape.
        target_affine: New voxel -> world affine.
        chain: Coordinate chain from new-grid world points to current-grid ones.
        interpolation: Interpolation name.
        fill: Computes the per-channel fill from the (original) data.
        to_float32: Convert scalar images to float32 (as TorchIO's Affine/Elastic do).
    """
    run = current_run()
    if run is not None:
        run.defer(image, shape, target_affine, chain, interpolation, fill, to_float32)
        return
    from .spatial.resample import warp_image

    fill_values = fill(image.data)
    if to_float32 and _is_intensity(image) and image.data.dtype != torch.float32:
        image.set_data(image.data.to(torch.float32))
    warp_image(image, shape, target_affine, chain, interpolation, fill_values)
