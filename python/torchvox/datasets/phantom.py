"""A deterministic synthetic head, computed in memory for any size."""

from __future__ import annotations

import numpy as np
import torch

from ..data.image import LabelMap, ScalarImage
from ..data.subject import Subject
from ..utils import parse_spatial_shape

__all__ = ["Phantom"]

#: Labels of the ``tissues`` map.
BACKGROUND, CSF, GREY_MATTER, WHITE_MATTER, SKULL, SCALP = range(6)
#: T1-like mean intensity of each label, in [0, 1].
_INTENSITIES = {
    BACKGROUND: 0.0,
    CSF: 0.2,
    GREY_MATTER: 0.55,
    WHITE_MATTER: 0.8,
    SKULL: 0.08,
    SCALP: 0.65,
}


class Phantom(Subject):
    """A synthetic head-like subject, identical for the same ``size`` and ``seed``.

    Nested ellipsoidal shells fill about 90% of the field of view: scalp, skull, CSF,
    a folded grey matter cortex, white matter and two CSF-filled ventricles. The T1-like
    image adds a smooth multiplicative bias field and a little Gaussian noise.

    Images (1 mm isotropic voxels, RAS+, world origin at the centre of the volume):

    - ``t1``: :class:`ScalarImage`, float32, shape ``(1, *size)``;
    - ``tissues``: :class:`LabelMap`, uint8: 0 background, 1 CSF, 2 grey matter,
      3 white matter, 4 skull, 5 scalp.

    Args:
        size: Spatial shape, an int (cube) or 3 positive ints.
        seed: Seed of the noise (and of the cortical folding pattern).

    Raises:
        ValueError: If ``size`` is not positive integers or ``seed`` is negative.
    """

    def __init__(self, size: int | tuple[int, int, int] = 64, seed: int = 0):
        spatial_shape = tuple(int(n) for n in parse_spatial_shape(size))
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        t1, tissues = make_phantom(spatial_shape, int(seed))
        affine = np.eye(4)
        affine[:3, 3] = -(np.asarray(spatial_shape) - 1) / 2
        super().__init__(
            t1=ScalarImage(tensor=torch.from_numpy(t1[np.newaxis]), affine=affine),
            tissues=LabelMap(tensor=torch.from_numpy(tissues[np.newaxis]), affine=affine),
        )


def make_phantom(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Compute the phantom arrays.

    Args:
        shape: Spatial shape ``(W, H, D)``.
        seed: Noise seed.

    Returns:
        The float32 T1-like volume and the uint8 label volume, both of shape ``shape``.
    """
    rng = np.random.default_rng(seed)
    # Normalised coordinates in [-1, 1] along each axis (voxel centres), as an open grid:
    # separable factors stay 1D or 2D and only a few full-size arrays are made.
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) / max(n / 2, 1.0) for n in shape]
    x, y, z = np.ix_(*axes)
    # Head: an ellipsoid slightly longer antero-posteriorly.
    radius = np.sqrt((x / 0.80) ** 2 + (y / 0.90) ** 2 + (z / 0.85) ** 2)
    # Cortical folds: the grey/white boundaries wave with the azimuth and the height.
    phase = rng.uniform(0, 2 * np.pi, size=2)
    azimuth = np.arctan2(y, x)
    folds = (0.035 * np.sin(9 * azimuth + phase[0])).astype(np.float32) * np.cos(
        7 * np.pi * z + phase[1]
    ).astype(np.float32)

    # Outer shells by radius, inner ones by the folded radius.
    # Counting the thresholds passed is much faster than np.digitize's binary search.
    outer = (radius >= 0.85).view(np.uint8) + (radius >= 0.93).view(np.uint8)
    outer += (radius >= 1.0).view(np.uint8)
    folded = radius - folds
    inner = (folded >= 0.62).view(np.uint8) + (folded >= 0.80).view(np.uint8)
    del folded
    outer_labels = np.array([0, SKULL, SCALP, BACKGROUND], dtype=np.uint8)
    inner_labels = np.array([WHITE_MATTER, GREY_MATTER, CSF], dtype=np.uint8)
    tissues = np.where(outer == 0, inner_labels[inner], outer_labels[outer])
    del outer, inner, radius
    # Two lateral ventricles, computed in their bounding boxes only.
    for side in (-1.0, 1.0):
        centre, semi_axes = (0.12 * side, 0.0, 0.05), (0.07, 0.25, 0.12)
        boxes = [
            np.flatnonzero(np.abs(axis - c) < s) for axis, c, s in zip(axes, centre, semi_axes)
        ]
        if any(box.size == 0 for box in boxes):
            continue
        bx, by, bz = (axis[box] for axis, box in zip(axes, boxes))
        ventricle = (
            ((bx - centre[0]) / semi_axes[0])[:, None, None] ** 2
            + ((by - centre[1]) / semi_axes[1])[None, :, None] ** 2
            + ((bz - centre[2]) / semi_axes[2])[None, None, :] ** 2
        ) < 1.0
        region = tissues[np.ix_(*boxes)]
        region[ventricle] = CSF
        tissues[np.ix_(*boxes)] = region

    lookup = np.array([_INTENSITIES[label] for label in range(6)], dtype=np.float32)
    t1 = lookup[tissues]
    # Smooth separable bias field (+-10%).
    bias = 1.0 + 0.1 * np.cos(2.0 * x + 0.5).astype(np.float32) * np.cos(1.5 * y - 0.3).astype(
        np.float32
    ) * np.cos(1.7 * z + 0.2).astype(np.float32)
    t1 *= bias
    noise = rng.standard_normal(size=shape, dtype=np.float32)
    noise *= np.float32(0.015)
    noise[tissues == BACKGROUND] = 0
    t1 += noise
    np.clip(t1, 0.0, None, out=t1)
    return np.ascontiguousarray(t1, dtype=np.float32), np.ascontiguousarray(tissues)
