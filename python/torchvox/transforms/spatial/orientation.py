"""Reorientation without resampling: ToOrientation, ToCanonical and Transpose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...data.io import aff2axcodes, io_orientation
from ..spatial_transform import SpatialTransform
from .flip import flip_tensor

if TYPE_CHECKING:
    from ...data.image import Image
    from ...data.subject import Subject

__all__ = ["ToCanonical", "ToOrientation", "Transpose", "reorient"]

#: World axis (0 = x, 1 = y, 2 = z of RAS+) and direction of each orientation letter.
_LETTERS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


def _parse_orientation(orientation: object) -> str:
    if not isinstance(orientation, str) or len(orientation) != 3:
        raise ValueError(f'"orientation" must be a 3-letter string, got {orientation!r}')
    code = orientation.upper()
    if not all(letter in _LETTERS for letter in code):
        raise ValueError(
            f'"orientation" must be made of the letters R, L, A, P, S, I, got {orientation!r}'
        )
    if sorted(_LETTERS[letter][0] for letter in code) != [0, 1, 2]:
        raise ValueError(
            '"orientation" must have one letter per axis direction (R or L, A or P,'
            f" S or I), got {orientation!r}"
        )
    return code


def reorient(
    data: torch.Tensor, affine: np.ndarray, orientation: str
) -> tuple[torch.Tensor, np.ndarray]:
    """Reorder the voxels of ``data`` so its axes follow ``orientation``.

    Only permutations and flips of voxel axes are used (no resampling); the affine
    is updated so every voxel keeps its world position, as NiBabel's
    ``as_reoriented`` does (``affine @ inv_ornt_aff``).

    Args:
        data: ``(C, I, J, K)`` tensor.
        affine: Its 4x4 affine.
        orientation: Target code such as ``'RAS'`` or ``'PLI'``.

    Returns:
        The reordered C-contiguous tensor and its affine.

    Raises:
        ValueError: If the affine is degenerate.
    """
    current = io_orientation(affine)
    if np.isnan(current).any():
        raise ValueError(f"Cannot reorient an image with a degenerate affine:\n{affine}")
    target = [_LETTERS[letter] for letter in orientation]
    target_axis_of_world = {world: axis for axis, (world, _) in enumerate(target)}
    spatial_shape = data.shape[1:]
    # new_to_old maps homogeneous new voxel indices to old ones.
    new_to_old = np.zeros((4, 4))
    new_to_old[3, 3] = 1
    permutation = [0, 0, 0]  # new axis -> old axis
    flips = []
    for old_axis, (world, sign) in enumerate(current):
        new_axis = target_axis_of_world[int(world)]
        permutation[new_axis] = old_axis
        if int(sign) == target[new_axis][1]:
            new_to_old[old_axis, new_axis] = 1
        else:
            new_to_old[old_axis, new_axis] = -1
            new_to_old[old_axis, 3] = spatial_shape[old_axis] - 1
            flips.append(new_axis)
    if permutation == [0, 1, 2] and flips:
        # Flips only (the common LPS/LAS -> RAS case): one pass of the native kernel.
        return flip_tensor(data, flips), np.asarray(affine, dtype=np.float64) @ new_to_old
    reordered = data.permute(0, *(1 + axis for axis in permutation))
    if flips:
        # torch.flip writes a new C-contiguous tensor in one pass.
        reordered = torch.flip(reordered, [1 + axis for axis in flips])
    else:
        reordered = reordered.contiguous()
    return reordered, np.asarray(affine, dtype=np.float64) @ new_to_old


class ToOrientation(SpatialTransform):
    """Reorder voxels (no resampling) to follow an orientation code.

    Each letter names the direction towards which the voxel index grows along that
    axis: ``'RAS'`` (neurological, the default) goes left to Right, posterior to
    Anterior and inferior to Superior; ``'LAS'`` is the radiological convention.
    Intensities are unchanged and each voxel keeps its world position. As in
    TorchIO, every image of the subject is reoriented (``include``/``exclude`` are
    ignored), so the subject stays consistent.

    Args:
        orientation: Three letters, one of R/L, one of A/P and one of S/I, in any order.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For an invalid code.
    """

    _replaces_data = True

    def __init__(self, orientation: str = "RAS", **kwargs: Any):
        super().__init__(**kwargs)
        self.orientation = _parse_orientation(orientation)
        self.args_names = ["orientation"]

    def _reorient_image(self, image: Image, orientation: str) -> None:
        if "".join(str(c) for c in aff2axcodes(image.affine)) == orientation:
            return
        data, affine = reorient(image.data, image.affine, orientation)
        image.set_data(data)
        image.affine = affine

    def apply_transform(self, subject: Subject) -> Subject:
        for image in subject.get_images(intensity_only=False):
            self._reorient_image(image, self.orientation)
        return subject


class ToCanonical(ToOrientation):
    """Reorder voxels (no resampling) to the orientation closest to RAS+.

    Same as :class:`ToOrientation` with its default ``orientation='RAS'``.

    Args:
        orientation: Target code (``'RAS'``); accepted so recorded histories replay.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """


class Transpose(SpatialTransform):
    """Swap the first and last spatial axes, e.g. ``PIR`` becomes ``RIP``.

    The affine is updated so world positions are unchanged. Self-inverse.

    Args:
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _replaces_data = True

    def apply_transform(self, subject: Subject) -> Subject:
        for image in self.get_images(subject):
            # TorchIO applies a ToOrientation transform per image, which draws one
            # torch.rand(1); drawing it too keeps seeded random streams identical.
            torch.rand(1)
            affine = np.array(image.affine, dtype=np.float64)
            image.set_data(image.data.permute(0, 3, 2, 1).contiguous())
            image.affine = affine[:, [2, 1, 0, 3]]
        return subject

    def is_invertible(self) -> bool:
        return True

    def inverse(self) -> Transpose:
        return self
