"""k-space kernels (ghosting, spike, motion) against numpy.fft references."""

from __future__ import annotations

import numpy as np
import pytest

from torchvox._backend import native, set_num_threads


def _fftn_shift(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fftn(x))


def _ifftn_unshift(spectrum: np.ndarray) -> np.ndarray:
    return np.fft.ifftn(np.fft.ifftshift(spectrum))


def reference_ghosting(
    channel: np.ndarray, num_ghosts: int, axis: int, intensity: float, restore: float | None
) -> np.ndarray:
    """Full 3D numpy version of TorchIO's ghosting (independent reference)."""
    spectrum = _fftn_shift(channel)
    n = spectrum.shape[axis]
    mid = n // 2
    if restore is None:
        lo, hi = mid, mid + 1
    else:
        size = int(np.round(restore * n))
        lo, hi = mid - size // 2, mid + size // 2
    keep = np.take(spectrum, np.arange(lo, hi), axis=axis).copy()
    index: list[slice] = [slice(None)] * 3
    index[axis] = slice(None, None, num_ghosts)
    spectrum[tuple(index)] *= 1 - intensity
    index[axis] = slice(lo, hi)
    spectrum[tuple(index)] = keep
    return _ifftn_unshift(spectrum).real.astype(np.float32)


def reference_spike(
    channel: np.ndarray, positions: np.ndarray, intensity: float, invert: bool = False
) -> np.ndarray:
    spectrum = _fftn_shift(channel)
    for index in positions:
        artifact = np.abs(spectrum).max() * intensity
        spectrum[tuple(index)] += -artifact if invert else artifact
    return _ifftn_unshift(spectrum).real.astype(np.float32)


def reference_segments(images: list[np.ndarray], ends: list[int], sources: list[int]) -> np.ndarray:
    spectra = [_fftn_shift(image) for image in images]
    result = np.empty_like(spectra[0])
    start = 0
    for end, source in zip(ends, sources, strict=True):
        result[..., start:end] = spectra[source][..., start:end]
        start = end
    return _ifftn_unshift(result).real.astype(np.float32)


@pytest.fixture
def volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 9, 8, 7)).astype(np.float32)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize(("num_ghosts", "restore"), [(2, None), (3, 0.3), (4, 0.0), (1, 1.0)])
def test_ghosting_1d_equals_3d_fft(volume, axis, num_ghosts, restore):
    out = native().ghosting(volume, num_ghosts, axis, 0.7, restore)
    assert out.dtype == np.float32 and out.shape == volume.shape
    for c in range(volume.shape[0]):
        expected = reference_ghosting(volume[c].astype(np.float64), num_ghosts, axis, 0.7, restore)
        np.testing.assert_allclose(out[c], expected, atol=2e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ghosting_prime_lengths_match_numpy(axis, dtype):
    # 37, 29 and 23 have prime factors above 13, so lines along them are
    # filtered by the zero-padded power-of-two convolution, not FFTs of their
    # own length; 38 (2 x 19) and 17 test an odd column count and an even length.
    rng = np.random.default_rng(5)
    for shape in [(2, 37, 29, 23), (1, 38, 17, 31)]:
        data = (rng.normal(size=shape) * 50).astype(dtype)
        for num_ghosts, restore in [(4, None), (7, 0.25)]:
            out = native().ghosting(data, num_ghosts, axis, 0.8, restore)
            for c in range(shape[0]):
                expected = reference_ghosting(
                    data[c].astype(np.float64), num_ghosts, axis, 0.8, restore
                )
                np.testing.assert_allclose(out[c], expected, atol=2e-4, rtol=0)


def test_ghosting_zero_intensity_is_identity(volume):
    out = native().ghosting(volume, 3, 1, 0.0)
    np.testing.assert_allclose(out, volume, atol=1e-5)


def test_ghosting_float64_and_integer_inputs():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 100, size=(1, 6, 5, 4)).astype(np.int16)
    out = native().ghosting(data, 2, 0, 0.5)
    expected = reference_ghosting(data[0].astype(np.float64), 2, 0, 0.5, None)
    np.testing.assert_allclose(out[0], expected, atol=1e-4)
    out64 = native().ghosting(data.astype(np.float64), 2, 0, 0.5)
    np.testing.assert_allclose(out64[0], expected, atol=1e-5)


@pytest.mark.parametrize("shift", [0.0, -3.0])
@pytest.mark.parametrize("invert", [False, True])
def test_spike_matches_fft_reference(volume, shift, invert):
    data = np.abs(volume) + shift  # non-negative (DC shortcut) and signed images
    positions = np.array([[1, 2, 3], [4, 4, 3], [1, 2, 3], [8, 0, 6]])
    out = native().spike(data, [tuple(p) for p in positions.tolist()], 1.7, invert)
    for c in range(data.shape[0]):
        expected = reference_spike(data[c].astype(np.float64), positions, 1.7, invert)
        np.testing.assert_allclose(out[c], expected, atol=1e-4, rtol=1e-5)


def test_spike_at_dc_repeated_on_non_negative_image(volume):
    data = np.abs(volume)
    positions = np.array([[4, 4, 3], [4, 4, 3], [0, 1, 2]])  # DC (shifted centre) twice
    out = native().spike(data, [tuple(p) for p in positions.tolist()], 0.8, True)
    expected = reference_spike(data[0].astype(np.float64), positions, 0.8, True)
    np.testing.assert_allclose(out[0], expected, atol=1e-4, rtol=1e-5)


def test_spike_adds_a_single_frequency(volume):
    data = volume[:1]
    out = native().spike(data, [(2, 5, 1)], 2.0)
    difference = np.fft.fftn((out - data)[0].astype(np.float64))
    magnitude = np.abs(difference)
    # A real cosine: exactly the frequency and its mirror are non-zero.
    big = np.argwhere(magnitude > 1e-3 * magnitude.max())
    assert len(big) == 2
    frequency = tuple((np.array([2, 5, 1]) - np.array([9, 8, 7]) // 2) % np.array([9, 8, 7]))
    assert frequency in {tuple(b) for b in big}


def test_motion_segments_match_fft_reference(volume):
    ends, sources = [2, 5, 7], [1, 0, 2]
    # Identity transforms leave the copies equal to the input: all segments
    # then reassemble the input itself.
    eye = np.eye(4)
    out = native().motion(volume, eye, [eye, eye], "linear", ends, sources)
    np.testing.assert_allclose(out, volume, atol=1e-5)
    # Whole-voxel translations are exact with linear interpolation, so the
    # moved copies are known: compare with a numpy segment assembly.
    shift = np.eye(4)
    shift[:3, 3] = [1, 0, 0]  # output point p samples the input at p + (1, 0, 0)
    out = native().motion(volume, eye, [shift, eye], "linear", ends, sources)
    for c in range(volume.shape[0]):
        channel = volume[c].astype(np.float64)
        shifted = np.full_like(channel, channel.min())
        shifted[:-1] = channel[1:]
        expected = reference_segments([channel, shifted, channel], ends, sources)
        np.testing.assert_allclose(out[c], expected, atol=2e-5)


def test_threads_do_not_change_results(volume):
    big = np.random.default_rng(3).normal(size=(1, 20, 18, 16)).astype(np.float32)
    primes = np.random.default_rng(4).normal(size=(1, 23, 19, 17)).astype(np.float32)
    results = []
    for threads in (1, 2):
        set_num_threads(threads)
        results.append(
            (
                native().ghosting(big, 3, 0, 0.6, 0.2),
                native().ghosting(primes, 3, 0, 0.6, 0.2),
                native().ghosting(primes, 4, 1, 0.9, None),
                native().spike(big, [(1, 2, 3), (5, 5, 5)], 1.0),
                native().motion(big, np.eye(4), [np.eye(4)], "linear", [8, 16], [0, 1]),
            )
        )
    set_num_threads(None)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_input_raises_value_or_type_error(volume):
    n = native()
    with pytest.raises(ValueError):
        n.ghosting(volume, 0, 0, 0.5)
    with pytest.raises(ValueError):
        n.ghosting(volume, 2, 3, 0.5)
    with pytest.raises(ValueError):
        n.ghosting(volume, 2, 0, 0.5, 1.5)
    with pytest.raises(ValueError):
        n.ghosting(volume[0], 2, 0, 0.5)
    with pytest.raises(ValueError):
        n.ghosting(volume[:, ::2], 2, 0, 0.5)
    with pytest.raises(ValueError):
        n.ghosting(np.zeros((1, 0, 2, 2), np.float32), 2, 0, 0.5)
    with pytest.raises(TypeError):
        n.ghosting(volume.astype(np.complex64), 2, 0, 0.5)
    with pytest.raises(ValueError):
        n.spike(volume, [(9, 0, 0)], 1.0)
    with pytest.raises(ValueError):
        n.spike(volume, [(0, 0, 0)], float("nan"))
    with pytest.raises(ValueError):
        n.motion(volume, np.eye(4), [np.eye(4)], "linear", [3, 2], [0, 1])
    with pytest.raises(ValueError):
        n.motion(volume, np.eye(4), [np.eye(4)], "sinc", [3, 7], [0, 1])
    singular = np.zeros((4, 4))
    with pytest.raises(ValueError):
        n.motion(volume, singular, [np.eye(4)], "linear", [3, 7], [0, 1])
