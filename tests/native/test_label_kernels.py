"""Label kernels of the Rust core (and the patch-swap and histogram-map kernels)
against independent references: torch, NumPy, scipy.ndimage and SimpleITK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F  # noqa: N812
from scipy import ndimage

from torchvox._backend import native, set_num_threads

DTYPES = [np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64]


@pytest.fixture(scope="module")
def nat() -> Any:
    return native()


def blobs(shape: tuple[int, ...], fraction: float, seed: int, sigma: float = 1.0) -> np.ndarray:
    """Binary blobs of roughly ``fraction`` foreground: thresholded smoothed noise."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (noise > np.quantile(noise, 1 - fraction)).astype(np.uint8)


def multilabel(shape: tuple[int, int, int], seed: int, num_labels: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    edges = np.quantile(smooth, np.linspace(0, 1, num_labels + 1)[1:-1])
    return np.digitize(smooth, edges).astype(np.int64)[np.newaxis]


def with_threads(nat: Any, threads: int, function: Callable[[], Any]) -> Any:
    set_num_threads(threads)
    try:
        native()  # applies the thread count to the pool
        return function()
    finally:
        set_num_threads(None)


def assert_same_for_one_and_two_threads(nat: Any, function: Callable[[], Any]) -> None:
    one = with_threads(nat, 1, function)
    two = with_threads(nat, 2, function)
    if isinstance(one, tuple):
        for a, b in zip(one, two, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_array_equal(one, two)


# --- one-hot and argmax --------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_hot_matches_torch_and_keeps_dtype(nat: Any, dtype: type) -> None:
    labels = multilabel((9, 10, 11), seed=1, num_labels=5).astype(dtype)
    encoded = nat.one_hot(labels)
    tensor = torch.from_numpy(labels[0])
    expected = F.one_hot(tensor.long()).permute(3, 0, 1, 2).numpy().astype(dtype)
    assert encoded.dtype == labels.dtype
    np.testing.assert_array_equal(encoded, expected)
    wide = nat.one_hot(labels, num_classes=8)
    np.testing.assert_array_equal(wide, F.one_hot(tensor.long(), 8).permute(3, 0, 1, 2).numpy())
    back = nat.argmax(encoded)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, labels.astype(np.int64))


def test_one_hot_truncates_floats_like_torch_long(nat: Any) -> None:
    labels = np.array([0.2, 1.9, 2.5, -0.7, 3.0], np.float32).reshape(1, 1, 1, 5)
    expected = F.one_hot(torch.from_numpy(labels[0]).long()).permute(3, 0, 1, 2).float()
    np.testing.assert_array_equal(nat.one_hot(labels), expected.numpy())


def test_argmax_matches_torch_with_ties_and_nan(nat: Any, rng: np.random.Generator) -> None:
    volume = rng.integers(0, 3, (4, 6, 7, 8)).astype(np.float32)  # many ties
    volume[1, 0, 0, :3] = np.nan
    expected = torch.from_numpy(volume).argmax(dim=0, keepdim=True).numpy()
    np.testing.assert_array_equal(nat.argmax(volume), expected)
    probabilities = rng.random((3, 5, 5, 5))
    probabilities[:, 0, 0, 0] = 0
    marked = nat.argmax(probabilities, zero_max_as=-1)
    expected = probabilities.argmax(axis=0)[np.newaxis]
    expected[0, 0, 0, 0] = -1
    np.testing.assert_array_equal(marked, expected)


def test_one_hot_bad_input(nat: Any) -> None:
    good = np.zeros((1, 2, 2, 2), np.int64)
    with pytest.raises(ValueError, match="non-negative"):
        nat.one_hot(good - 1)
    with pytest.raises(ValueError, match="smaller than num_classes"):
        nat.one_hot(good + 3, num_classes=3)
    with pytest.raises(ValueError, match="single-channel"):
        nat.one_hot(np.zeros((2, 2, 2, 2), np.int64))
    with pytest.raises(ValueError, match="finite"):
        nat.one_hot(np.full((1, 2, 2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="4 dimensions"):
        nat.one_hot(np.zeros((2, 2, 2), np.int64))
    with pytest.raises(TypeError, match="dtype"):
        nat.one_hot(np.zeros((1, 2, 2, 2), np.uint16))
    with pytest.raises(ValueError, match="contiguous"):
        nat.one_hot(np.zeros((1, 4, 2, 2), np.int64)[:, ::2])
    with pytest.raises(ValueError, match="no voxels"):
        nat.one_hot(np.zeros((1, 0, 2, 2), np.int64))


# --- remapping and label values --------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_remap_matches_numpy_reference_inside_mask(
    nat: Any, dtype: type, rng: np.random.Generator
) -> None:
    labels = multilabel((8, 9, 10), seed=2, num_labels=5).astype(dtype)
    mapping = {1: 2, 2: 1, 3: 1, 4: 7}
    mask = rng.random((1, 8, 9, 10)) > 0.3
    expected = labels.copy()
    for old, new in mapping.items():
        expected[mask & (labels == old)] = new
    remapped = nat.remap_labels(labels, list(mapping.items()), mask.astype(np.uint8))
    assert remapped.dtype == labels.dtype
    np.testing.assert_array_equal(remapped, expected)
    everywhere = nat.remap_labels(labels, list(mapping.items()))
    np.testing.assert_array_equal(everywhere, np.vectorize(lambda v: mapping.get(v, v))(labels))


def test_remap_per_channel_mask_and_bad_values(nat: Any) -> None:
    labels = np.array([1, 1, 2, 2], np.uint8).reshape(2, 1, 1, 2)
    mask = np.array([1, 0, 0, 1], np.uint8).reshape(2, 1, 1, 2)
    out = nat.remap_labels(labels, [(1, 5), (2, 6)], mask)
    np.testing.assert_array_equal(out.ravel(), [5, 1, 2, 6])
    with pytest.raises(ValueError, match="cannot be represented"):
        nat.remap_labels(labels, [(1, 300)])
    with pytest.raises(ValueError, match="cannot be represented"):
        nat.remap_labels(labels, [(1, 0.5)])
    with pytest.raises(ValueError, match="does not match"):
        nat.remap_labels(labels, [(1, 2)], np.ones((1, 1, 1, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        nat.remap_labels(labels, [(1, 2)], np.ones((1, 1, 1, 2), bool))


@pytest.mark.parametrize("dtype", DTYPES)
def test_unique_labels_and_integrality(nat: Any, dtype: type) -> None:
    labels = (multilabel((7, 8, 9), seed=3, num_labels=6) * 3 - 4).astype(
        dtype if dtype != np.uint8 else np.int16
    )
    assert nat.unique_labels(labels) == np.unique(labels).tolist()
    assert nat.labels_are_integral(labels)
    fractional = np.array([0.0, 1.5], np.float32).reshape(1, 1, 1, 2)
    assert not nat.labels_are_integral(fractional)
    with pytest.raises(ValueError, match="NaN"):
        nat.unique_labels(np.full((1, 1, 1, 2), np.nan))


# --- connected components ----------------------------------------------------------

STRUCTURES = {False: ndimage.generate_binary_structure(3, 1), True: np.ones((3, 3, 3))}


@pytest.mark.parametrize("fully_connected", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_components_equal_scipy_label(nat: Any, fully_connected: bool, seed: int) -> None:
    volume = blobs((1, 23, 19, 17), 0.35, seed, sigma=0.8)
    labels, counts = nat.connected_components(volume, fully_connected=fully_connected)
    expected, count = ndimage.label(volume[0], STRUCTURES[fully_connected])
    assert counts == [count]
    assert labels.dtype == np.int32
    # Same partition and, as both number components in C order, the same labels.
    np.testing.assert_array_equal(labels[0], expected)


def sitk_relabelled(array: np.ndarray, fully_connected: bool) -> np.ndarray:
    image = sitk.GetImageFromArray(array)
    components = sitk.ConnectedComponent(image, fully_connected)
    return sitk.GetArrayFromImage(sitk.RelabelComponent(components))


@pytest.mark.parametrize("fully_connected", [False, True])
@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_relabel_by_size_equals_simpleitk_in_both_orders(
    nat: Any, fully_connected: bool, seed: int
) -> None:
    # Many tiny components, so ties between equal sizes are common.
    volume = blobs((1, 14, 13, 12), 0.25, seed, sigma=0.4)
    # SimpleITK's raster order is C order of an array given to GetImageFromArray...
    expected_c = sitk_relabelled(volume[0], fully_connected)
    labels, _ = nat.connected_components(volume, fully_connected, sort_by_size=True, order="C")
    np.testing.assert_array_equal(labels[0], expected_c)
    # ...and Fortran order of TorchIO's (I, J, K) arrays, which TorchIO transposes.
    expected_f = sitk_relabelled(volume[0].T.copy(), fully_connected).T
    labels, _ = nat.connected_components(volume, fully_connected, sort_by_size=True, order="F")
    np.testing.assert_array_equal(labels[0], expected_f)
    largest = nat.keep_largest_component(volume, fully_connected, order="F")
    assert largest.dtype == np.uint8
    np.testing.assert_array_equal(largest[0], (expected_f == 1).astype(np.uint8))


def test_components_treat_every_nonzero_value_as_foreground(nat: Any) -> None:
    labels = multilabel((10, 11, 12), seed=7, num_labels=4).astype(np.int16)
    ours, counts = nat.connected_components(labels, sort_by_size=True, order="C")
    np.testing.assert_array_equal(ours[0], sitk_relabelled(labels[0], False))
    assert counts[0] == sitk_relabelled(labels[0], False).max()


def test_components_per_channel_and_empty_channel(nat: Any) -> None:
    volume = np.concatenate([blobs((1, 9, 9, 9), 0.3, 8), np.zeros((1, 9, 9, 9), np.uint8)])
    labels, counts = nat.connected_components(volume)
    assert counts[1] == 0
    assert counts[0] == ndimage.label(volume[0], STRUCTURES[False])[1]
    assert not labels[1].any()
    assert not nat.keep_largest_component(volume)[1].any()


def test_components_bad_input(nat: Any) -> None:
    with pytest.raises(ValueError, match="order"):
        nat.connected_components(np.zeros((1, 2, 2, 2), np.uint8), order="X")
    with pytest.raises(ValueError, match="NaN"):
        nat.keep_largest_component(np.full((1, 2, 2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="no voxels"):
        nat.connected_components(np.zeros((1, 2, 0, 2), np.uint8))


# --- contours ----------------------------------------------------------------------------


@pytest.mark.parametrize("fully_connected", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contour_equals_simpleitk_binary_contour(
    nat: Any, fully_connected: bool, seed: int
) -> None:
    volume = blobs((1, 21, 18, 15), 0.4, seed)
    expected = sitk.GetArrayFromImage(
        sitk.BinaryContour(sitk.GetImageFromArray(volume[0]), fully_connected)
    )
    contour = nat.binary_contour(volume, fully_connected=fully_connected)
    np.testing.assert_array_equal(contour[0], expected)
    assert 0 < contour.sum() < volume.sum()


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64])
def test_contour_keeps_other_labels_like_simpleitk(nat: Any, dtype: type) -> None:
    labels = multilabel((12, 13, 14), seed=4, num_labels=3).astype(dtype)
    expected = sitk.GetArrayFromImage(sitk.BinaryContour(sitk.GetImageFromArray(labels[0])))
    contour = nat.binary_contour(labels)
    assert contour.dtype == labels.dtype
    np.testing.assert_array_equal(contour[0], expected)


def test_contour_bad_foreground(nat: Any) -> None:
    with pytest.raises(ValueError, match="cannot be represented"):
        nat.binary_contour(np.zeros((1, 2, 2, 2), np.uint8), foreground=300)


# --- labels to image -----------------------------------------------------------------


def test_labels_to_image_discrete_statistics_and_background(nat: Any) -> None:
    labels = multilabel((30, 30, 30), seed=5, num_labels=4)
    roles = [
        (0.0, "ignored", 0.0, 0.0),
        (1.0, "tissue", 0.25, 0.0),
        (2.0, "tissue", 0.75, 0.05),
        (3.0, "background", 0.0, 0.0),
    ]
    image = nat.labels_to_image_discrete(labels, roles, seed=1)
    assert image.dtype == np.float32
    assert image.shape == labels.shape
    np.testing.assert_array_equal(image[labels == 0], 0)
    np.testing.assert_array_equal(image[labels == 3], 0)
    np.testing.assert_array_equal(image[labels == 1], np.float32(0.25))
    tissue = image[labels == 2].astype(np.float64)
    assert abs(tissue.mean() - 0.75) < 0.005
    assert abs(tissue.std() - 0.05) < 0.003
    background = np.full(labels.shape, -5, np.float32)
    filled = nat.labels_to_image_discrete(labels, roles, seed=1, background=background)
    np.testing.assert_array_equal(filled[labels == 3], -5)
    np.testing.assert_array_equal(filled[labels != 3], image[labels != 3])
    # Values missing from the roles (TorchIO's -1) are background too.
    marked = np.where(labels == 3, -1, labels)
    np.testing.assert_array_equal(
        nat.labels_to_image_discrete(marked, roles[:3], seed=1, background=background), filled
    )
    assert_same_for_one_and_two_threads(
        nat, lambda: nat.labels_to_image_discrete(labels, roles, seed=9)
    )
    assert not np.array_equal(nat.labels_to_image_discrete(labels, roles, seed=2), image)


def test_labels_to_image_partial_volume_weights(nat: Any, rng: np.random.Generator) -> None:
    weights = rng.dirichlet(np.ones(3), size=(12, 13, 14)).transpose(3, 0, 1, 2)
    weights = np.ascontiguousarray(weights, np.float32)
    roles = [("ignored", 0, 0), ("tissue", 0.5, 0.0), ("tissue", 2.0, 0.0)]
    image = nat.labels_to_image_partial_volume(weights, roles, seed=0)
    expected = (0.5 * weights[1] + 2.0 * weights[2])[np.newaxis]
    np.testing.assert_allclose(image, expected, rtol=1e-6)
    background = np.full((1, 12, 13, 14), 9, np.float32)
    dropped = [("background", 0, 0), ("tissue", 0.5, 0.0), ("tissue", 2.0, 0.0)]
    filled = nat.labels_to_image_partial_volume(weights, dropped, seed=0, background=background)
    use_background = (weights[1] + weights[2] < 0.5)[np.newaxis]
    np.testing.assert_array_equal(filled[use_background], 9)
    np.testing.assert_allclose(filled[~use_background], expected[~use_background], rtol=1e-6)
    noisy = [("tissue", 1.0, 0.1)] * 3
    assert_same_for_one_and_two_threads(
        nat, lambda: nat.labels_to_image_partial_volume(weights, noisy, seed=3)
    )


def test_labels_to_image_bad_input(nat: Any) -> None:
    labels = np.zeros((1, 3, 3, 3), np.int64)
    with pytest.raises(ValueError, match="role"):
        nat.labels_to_image_discrete(labels, [(0.0, "foo", 0.0, 0.0)], seed=0)
    with pytest.raises(ValueError, match="finite"):
        nat.labels_to_image_discrete(labels, [(0.0, "tissue", np.nan, 0.0)], seed=0)
    with pytest.raises(ValueError, match="differ"):
        nat.labels_to_image_discrete(
            labels, [], seed=0, background=np.zeros((1, 3, 3, 2), np.float32)
        )
    with pytest.raises(TypeError, match="float32"):
        nat.labels_to_image_discrete(labels, [], seed=0, background=np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="channels"):
        nat.labels_to_image_partial_volume(np.zeros((2, 3, 3, 3), np.float32), [], seed=0)
    with pytest.raises(ValueError, match="one channel"):
        nat.labels_to_image_discrete(np.zeros((2, 3, 3, 3), np.int64), [], seed=0)


# --- patch swaps and the histogram map -------------------------------------------------


def swap_reference(array: np.ndarray, size: tuple[int, int, int], locations: list) -> np.ndarray:
    out = array.copy()
    for a, b in locations:
        patch_a = (slice(None), *(slice(x, x + s) for x, s in zip(a, size, strict=True)))
        patch_b = (slice(None), *(slice(x, x + s) for x, s in zip(b, size, strict=True)))
        old_a, old_b = out[patch_a].copy(), out[patch_b].copy()
        out[patch_b] = old_a
        out[patch_a] = old_b
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_swap_matches_reference_and_torchio(
    nat: Any, dtype: type, rng: np.random.Generator
) -> None:
    from torchio.transforms.augmentation.intensity.random_swap import _swap

    volume = (rng.random((2, 20, 18, 16)) * 100).astype(dtype)
    size = (4, 5, 3)
    locations = []
    while len(locations) < 30:
        a, b = (
            tuple(int(rng.integers(0, s - p + 1)) for s, p in zip(volume.shape[1:], size))
            for _ in range(2)
        )
        if any(abs(x - y) >= p for x, y, p in zip(a, b, size)):  # disjoint patches
            locations.append((a, b))
    swapped = nat.swap_patches(volume, size, locations)
    np.testing.assert_array_equal(swapped, swap_reference(volume, size, locations))
    torchio_swapped = _swap(torch.from_numpy(volume), size, locations).numpy()
    np.testing.assert_array_equal(swapped, torchio_swapped)
    restored = nat.swap_patches(swapped, size, locations[::-1])
    np.testing.assert_array_equal(restored, volume)
    with pytest.raises(ValueError, match="does not fit"):
        nat.swap_patches(volume, size, [((17, 0, 0), (0, 0, 0))])


def test_swap_overlapping_patches_reads_before_writing(nat: Any) -> None:
    volume = np.arange(2 * 10 * 9 * 8, dtype=np.float32).reshape(2, 10, 9, 8)
    locations = [((0, 1, 2), (2, 3, 3)), ((1, 1, 1), (1, 1, 1))]
    np.testing.assert_array_equal(
        nat.swap_patches(volume, (5, 4, 3), locations),
        swap_reference(volume, (5, 4, 3), locations),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_piecewise_linear_matches_numpy_digitize(
    nat: Any, dtype: type, rng: np.random.Generator
) -> None:
    volume = (rng.standard_normal((2, 9, 10, 11)) * 40).astype(dtype)
    breakpoints = np.array([-30.0, -10.0, -10.0, 0.0, 5.0, 60.0])
    slopes = rng.standard_normal(7)
    intercepts = rng.standard_normal(7)
    data = volume.reshape(-1).astype(np.float32)
    bins = np.digitize(data, breakpoints, right=False)
    expected = (slopes[bins] * data + intercepts[bins]).astype(np.float32).reshape(volume.shape)
    mapped = nat.piecewise_linear(
        volume, breakpoints.tolist(), slopes.tolist(), intercepts.tolist()
    )
    assert mapped.dtype == np.float32
    np.testing.assert_array_equal(mapped, expected)
    with pytest.raises(ValueError, match="non-decreasing"):
        nat.piecewise_linear(volume, [1.0, 0.0], [0.0] * 3, [0.0] * 3)
    with pytest.raises(ValueError, match="slopes"):
        nat.piecewise_linear(volume, [0.0], [0.0], [0.0, 0.0])


# --- threads -------------------------------------------------------------------------


def test_every_kernel_is_thread_count_independent(nat: Any) -> None:
    labels = multilabel((17, 15, 13), seed=9, num_labels=4)
    binary = blobs((1, 17, 15, 13), 0.4, 9)
    calls: list[Callable[[], Any]] = [
        lambda: nat.one_hot(labels),
        lambda: nat.argmax(nat.one_hot(labels)),
        lambda: nat.remap_labels(labels, [(1, 3), (3, 1)]),
        lambda: nat.connected_components(binary, True, True, "F"),
        lambda: nat.keep_largest_component(binary),
        lambda: nat.binary_contour(binary, True),
        lambda: nat.swap_patches(labels, (3, 3, 3), [((0, 0, 0), (5, 5, 5))]),
        lambda: nat.piecewise_linear(labels, [1.0], [2.0, 3.0], [0.0, 1.0]),
    ]
    for call in calls:
        assert_same_for_one_and_two_threads(nat, call)
    assert with_threads(nat, 1, lambda: nat.unique_labels(labels)) == with_threads(
        nat, 2, lambda: nat.unique_labels(labels)
    )
