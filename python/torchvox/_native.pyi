"""Typed stub of the Rust extension module ``torchvox._native``.

Volumes are NumPy arrays of shape ``(C, I, J, K)``, C-contiguous, with dtype
float32, float64, uint8, int16, int32 or int64. Every function returns new arrays.
"""

import os
from typing import Any

import numpy as np
import numpy.typing as npt

Volume = npt.NDArray[np.generic]

def set_num_threads(threads: int) -> None: ...
def get_num_threads() -> int: ...
def flip(volume: Volume, axes: list[int]) -> Volume: ...

# Label kernels (rust/python/src/label.rs).
def one_hot(labels: Volume, num_classes: int | None = None) -> Volume: ...
def argmax(volume: Volume, zero_max_as: int | None = None) -> Volume: ...
def remap_labels(
    volume: Volume, mapping: list[tuple[float, float]], mask: Volume | None = None
) -> Volume: ...
def unique_labels(volume: Volume) -> list[float]: ...
def labels_are_integral(volume: Volume) -> bool: ...
def connected_components(
    volume: Volume, fully_connected: bool = False, sort_by_size: bool = False, order: str = "C"
) -> tuple[Volume, list[int]]: ...
def keep_largest_component(
    volume: Volume, fully_connected: bool = False, order: str = "C"
) -> Volume: ...
def binary_contour(
    volume: Volume, fully_connected: bool = False, foreground: float = 1.0, background: float = 0.0
) -> Volume: ...
def labels_to_image_discrete(
    labels: Volume,
    roles: list[tuple[float, str, float, float]],
    seed: int,
    background: Volume | None = None,
) -> Volume: ...
def labels_to_image_partial_volume(
    maps: Volume,
    roles: list[tuple[str, float, float]],
    seed: int,
    background: Volume | None = None,
) -> Volume: ...
def swap_patches(
    volume: Volume,
    patch_size: tuple[int, int, int],
    locations: list[tuple[tuple[int, int, int], tuple[int, int, int]]],
) -> Volume: ...
def piecewise_linear(
    volume: Volume, breakpoints: list[float], slopes: list[float], intercepts: list[float]
) -> Volume: ...
def warp(
    volume: Volume,
    input_affine: npt.NDArray[np.float64],
    output_shape: tuple[int, int, int],
    output_affine: npt.NDArray[np.float64],
    transforms: list[
        npt.NDArray[np.float64] | tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]
    ],
    interpolation: str,
    fill: list[float],
    boxes: npt.NDArray[np.int64] | None = None,
) -> Volume: ...
def bspline_field(
    control_points: npt.NDArray[np.float64], shape: tuple[int, int, int]
) -> npt.NDArray[np.float32]: ...
def invert_field(
    field: npt.NDArray[np.float32],
    affine: npt.NDArray[np.float64],
    iterations: int = 50,
    tolerance: float = 1e-5,
) -> npt.NDArray[np.float32]: ...

# Patches (h6): extraction, weighted sampling, grid aggregation.
def extract_patch(
    volume: Volume, start: tuple[int, int, int], size: tuple[int, int, int]
) -> Volume: ...
def extract_patches(
    volume: Volume,
    starts: npt.NDArray[np.int64],
    size: tuple[int, int, int],
    out: Volume | None = None,
) -> Volume: ...
def sample_centres(
    probability_map: npt.NDArray[np.floating] | npt.NDArray[np.uint8],
    patch_size: tuple[int, int, int],
    uniforms: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]: ...
def centre_table(
    probability_map: npt.NDArray[np.floating] | npt.NDArray[np.uint8],
    patch_size: tuple[int, int, int],
) -> npt.NDArray[np.float64]: ...
def draw_centres(
    probability_map: npt.NDArray[np.floating] | npt.NDArray[np.uint8],
    patch_size: tuple[int, int, int],
    table: npt.NDArray[np.float64],
    uniforms: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]: ...
def aggregate_patches(
    output: Volume,
    weights: Volume | None,
    patches: Volume,
    locations: npt.NDArray[np.int64],
    mode: str,
    overlap: tuple[int, int, int],
    padded: bool,
    downsampling_factor: int,
    stale: npt.NDArray[np.bool_] | None = None,
) -> None: ...
def divide_by_grid_weights(
    output: Volume,
    starts: tuple[list[int], list[int], list[int]],
    patch_shape: tuple[int, int, int],
    mode: str,
    in_place: bool = False,
) -> Volume: ...

# NIfTI-1/2 (h6).
def nifti_read_header(path: str | os.PathLike[str]) -> dict[str, object]: ...
def nifti_read(
    path: str | os.PathLike[str],
    region: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None,
) -> tuple[Volume, npt.NDArray[np.float64]]: ...
def nifti_write(
    path: str | os.PathLike[str],
    volume: Volume,
    affine: npt.NDArray[np.float64],
    compression: int | None = None,
    nifti2: bool = False,
) -> None: ...
def ghosting(
    volume: Volume, num_ghosts: int, axis: int, intensity: float, restore: float | None = None
) -> Volume: ...
def spike(
    volume: Volume, positions: list[tuple[int, int, int]], intensity: float, invert: bool = False
) -> Volume: ...
def motion(
    volume: Volume,
    affine: npt.ArrayLike,
    transforms: list[npt.ArrayLike],
    interpolation: str,
    segment_ends: list[int],
    segment_sources: list[int],
) -> Volume: ...
def gaussian_filter(
    volume: Volume, sigmas: tuple[float, float, float], truncate: float = 4.0
) -> Volume: ...
def correlate_separable(volume: Volume, kernels: list[list[float] | None]) -> Volume: ...
def bias_field(
    volume: Volume, order: int, coefficients: list[float], invert: bool = False
) -> Volume: ...
def bias_field_map(
    shape: tuple[int, int, int], order: int, coefficients: list[float]
) -> npt.NDArray[np.float32]: ...
def noise(volume: Volume, mean: float, std: float, seed: int, invert: bool = False) -> Volume: ...
def noise_in_boxes(
    volume: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    mean: float,
    std: float,
    seed: int,
    invert: bool,
    boxes: npt.NDArray[np.int64],
) -> None: ...
def gamma(volume: Volume, gammas: list[float], invert: bool = False) -> Volume: ...

# Crop/pad and intensity kernels (h1).
def crop_pad(
    volume: Volume,
    start: tuple[int, int, int],
    shape: tuple[int, int, int],
    mode: str = "constant",
    value: float = 0.0,
) -> Volume:
    """Crop and/or pad a ``(C, I, J, K)`` volume in one pass.

    Output voxel ``(c, i, j, k)`` reads input ``(c, i + start[0], j + start[1], k + start[2])``;
    the output has shape ``(C, *shape)`` and the input dtype. A negative start pads
    before the volume, a positive one crops. Voxels outside the input follow
    ``numpy.pad`` exactly, as if the volume were padded by ``max(0, -start)`` before
    and ``max(0, start + out - n)`` after each axis and then sliced.

    Args:
        volume: ``(C, I, J, K)`` array.
        start: Input index of output voxel ``(0, 0, 0)``, per spatial axis.
        shape: Positive output spatial shape ``(I', J', K')``.
        mode: ``'constant'``, ``'empty'`` (zeros), ``'edge'``, ``'wrap'``, ``'reflect'``,
            ``'symmetric'`` or ``'linear_ramp'``. Statistic modes (mean, median, ...)
            must be computed by the caller and passed as ``'constant'``.
        value: The constant (truncated towards zero for integer volumes, which must
            hold it), or the ``linear_ramp`` end value (finite).

    Raises:
        ValueError: Bad ndim, non-contiguous or empty volume, unknown mode,
            non-positive or huge shape, or a value the dtype cannot hold.
        TypeError: Unsupported dtype.
    """

def statistics(
    volume: Volume,
    mask: npt.NDArray[np.uint8] | npt.NDArray[np.bool_] | None = None,
    percentiles: list[float] | None = None,
    num_bins: int | None = None,
    histogram_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Statistics of the masked values of a ``(C, I, J, K)`` volume.

    Sums are accumulated in float64 per ``J x K`` plane and combined in a fixed
    order, so results are identical for any thread count. NaN values make min,
    max, mean, std and percentiles NaN (as with NumPy) and set ``has_nan``; the
    histogram skips them.

    Args:
        volume: ``(C, I, J, K)`` array.
        mask: ``(1, I, J, K)`` (shared by all channels) or ``(C, I, J, K)`` uint8
            (non-zero = inside) or bool array; ``None`` selects every voxel.
        percentiles: Values in ``[0, 100]``, computed like ``np.percentile``
            (method ``'linear'``) by O(N) selection.
        num_bins: Number of equal histogram bins (``np.histogram`` rule, last bin closed).
        histogram_range: ``(min, max)`` of the bins; default: min and max of the
            masked values of the whole volume.

    Returns:
        ``{"channels": {...}, "total": {...}, "bin_edges": edges or None}`` where
        ``channels`` maps ``count`` (int64), ``has_nan`` (bool), ``min``, ``max``,
        ``mean``, ``std`` (ddof 0) and ``std_unbiased`` (ddof 1) to ``(C,)`` arrays,
        ``percentiles`` to ``(C, Q)`` float64 and ``histogram`` to ``(C, num_bins)``
        int64 (or None); ``total`` holds the same keys for all channels together
        as Python scalars and 1-D arrays; ``bin_edges`` is ``(num_bins + 1,)`` float64.
        A channel whose per-channel mask is empty has count 0 and NaN statistics.

    Raises:
        ValueError: Bad shapes, empty volume or mask selecting nothing, percentile
            outside ``[0, 100]``, ``num_bins`` 0, a bad or non-finite range, or an
            automatic range over non-finite values.
        TypeError: Unsupported volume or mask dtype.
    """

def channel_minima(volume: Volume) -> list[float]:
    """Minimum of every channel of a ``(C, I, J, K)`` volume, scanned in parallel.

    Returns:
        One float per channel; NaN for a channel that holds a NaN.

    Raises:
        ValueError: Not 4D, or no voxels.
        TypeError: Unsupported dtype.
    """

def range_percentiles(volume: Volume, percentiles: list[float]) -> dict[str, Any]:
    """Minimum, maximum and percentiles of all the values of a ``(C, I, J, K)`` volume.

    The same values as ``statistics(volume, None, percentiles)["total"]`` without the
    moments: float32, int16 and uint8 volumes take one counting pass over the value
    bits (plus a short refining pass when a percentile falls among distinct values).

    Returns:
        ``{"has_nan": bool, "min": float, "max": float, "percentiles": list[float]}``;
        with NaN values, ``min``, ``max`` and the percentiles are NaN.

    Raises:
        ValueError: Bad ndim, non-contiguous or empty volume, percentile outside
            ``[0, 100]``.
        TypeError: Unsupported dtype.
    """

def rescale(
    volume: Volume,
    in_min: float,
    in_max: float,
    out_min: float = 0.0,
    out_max: float = 1.0,
    clip_min: float | None = None,
    clip_max: float | None = None,
) -> npt.NDArray[np.float32]:
    """Map ``[in_min, in_max]`` linearly to ``[out_min, out_max]``, as float32.

    Input values are first clipped to ``[clip_min, clip_max]`` (when given), then
    ``((x - in_min) / (in_max - in_min)) * (out_max - out_min) + out_min`` is computed
    in float32 in TorchIO 1.2.1's order (bit-identical to its RescaleIntensity).
    TorchIO clips to its percentile cut-offs; pass ``clip_min=in_min, clip_max=in_max``
    to keep the output inside the output range. NaN voxels stay NaN.

    Raises:
        ValueError: Non-finite parameters, ``in_min >= in_max``, NaN clip bounds or
            ``clip_min > clip_max``, ranges overflowing float32, bad volume.
        TypeError: Unsupported dtype.
    """

def z_normalize(volume: Volume, mean: float, std: float) -> npt.NDArray[np.float32]:
    """Return ``(x - mean) / std`` of a ``(C, I, J, K)`` volume as float32.

    Raises:
        ValueError: Non-finite ``mean``/``std``, ``std`` not positive in float32, bad volume.
        TypeError: Unsupported dtype.
    """

def clamp(volume: Volume, min: float | None = None, max: float | None = None) -> Volume:
    """Clip a ``(C, I, J, K)`` volume to ``[min, max]`` keeping its dtype.

    The result is ``min(max(x, min), max)`` like ``torch.clamp`` (so ``min > max``
    gives ``max`` everywhere); integer volumes clamp to the integers inside the
    interval, saturated to the dtype's range. NaN voxels stay NaN.

    Raises:
        ValueError: NaN bound or bad volume.
        TypeError: Unsupported dtype.
    """
