"""Masked statistics against NumPy: mean/std on the masked values, np.percentile
(default 'linear' method) and np.histogram (last bin closed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from torchvox._backend import native, set_num_threads

DTYPES = [np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64]
PERCENTILES = [0.0, 0.5, 1.0, 25.0, 33.3, 50.0, 75.0, 99.5, 100.0]


@pytest.fixture(scope="module")
def nat() -> Any:
    return native()


def random_volume(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return (rng.standard_normal(shape) * 30 + 5).astype(dtype)
    low, high = (0, 256) if dtype == np.uint8 else (-3000, 3000)
    return rng.integers(low, high, size=shape).astype(dtype)


def masks(shape: tuple[int, int, int, int], seed: int) -> dict[str, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    spatial = (1, *shape[1:])
    return {
        "none": None,
        "shared_uint8": (rng.random(spatial) < 0.4).astype(np.uint8) * 3,
        "shared_bool": rng.random(spatial) < 0.6,
        "per_channel": rng.random(shape) < 0.3,
    }


def masked_values(volume: np.ndarray, mask: np.ndarray | None) -> list[np.ndarray]:
    if mask is None:
        return [channel.ravel() for channel in volume]
    full = np.broadcast_to(mask.astype(bool), volume.shape)
    return [channel[m] for channel, m in zip(volume, full, strict=True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_kind", ["none", "shared_uint8", "shared_bool", "per_channel"])
def test_matches_numpy(nat: Any, dtype: type, mask_kind: str) -> None:
    shape = (3, 7, 9, 11)
    volume = random_volume(shape, dtype, seed=11)
    mask = masks(shape, seed=12)[mask_kind]
    result = nat.statistics(volume, mask, PERCENTILES, 13, (-20.0, 90.5))
    per_channel = masked_values(volume, mask)
    groups = [*per_channel, np.concatenate(per_channel)]
    summaries = [
        {key: value[c] for key, value in result["channels"].items()} for c in range(shape[0])
    ]
    summaries.append(result["total"])
    for values, summary in zip(groups, summaries, strict=True):
        wide = values.astype(np.float64)
        assert summary["count"] == values.size
        assert not summary["has_nan"]
        assert summary["min"] == wide.min() and summary["max"] == wide.max()
        np.testing.assert_allclose(summary["mean"], wide.mean(), rtol=1e-13)
        np.testing.assert_allclose(summary["std"], wide.std(), rtol=1e-12)
        np.testing.assert_allclose(summary["std_unbiased"], wide.std(ddof=1), rtol=1e-12)
        np.testing.assert_array_equal(summary["percentiles"], np.percentile(values, PERCENTILES))
        counts, edges = np.histogram(values, bins=13, range=(-20.0, 90.5))
        np.testing.assert_array_equal(summary["histogram"], counts)
        np.testing.assert_array_equal(result["bin_edges"], edges)


@pytest.mark.parametrize("dtype", DTYPES)
def test_histogram_with_automatic_range(nat: Any, dtype: type) -> None:
    volume = random_volume((2, 6, 5, 7), dtype, seed=21)
    mask = masks(volume.shape, seed=22)["shared_bool"]
    result = nat.statistics(volume, mask, None, 17)
    values = np.concatenate(masked_values(volume, mask))
    counts, edges = np.histogram(values, bins=17)
    np.testing.assert_array_equal(result["total"]["histogram"], counts)
    np.testing.assert_array_equal(result["bin_edges"], edges)
    assert result["total"]["percentiles"].shape == (0,)
    assert result["channels"]["percentiles"].shape == (2, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_percentiles_of_large_skewed_volumes(nat: Any, dtype: type) -> None:
    """Large inputs take the bucketed selection: check it on MRI-like data (a
    background of zeros, many ties, a long tail and outliers)."""
    rng = np.random.default_rng(61)
    shape = (2, 48, 40, 36)
    tail = rng.exponential(40.0, shape) * (rng.random(shape) < 0.6)
    tail[0, 3, 4, 5] = 250.0  # outliers stretch the value range
    tail[1, 7, 8, 9] = 1e4 if dtype != np.uint8 else 255
    ceiling = 255.0 if dtype == np.uint8 else np.inf
    volume: np.ndarray = np.minimum(tail, ceiling).astype(dtype)
    mask = rng.random((1, *shape[1:])) < 0.9
    qs = [0.0, 0.5, 1.0, 2.0, 10.0, 25.0, 50.0, 50.0001, 75.0, 98.0, 99.0, 99.5, 99.99, 100.0]
    result = nat.statistics(volume, mask, qs)
    values = masked_values(volume, mask)
    for c in range(2):
        np.testing.assert_array_equal(
            result["channels"]["percentiles"][c], np.percentile(values[c], qs)
        )
    np.testing.assert_array_equal(
        result["total"]["percentiles"], np.percentile(np.concatenate(values), qs)
    )


def test_histogram_values_on_edges_and_constant_volume(nat: Any) -> None:
    # Values exactly on bin edges, on the closed last edge, and outside the range.
    volume = np.array([0.0, 0.1, 0.2, 0.3, 0.7, 1.0, -0.1, 1.1, 0.5], np.float32).reshape(
        1, 1, 1, 9
    )
    result = nat.statistics(volume, num_bins=10, histogram_range=(0.0, 1.0))
    counts, edges = np.histogram(volume.ravel(), bins=10, range=(0.0, 1.0))
    np.testing.assert_array_equal(result["total"]["histogram"], counts)
    np.testing.assert_array_equal(result["bin_edges"], edges)
    constant = np.full((1, 2, 2, 2), 4, np.int16)
    result = nat.statistics(constant, num_bins=3)
    counts, edges = np.histogram(constant.ravel(), bins=3)
    np.testing.assert_array_equal(result["total"]["histogram"], counts)
    np.testing.assert_array_equal(result["bin_edges"], edges)
    assert result["total"]["std"] == 0.0


def test_nan_is_reported_and_propagates(nat: Any) -> None:
    volume = random_volume((2, 4, 5, 6), np.float64, seed=31)
    volume[1, 2, 3, 4] = np.nan
    result = nat.statistics(volume, percentiles=[10.0, 90.0], num_bins=5, histogram_range=(-50, 50))
    channels = result["channels"]
    np.testing.assert_array_equal(channels["has_nan"], [False, True])
    assert result["total"]["has_nan"]
    for key in ("min", "max", "mean", "std", "std_unbiased"):
        assert not np.isnan(channels[key][0])
        assert np.isnan(channels[key][1]) and np.isnan(result["total"][key])
    assert np.isnan(channels["percentiles"][1]).all()
    assert np.isnan(volume[1].mean()) and np.isnan(volume[1].std())
    np.testing.assert_array_equal(np.isnan(np.percentile(volume[1], [10, 90])), [True, True])
    assert channels["count"][1] == volume[1].size
    # NaN voxels fall in no bin, as with np.histogram.
    counts, _ = np.histogram(volume[1], bins=5, range=(-50, 50))
    np.testing.assert_array_equal(channels["histogram"][1], counts)
    with pytest.raises(ValueError, match="not finite"):
        nat.statistics(volume, num_bins=5)


def test_per_channel_mask_with_an_empty_channel(nat: Any) -> None:
    volume = random_volume((2, 3, 3, 3), np.float32, seed=41)
    mask = np.zeros(volume.shape, bool)
    mask[1, 1, 1, 1] = mask[1, 0, 2, 1] = True
    result = nat.statistics(volume, mask, [50.0])
    assert result["channels"]["count"].tolist() == [0, 2]
    assert np.isnan(result["channels"]["mean"][0]) and np.isnan(
        result["channels"]["percentiles"][0, 0]
    )
    np.testing.assert_allclose(result["total"]["mean"], volume[mask].astype(np.float64).mean())


def test_thread_count_does_not_change_bytes(nat: Any) -> None:
    volume = random_volume((2, 37, 41, 29), np.float32, seed=51)
    mask = masks(volume.shape, seed=52)["shared_uint8"]
    outputs = {}
    try:
        for threads in (1, 2):
            set_num_threads(threads)
            result = nat.statistics(volume, mask, PERCENTILES, 50)
            outputs[threads] = [
                np.asarray(value).tobytes()
                for part in ("channels", "total")
                for value in result[part].values()
            ] + [result["bin_edges"].tobytes()]
    finally:
        set_num_threads(None)
    assert outputs[1] == outputs[2]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"volume": np.zeros((3, 3, 3), np.float32)}, ValueError, "4 dimensions"),
        ({"volume": np.zeros((1, 3, 3, 3), np.float16)}, TypeError, "float16"),
        ({"volume": np.zeros((1, 3, 3, 6), np.float32)[..., ::2]}, ValueError, "contiguous"),
        ({"volume": np.zeros((0, 3, 3, 3), np.float32)}, ValueError, "no voxels"),
        ({"mask": np.zeros((1, 3, 3, 3), np.uint8)}, ValueError, "mask selects no voxel"),
        ({"mask": np.ones((1, 3, 3, 4), np.uint8)}, ValueError, "mask of shape"),
        ({"mask": np.ones((3, 3, 3, 3), np.uint8)}, ValueError, "mask of shape"),
        ({"mask": np.ones((3, 3, 3), np.uint8)}, ValueError, "mask must have 4 dimensions"),
        ({"mask": np.ones((1, 3, 3, 3), np.float32)}, TypeError, "expected uint8 or bool"),
        (
            {"mask": np.ones((1, 3, 3, 6), bool)[..., ::2]},
            ValueError,
            "mask must be a C-contiguous",
        ),
        ({"percentiles": [101.0]}, ValueError, r"\[0, 100\]"),
        ({"percentiles": [-1.0]}, ValueError, r"\[0, 100\]"),
        ({"percentiles": [float("nan")]}, ValueError, r"\[0, 100\]"),
        ({"num_bins": 0}, ValueError, "num_bins"),
        ({"histogram_range": (0.0, 1.0)}, ValueError, "without num_bins"),
        ({"num_bins": 4, "histogram_range": (1.0, 0.0)}, ValueError, "larger than max"),
        ({"num_bins": 4, "histogram_range": (0.0, float("inf"))}, ValueError, "not finite"),
        ({"num_bins": 4, "histogram_range": (float("nan"), 1.0)}, ValueError, "not finite"),
    ],
)
def test_bad_input_raises_clear_errors(
    nat: Any, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {
        "volume": np.ones((2, 3, 3, 3), np.float32),
        "mask": None,
        "percentiles": [50.0],
        "num_bins": None,
        "histogram_range": None,
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        nat.statistics(**arguments)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("negative", [False, True])
def test_range_percentiles_match_numpy(nat: Any, dtype: type, negative: bool) -> None:
    """The radix kernel (float32, int16, uint8; others fall back to selection) on
    MRI-like data: a zero background, ties, a long tail, optional negatives."""
    rng = np.random.default_rng(62)
    shape = (2, 48, 40, 36)
    tail = rng.exponential(40.0, shape) * (rng.random(shape) < 0.4)
    tail[0, 24:, :, :] = 0.0  # whole blocks of background
    tail[1, 7, 8, 9] = 1e4 if dtype != np.uint8 else 255
    if negative and dtype != np.uint8:
        tail -= 30.0
    if dtype == np.uint8:
        tail = np.minimum(tail, 255.0)
    volume: np.ndarray = tail.astype(dtype)
    qs = [0.0, 0.5, 1.0, 2.0, 33.3, 50.0, 98.0, 99.5, 99.99, 100.0]
    result = nat.range_percentiles(volume, qs)
    assert result["has_nan"] is False
    assert result["min"] == volume.min() and result["max"] == volume.max()
    np.testing.assert_array_equal(result["percentiles"], np.percentile(volume, qs))
    total = nat.statistics(volume, None, qs)["total"]
    np.testing.assert_array_equal(result["percentiles"], total["percentiles"])


def test_range_percentiles_nan_and_errors(nat: Any) -> None:
    volume = np.zeros((1, 4, 5, 6), np.float32)
    volume[0, 1, 2, 3] = np.nan
    result = nat.range_percentiles(volume, [1.0, 99.0])
    assert result["has_nan"] and np.isnan(result["min"]) and np.isnan(result["percentiles"]).all()
    with pytest.raises(ValueError, match="percentiles"):
        nat.range_percentiles(volume, [101.0])
    with pytest.raises(ValueError):
        nat.range_percentiles(np.zeros((1, 0, 2, 2), np.float32), [1.0])
    with pytest.raises(TypeError):
        nat.range_percentiles(np.zeros((1, 2, 2, 2), np.complex64), [1.0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_channel_minima_match_numpy(nat: Any, dtype: type, threads: int) -> None:
    # Channels of more than one task (2^20 values), so the partial minima are combined.
    volume = random_volume((3, 64, 130, 131), dtype, seed=7)
    lowest = np.finfo(dtype).min if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min
    volume[1, 63, 129, 130] = lowest
    set_num_threads(threads)
    try:
        minima = nat.channel_minima(volume)
    finally:
        set_num_threads(None)
    assert minima == [float(channel.min()) for channel in volume]
    assert minima[1] == float(lowest)


def test_channel_minima_nan_only_in_its_channel(nat: Any) -> None:
    volume = random_volume((2, 9, 10, 11), np.float32, seed=3)
    volume[0, 4, 5, 6] = np.nan
    minima = nat.channel_minima(volume)
    assert np.isnan(minima[0])
    assert minima[1] == float(volume[1].min())


def test_channel_minima_reject_bad_input(nat: Any) -> None:
    with pytest.raises(ValueError, match="no voxels"):
        nat.channel_minima(np.zeros((1, 0, 2, 2), np.float32))
    with pytest.raises(ValueError):
        nat.channel_minima(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(TypeError):
        nat.channel_minima(np.zeros((1, 2, 2, 2), np.float16))
