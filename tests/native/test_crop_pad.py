"""The crop/pad kernel against ``numpy.pad`` followed by slicing (pad-then-crop)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from torchvox._backend import native, set_num_threads

DTYPES = [np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64]
MODES = ["constant", "empty", "edge", "wrap", "reflect", "symmetric", "linear_ramp"]


@pytest.fixture(scope="module")
def nat() -> Any:
    return native()


def random_volume(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return (rng.standard_normal(shape) * 50).astype(dtype)
    low, high = (0, 200) if dtype == np.uint8 else (-1000, 1000)
    return rng.integers(low, high, size=shape).astype(dtype)


def reference(
    volume: np.ndarray,
    start: tuple[int, int, int],
    shape: tuple[int, int, int],
    mode: str,
    value: float,
) -> np.ndarray:
    """np.pad by (max(0, -start), max(0, start + out - n)) per axis, then slice."""
    widths = [(0, 0)]
    slices: list[slice] = [slice(None)]
    for s, out, n in zip(start, shape, volume.shape[1:], strict=True):
        before, after = max(0, -s), max(0, s + out - n)
        widths.append((before, after))
        slices.append(slice(s + before, s + before + out))
    if mode in ("constant", "empty"):
        padded = np.pad(
            volume, widths, mode="constant", constant_values=value if mode == "constant" else 0
        )
    elif mode == "linear_ramp":
        padded = np.pad(volume, widths, mode="linear_ramp", end_values=value)
    else:
        padded = np.pad(volume, widths, mode=mode)  # type: ignore[call-overload]
    return padded[tuple(slices)]


# (start, output shape) on a (2, 5, 3, 7) volume: pads, crops, both, and pads
# several times wider than the axis (numpy repeats wrap/reflect/symmetric).
GEOMETRIES = [
    ((0, 0, 0), (5, 3, 7)),
    ((-2, -1, -3), (9, 5, 13)),
    ((1, 0, 2), (3, 2, 4)),
    ((-3, 1, 2), (4, 4, 9)),
    ((-11, -9, -15), (27, 21, 37)),
    ((3, -7, 5), (9, 2, 11)),
    ((-20, 4, -1), (3, 8, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_matches_numpy_pad(nat: Any, dtype: type, mode: str) -> None:
    volume = random_volume((2, 5, 3, 7), dtype, seed=3)
    value = 7.0 if mode != "linear_ramp" or np.issubdtype(dtype, np.floating) else 120.0
    if np.issubdtype(dtype, np.floating):
        value = -2.75
    for start, shape in GEOMETRIES:
        result = nat.crop_pad(volume, start, shape, mode, value)
        expected = reference(volume, start, shape, mode, value)
        assert result.dtype == volume.dtype
        assert result.shape == (2, *shape)
        np.testing.assert_array_equal(result, expected, err_msg=f"{mode} {start} {shape}")


@pytest.mark.parametrize("mode", ["wrap", "reflect", "symmetric", "edge", "linear_ramp"])
def test_singleton_and_tiny_axes(nat: Any, mode: str) -> None:
    for spatial in [(1, 2, 3), (2, 1, 1), (1, 1, 1)]:
        volume = random_volume((1, *spatial), np.float64, seed=5)
        for start, shape in [((-4, -5, -6), (9, 11, 14)), ((-1, 0, -2), (3, 4, 6))]:
            result = nat.crop_pad(volume, start, shape, mode, 1.5)
            np.testing.assert_array_equal(result, reference(volume, start, shape, mode, 1.5))


def test_linear_ramp_with_edges_equal_to_end_value(nat: Any) -> None:
    """numpy's linspace switches to divide-then-multiply when any step is zero."""
    volume = np.random.default_rng(0).uniform(0, 10, (1, 4, 5, 6)).astype(np.float32)
    volume[0, 0, 2, 3] = 0.0  # one edge value equal to the end value
    volume[0, :, 4, 1] = 0.0
    for start, shape in GEOMETRIES:
        result = nat.crop_pad(volume, start, shape, "linear_ramp", 0.0)
        np.testing.assert_array_equal(result, reference(volume, start, shape, "linear_ramp", 0.0))
    ints = np.random.default_rng(1).integers(0, 50, (2, 3, 4, 5)).astype(np.int16)
    ints[:, 0] = 49
    for start, shape in GEOMETRIES:
        result = nat.crop_pad(ints, start, shape, "linear_ramp", 49.0)
        np.testing.assert_array_equal(result, reference(ints, start, shape, "linear_ramp", 49.0))


def test_far_out_of_bounds_start_maps_periodically(nat: Any) -> None:
    volume = random_volume((1, 4, 3, 5), np.int16, seed=9)
    start = (-(10**12) - 1, 10**12, 3)
    result = nat.crop_pad(volume, start, (2, 2, 2), "wrap", 0.0)
    expected = volume[:, [3, 0]][:, :, [(10**12) % 3, (10**12 + 1) % 3]][:, :, :, [3, 4]]
    np.testing.assert_array_equal(result, expected)


def test_pure_crop_is_slicing(nat: Any) -> None:
    volume = random_volume((3, 9, 8, 11), np.float32, seed=1)
    result = nat.crop_pad(volume, (2, 1, 3), (5, 6, 4), "edge", 0.0)
    np.testing.assert_array_equal(result, volume[:, 2:7, 1:7, 3:7])
    assert result.flags.c_contiguous


def test_integer_constant_truncates_like_numpy(nat: Any) -> None:
    volume = random_volume((1, 3, 3, 3), np.int32, seed=2)
    for value in (2.7, -2.7, 0.0):
        result = nat.crop_pad(volume, (-1, -1, -1), (5, 5, 5), "constant", value)
        expected = np.pad(volume, [(0, 0), (1, 1), (1, 1), (1, 1)], constant_values=value)
        np.testing.assert_array_equal(result, expected)


def test_float_constant_may_be_nan(nat: Any) -> None:
    volume = np.ones((1, 2, 2, 2), np.float32)
    result = nat.crop_pad(volume, (-1, 0, 0), (3, 2, 2), "constant", float("nan"))
    assert np.isnan(result[0, 0]).all() and (result[0, 1:] == 1).all()


def test_thread_count_does_not_change_bytes(nat: Any) -> None:
    volume = random_volume((2, 31, 27, 23), np.float32, seed=4)
    outputs = {}
    try:
        for threads in (1, 2):
            set_num_threads(threads)
            outputs[threads] = [
                nat.crop_pad(volume, (-5, 3, -9), (40, 20, 50), mode, 3.0).tobytes()
                for mode in MODES
            ]
    finally:
        set_num_threads(None)
    assert outputs[1] == outputs[2]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"volume": np.zeros((3, 3, 3), np.float32)}, ValueError, "4 dimensions"),
        ({"volume": np.zeros((1, 3, 3, 3), np.float16)}, TypeError, "float16"),
        ({"volume": np.zeros((1, 3, 3, 6), np.float32)[..., ::2]}, ValueError, "contiguous"),
        ({"volume": np.zeros((1, 0, 3, 3), np.float32)}, ValueError, "no voxels"),
        ({"volume": [[1.0]]}, TypeError, "NumPy array"),
        ({"mode": "bogus"}, ValueError, "unknown pad mode"),
        ({"mode": "mean"}, ValueError, "constant"),
        ({"shape": (0, 3, 3)}, ValueError, "positive"),
        ({"shape": (-1, 3, 3)}, ValueError, "positive"),
        ({"shape": (2**40, 2**40, 2**40)}, ValueError, "too large"),
        ({"start": (2**62, 0, 0), "shape": (2**62, 1, 1)}, ValueError, "overflow"),
        ({"mode": "linear_ramp", "value": float("nan")}, ValueError, "finite"),
        ({"mode": "linear_ramp", "start": (-(2**40), -(2**40), 0)}, ValueError, "too wide"),
        (
            {"volume": np.zeros((1, 3, 3, 3), np.uint8), "value": float("nan")},
            ValueError,
            "pad value",
        ),
        ({"volume": np.zeros((1, 3, 3, 3), np.uint8), "value": 256.0}, ValueError, "pad value"),
        ({"volume": np.zeros((1, 3, 3, 3), np.int16), "value": -40000.0}, ValueError, "pad value"),
    ],
)
def test_bad_input_raises_clear_errors(
    nat: Any, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {
        "volume": np.zeros((1, 3, 3, 3), np.float32),
        "start": (-1, -1, -1),
        "shape": (5, 5, 5),
        "mode": "constant",
        "value": 0.0,
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        nat.crop_pad(
            arguments["volume"],
            arguments["start"],
            arguments["shape"],
            arguments["mode"],
            arguments["value"],
        )
