"""Gaussian filter, bias field, noise and gamma kernels against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from torchvox._backend import native, set_num_threads


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8, np.int32, np.int64])
@pytest.mark.parametrize(
    "sigmas", [(1.0, 0.5, 2.0), (0.0, 1.3, 0.0), (3.0, 2.5, 4.0), (0.3, 0.0, 0.7)]
)
def test_gaussian_matches_scipy(dtype, sigmas):
    rng = np.random.default_rng(0)
    data = (rng.random((2, 7, 9, 5)) * 200).astype(dtype)
    out = native().gaussian_filter(data, sigmas)
    assert out.dtype == data.dtype
    for c in range(2):
        expected = ndi.gaussian_filter(data[c], sigmas)
        if np.issubdtype(dtype, np.integer):
            # Integer passes truncate like SciPy's casts: identical but for
            # values within rounding of an integer.
            assert np.mean(out[c] != expected) < 0.01
            np.testing.assert_allclose(out[c], expected, atol=1)
        else:
            np.testing.assert_allclose(out[c], expected, rtol=1e-5, atol=1e-5 * 200)


def test_gaussian_preserves_constant_and_mean():
    data = np.full((1, 6, 7, 8), 3.25, np.float32)
    out = native().gaussian_filter(data, (2.0, 1.0, 5.0))
    np.testing.assert_allclose(out, data, rtol=1e-6)
    ints = np.full((1, 6, 7, 8), 5, np.int16)
    np.testing.assert_array_equal(native().gaussian_filter(ints, (1.3, 0.7, 2.1)), ints)


def test_correlate_separable_with_explicit_kernels():
    data = np.random.default_rng(1).random((1, 5, 6, 7))
    kernel = [0.25, 0.5, 0.25]
    out = native().correlate_separable(data, [kernel, None, kernel])
    expected = ndi.correlate1d(ndi.correlate1d(data[0], kernel, axis=0), kernel, axis=2)
    np.testing.assert_allclose(out[0], expected, rtol=1e-12)


def _torchio_style_field(shape, order, coefficients):
    """Independent float64 reference: meshgrid of normalised coordinates."""
    axes = []
    for n in shape:
        u = np.arange(n) - (n - 1) / 2
        if n > 1:
            u = u / u.max()
        axes.append(u)
    x, y, z = np.meshgrid(*axes, indexing="ij")
    field = np.zeros(shape)
    index = 0
    for p in range(order + 1):
        for q in range(order + 1 - p):
            for r in range(order + 1 - p - q):
                field += coefficients[index] * x**p * y**q * z**r
                index += 1
    return np.exp(field)


@pytest.mark.parametrize("order", [0, 1, 3, 5])
def test_bias_field_matches_reference(order):
    rng = np.random.default_rng(order)
    n = (order + 1) * (order + 2) * (order + 3) // 6
    coefficients = rng.uniform(-0.5, 0.5, n).tolist()
    shape = (8, 5, 1) if order == 5 else (9, 6, 7)
    field = native().bias_field_map(shape, order, coefficients)
    expected = _torchio_style_field(shape, order, coefficients)
    np.testing.assert_allclose(field, expected, rtol=5e-6)
    data = rng.random((2, *shape)).astype(np.float32)
    out = native().bias_field(data, order, coefficients)
    np.testing.assert_allclose(out, data * expected.astype(np.float32), rtol=1e-5)
    back = native().bias_field(out, order, coefficients, True)
    np.testing.assert_allclose(back, data, rtol=2e-5)


def test_bias_field_dtypes_and_identity():
    data = np.arange(60, dtype=np.int16).reshape(1, 3, 4, 5)
    out = native().bias_field(data, 1, [0.0] * 4)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data.astype(np.float32))
    assert native().bias_field(data.astype(np.float64), 1, [0.1] * 4).dtype == np.float64
    with pytest.raises(ValueError):
        native().bias_field(data, 3, [0.0] * 19)


def test_noise_statistics_inverse_and_threads():
    data = np.zeros((2, 30, 40, 50), np.float32)
    results = []
    for threads in (1, 2):
        set_num_threads(threads)
        results.append(native().noise(data, 0.5, 0.25, 1234))
    set_num_threads(None)
    np.testing.assert_array_equal(results[0], results[1])
    noisy = results[0]
    assert abs(noisy.mean() - 0.5) < 0.005
    assert abs(noisy.std() - 0.25) < 0.005
    assert not np.array_equal(noisy, native().noise(data, 0.5, 0.25, 1235))
    image = np.random.default_rng(2).random((1, 6, 7, 8))
    back = native().noise(native().noise(image, 0.1, 2.0, 9), 0.1, 2.0, 9, True)
    np.testing.assert_allclose(back, image, atol=1e-12)
    assert native().noise(image.astype(np.uint8), 0, 1, 3).dtype == np.float32
    with pytest.raises(ValueError):
        native().noise(image, 0.0, -1.0, 3)


def test_gamma_matches_formula():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(2, 4, 5, 6)).astype(np.float64)
    data[1] = np.abs(data[1])
    out = native().gamma(data, [0.7, 1.6])
    assert out.dtype == np.float32
    x = data.astype(np.float32)
    expected0 = np.sign(x[0]) * np.abs(x[0]) ** np.float32(0.7)
    np.testing.assert_allclose(out[0], expected0, rtol=1e-6)
    np.testing.assert_allclose(out[1], x[1] ** np.float32(1.6), rtol=1e-6)
    inverse = native().gamma(data, [0.7, 1.6], True)
    np.testing.assert_allclose(inverse[1], x[1] * x[1] ** np.float32(1 - 1.6), rtol=1e-6)
    with pytest.raises(ValueError):
        native().gamma(data, [1.0])
    with pytest.raises(ValueError):
        native().gamma(data, [1.0, float("inf")])


@pytest.mark.parametrize("name", ["gaussian_filter", "bias_field", "noise", "gamma"])
def test_bad_arrays(name):
    n = native()
    calls = {
        "gaussian_filter": lambda v: n.gaussian_filter(v, (1.0, 1.0, 1.0)),
        "bias_field": lambda v: n.bias_field(v, 0, [0.0]),
        "noise": lambda v: n.noise(v, 0.0, 1.0, 0),
        "gamma": lambda v: n.gamma(v, [1.0]),
    }
    call = calls[name]
    with pytest.raises(ValueError):
        call(np.zeros((3, 3, 3), np.float32))
    with pytest.raises(ValueError):
        call(np.zeros((1, 4, 3, 3), np.float32)[:, ::2])
    with pytest.raises(ValueError):
        call(np.zeros((1, 0, 3, 3), np.float32))
    with pytest.raises(TypeError):
        call(np.zeros((1, 3, 3, 3), np.float16))
    with pytest.raises(ValueError):
        n.gaussian_filter(np.zeros((1, 3, 3, 3), np.float32), (-1.0, 1.0, 1.0))
