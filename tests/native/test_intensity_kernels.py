"""Rescale, z-normalisation and clamp kernels against NumPy/torch formulas and
TorchIO 1.2.1's RescaleIntensity and ZNormalization."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torchio

from torchvox._backend import native, set_num_threads

DTYPES = [np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64]


@pytest.fixture(scope="module")
def nat() -> Any:
    return native()


def random_volume(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return (rng.standard_normal(shape) * 300 + 40).astype(dtype)
    low, high = (0, 256) if dtype == np.uint8 else (-3000, 3000)
    return rng.integers(low, high, size=shape).astype(dtype)


def torchio_style_rescale(
    volume: np.ndarray,
    in_min: float,
    in_max: float,
    out_min: float,
    out_max: float,
    clip: tuple[float, float] | None,
) -> np.ndarray:
    """The float32 in-place sequence TorchIO 1.2.1 runs, written with NumPy."""
    array = volume.astype(np.float32)
    if clip is not None:
        np.clip(array, np.float64(clip[0]), np.float64(clip[1]), out=array)
    array -= np.float32(in_min)
    array /= np.float32(in_max - in_min)
    array *= np.float32(out_max - out_min)
    array += np.float32(out_min)
    return array


@pytest.mark.parametrize("dtype", DTYPES)
def test_rescale_matches_float32_reference(nat: Any, dtype: type) -> None:
    volume = random_volume((2, 9, 8, 7), dtype, seed=1)
    for in_min, in_max, out_min, out_max, clip in [
        (-100.0, 200.0, 0.0, 1.0, None),
        (-100.0, 200.0, -1.0, 1.0, (-100.0, 200.0)),
        (3.5, 17.25, 10.0, -10.0, (0.0, 50.0)),
        (0.0, 255.0, 0.0, 1.0, (-np.inf, 100.0)),
    ]:
        result = nat.rescale(volume, in_min, in_max, out_min, out_max, *(clip or (None, None)))
        expected = torchio_style_rescale(volume, in_min, in_max, out_min, out_max, clip)
        assert result.dtype == np.float32 and result.shape == volume.shape
        np.testing.assert_array_equal(result, expected)


def test_rescale_clipped_to_input_range_stays_in_output_range(nat: Any) -> None:
    volume = random_volume((1, 10, 10, 10), np.float64, seed=2)
    result = nat.rescale(volume, -50.0, 50.0, -1.0, 1.0, -50.0, 50.0)
    assert result.min() == -1.0 and result.max() == 1.0
    np.testing.assert_allclose(result, np.clip((volume + 50) / 100, 0, 1) * 2 - 1, atol=1e-6)


@pytest.mark.parametrize("percentiles", [(0.0, 100.0), (0.5, 99.5), (2.0, 98.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.float64])
def test_statistics_and_rescale_reproduce_torchio(
    nat: Any, percentiles: tuple[float, float], dtype: type
) -> None:
    """RescaleIntensity = percentile cut-offs (statistics kernel) + rescale kernel."""
    volume = random_volume((1, 12, 11, 10), dtype, seed=3)
    transform = torchio.RescaleIntensity(out_min_max=(-1, 1), percentiles=percentiles)
    expected = transform(torchio.ScalarImage(tensor=torch.from_numpy(volume))).data.numpy()
    as_float = volume.astype(np.float32)
    low, high = nat.statistics(as_float, percentiles=list(percentiles))["total"]["percentiles"]
    # After clipping to the cut-offs, TorchIO's min and max are the float32 cut-offs.
    in_min, in_max = float(np.float32(low)), float(np.float32(high))
    result = nat.rescale(volume, in_min, in_max, -1.0, 1.0, low, high)
    np.testing.assert_array_equal(result, expected)


def test_rescale_with_in_min_max_reproduces_torchio(nat: Any) -> None:
    volume = random_volume((1, 10, 9, 8), np.float32, seed=4)
    transform = torchio.RescaleIntensity(out_min_max=(0, 10), in_min_max=(-100, 300))
    expected = transform(torchio.ScalarImage(tensor=torch.from_numpy(volume))).data.numpy()
    # TorchIO 1.2.1 clips only to the percentile cut-offs (here min and max): no effect.
    result = nat.rescale(volume, -100.0, 300.0, 0.0, 10.0)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_z_normalize_reproduces_torchio(nat: Any, dtype: type) -> None:
    volume = random_volume((1, 10, 11, 12), dtype, seed=5)
    expected = torchio.ZNormalization()(torchio.ScalarImage(tensor=torch.from_numpy(volume)))
    stats = nat.statistics(volume)["total"]
    result = nat.z_normalize(volume, stats["mean"], stats["std_unbiased"])
    assert result.dtype == np.float32
    # torch reduces in float32, the kernel's statistics in float64: ulp-level differences.
    np.testing.assert_allclose(result, expected.data.numpy(), rtol=2e-5, atol=2e-5)
    reference = (volume.astype(np.float32) - np.float32(stats["mean"])) / np.float32(
        stats["std_unbiased"]
    )
    np.testing.assert_array_equal(result, reference)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clamp_matches_numpy_and_keeps_dtype(nat: Any, dtype: type) -> None:
    volume = random_volume((2, 6, 7, 8), dtype, seed=6)
    for low, high in [(-100.5, 120.25), (None, 50.0), (10.0, None), (None, None), (1e30, None)]:
        result = nat.clamp(volume, low, high)
        assert result.dtype == volume.dtype
        if low is None and high is None:
            expected = volume
        elif np.issubdtype(dtype, np.floating):
            expected = torch.clamp(torch.from_numpy(volume), low, high).numpy()
        else:
            # Integer volumes clamp to the integers inside [low, high], saturated.
            info = np.iinfo(dtype)
            lo = info.min if low is None else max(info.min, min(info.max, math.ceil(low)))
            hi = info.max if high is None else max(info.min, min(info.max, math.floor(high)))
            expected = np.clip(volume, lo, hi)
        np.testing.assert_array_equal(result, expected)


def test_nan_voxels_stay_nan(nat: Any) -> None:
    volume = random_volume((1, 4, 4, 4), np.float32, seed=7)
    volume[0, 1, 2, 3] = np.nan
    for result in (
        nat.clamp(volume, 0.0, 1.0),
        nat.rescale(volume, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0),
        nat.z_normalize(volume, 0.0, 2.0),
    ):
        assert np.isnan(result[0, 1, 2, 3]) and np.isnan(result).sum() == 1


def test_thread_count_does_not_change_bytes(nat: Any) -> None:
    volume = random_volume((2, 33, 29, 31), np.float32, seed=8)
    outputs = {}
    try:
        for threads in (1, 2):
            set_num_threads(threads)
            outputs[threads] = [
                nat.rescale(volume, -10.0, 90.0, 0.0, 1.0, -5.0, 80.0).tobytes(),
                nat.z_normalize(volume, 3.0, 7.0).tobytes(),
                nat.clamp(volume, -1.0, 1.0).tobytes(),
            ]
    finally:
        set_num_threads(None)
    assert outputs[1] == outputs[2]


VOLUME = np.ones((1, 3, 3, 3), np.float32)
NAN = float("nan")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda n: n.rescale(VOLUME, NAN, 1.0), ValueError, "in_min must be finite"),
        (lambda n: n.rescale(VOLUME, 0.0, 1.0, NAN, 1.0), ValueError, "out_min must be finite"),
        (lambda n: n.rescale(VOLUME, 0.0, 1.0, 0.0, float("inf")), ValueError, "finite"),
        (lambda n: n.rescale(VOLUME, 1.0, 1.0), ValueError, "smaller than in_max"),
        (lambda n: n.rescale(VOLUME, 2.0, 1.0), ValueError, "smaller than in_max"),
        (lambda n: n.rescale(VOLUME, 0.0, 1.0, 0.0, 1.0, NAN, 1.0), ValueError, "NaN"),
        (lambda n: n.rescale(VOLUME, 0.0, 1.0, 0.0, 1.0, 2.0, 1.0), ValueError, "clip_min"),
        (lambda n: n.rescale(VOLUME, -3e38, 3e38), ValueError, "float32"),
        (lambda n: n.z_normalize(VOLUME, 0.0, 0.0), ValueError, "std must be positive"),
        (lambda n: n.z_normalize(VOLUME, 0.0, -1.0), ValueError, "std must be positive"),
        (lambda n: n.z_normalize(VOLUME, NAN, 1.0), ValueError, "mean must be finite"),
        (lambda n: n.z_normalize(VOLUME, 0.0, NAN), ValueError, "std must be finite"),
        (lambda n: n.clamp(VOLUME, NAN, 1.0), ValueError, "NaN"),
        (lambda n: n.clamp(VOLUME, None, NAN), ValueError, "NaN"),
        (lambda n: n.clamp(np.ones((3, 3, 3), np.float32)), ValueError, "4 dimensions"),
        (lambda n: n.clamp(VOLUME.astype(np.float16)), TypeError, "float16"),
        (lambda n: n.rescale(VOLUME.astype(bool), 0.0, 1.0), TypeError, "bool"),
        (
            lambda n: n.z_normalize(np.ones((1, 3, 3, 6), np.float32)[..., ::2], 0.0, 1.0),
            ValueError,
            "contiguous",
        ),
        (lambda n: n.clamp(np.ones((1, 3, 0, 3), np.int16), 0.0), ValueError, "no voxels"),
        (lambda n: n.rescale("volume", 0.0, 1.0), TypeError, "NumPy array"),
    ],
)
def test_bad_input_raises_clear_errors(
    nat: Any, call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call(nat)
