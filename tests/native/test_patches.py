"""Patch kernels (extraction, weighted sampling, grid aggregation) against NumPy references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from torchvox._backend import native

DTYPES = [np.float32, np.float64, np.uint8, np.int16, np.int32, np.int64]


def _volume(shape: tuple[int, ...], dtype: type = np.float32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extract_patch_equals_slice(dtype: type) -> None:
    volume = _volume((2, 13, 11, 9), dtype)
    patch = native().extract_patch(volume, (3, 0, 4), (5, 11, 2))
    np.testing.assert_array_equal(patch, volume[:, 3:8, 0:11, 4:6])
    assert patch.dtype == volume.dtype
    assert patch.flags.c_contiguous


def test_extract_patches_batch_equals_slices() -> None:
    volume = _volume((3, 20, 17, 15), np.float32)
    rng = np.random.default_rng(1)
    size = (6, 5, 4)
    starts = np.stack(
        [rng.integers(0, n - s + 1, 25) for n, s in zip(volume.shape[1:], size, strict=True)],
        axis=1,
    ).astype(np.int64)
    patches = native().extract_patches(volume, starts, size)
    assert patches.shape == (25, 3, *size)
    for patch, (i, j, k) in zip(patches, starts, strict=True):
        np.testing.assert_array_equal(patch, volume[:, i : i + 6, j : j + 5, k : k + 4])


def test_extract_bad_input() -> None:
    volume = _volume((1, 8, 8, 8))
    with pytest.raises(ValueError, match="does not fit"):
        native().extract_patch(volume, (4, 0, 0), (5, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        native().extract_patch(volume, (0, 0, 0), (0, 1, 1))
    with pytest.raises(ValueError, match="dimensions"):
        native().extract_patch(volume[0], (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="contiguous"):
        native().extract_patch(volume[:, ::2], (0, 0, 0), (1, 1, 1))
    with pytest.raises(TypeError, match="dtype"):
        native().extract_patch(volume.astype(np.complex64), (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="non-negative"):
        native().extract_patches(volume, np.array([[-1, 0, 0]], dtype=np.int64), (1, 1, 1))
    with pytest.raises(ValueError, match="empty"):
        native().extract_patch(np.zeros((0, 4, 4, 4), np.float32), (0, 0, 0), (1, 1, 1))


def _torchio_style_draw(
    probability: np.ndarray, patch: tuple[int, int, int], u: float
) -> np.ndarray:
    """Independent reference: TorchIO's border clearing + np.cumsum + searchsorted."""
    data = probability.astype(np.float64).copy()
    ini = [s // 2 for s in patch]
    fin = [(s - 1) // 2 for s in patch]
    data[: ini[0]], data[:, : ini[1]], data[:, :, : ini[2]] = 0, 0, 0
    if fin[0]:
        data[-fin[0] :] = 0
    if fin[1]:
        data[:, -fin[1] :] = 0
    if fin[2]:
        data[:, :, -fin[2] :] = 0
    cdf = np.cumsum(data.ravel() / data.sum())
    index = np.searchsorted(cdf, max(np.finfo(np.float32).eps, u) * cdf[-1])
    return np.array(np.unravel_index(index, data.shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_centres_matches_inverse_cdf_reference(dtype: type) -> None:
    rng = np.random.default_rng(3)
    probability = (rng.random((12, 10, 9)) ** 4).astype(dtype)
    probability[probability < 0.1] = 0
    patch = (4, 3, 5)
    # Away from CDF steps, the chunked sum and np.cumsum pick the same voxel.
    uniforms = rng.random(300)
    centres = native().sample_centres(probability, patch, uniforms)
    assert centres.shape == (300, 3) and centres.dtype == np.int64
    expected = np.stack([_torchio_style_draw(probability, patch, u) for u in uniforms])
    np.testing.assert_array_equal(centres, expected)


def test_sample_centres_follow_the_map_statistically() -> None:
    probability = np.zeros((5, 5, 5), np.float32)
    probability[1, 2, 3] = 1
    probability[3, 3, 1] = 3
    probability[2, 1, 2] = 6
    uniforms = torch.rand(20000, generator=torch.Generator().manual_seed(0)).double().numpy()
    centres = native().sample_centres(probability, (1, 1, 1), uniforms)
    counts = {
        tuple(c): n for c, n in zip(*np.unique(centres, axis=0, return_counts=True), strict=True)
    }
    assert set(counts) == {(1, 2, 3), (3, 3, 1), (2, 1, 2)}
    assert abs(counts[(2, 1, 2)] / 20000 - 0.6) < 0.02
    assert abs(counts[(3, 3, 1)] / 20000 - 0.3) < 0.02


def test_sample_centres_bad_maps() -> None:
    probability = np.ones((6, 6, 6), np.float32)
    probability[2, 2, 2] = -1
    with pytest.raises(ValueError, match="negative"):
        native().sample_centres(probability, (1, 1, 1), np.array([0.5]))
    probability[2, 2, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        native().sample_centres(probability, (1, 1, 1), np.array([0.5]))
    border = np.zeros((6, 6, 6), np.float64)
    border[0, 3, 3] = 1
    with pytest.raises(ValueError, match="empty probability map"):
        native().sample_centres(border, (4, 4, 4), np.array([0.5]))
    with pytest.raises(ValueError, match="larger"):
        native().sample_centres(border, (7, 1, 1), np.array([0.5]))
    with pytest.raises(TypeError, match="float32, float64 or uint8"):
        native().sample_centres(border.astype(np.int32), (1, 1, 1), np.array([0.5]))


def test_kept_centre_table_draws_like_one_shot_sampling() -> None:
    rng = np.random.default_rng(3)
    probability = rng.random((9, 8, 7)).astype(np.float32)
    probability[probability < 0.6] = 0
    patch = (3, 4, 2)
    uniforms = rng.random(500)
    table = native().centre_table(probability, patch)
    # One row sum per (i, j) of the centre box, non-decreasing.
    assert table.shape == ((9 - 2) * (8 - 3),)
    assert np.all(np.diff(table) >= 0)
    expected = native().sample_centres(probability, patch, uniforms)
    halves = [
        native().draw_centres(probability, patch, table, part) for part in uniforms.reshape(5, 100)
    ]
    np.testing.assert_array_equal(np.concatenate(halves), expected)
    # A uint8 mask samples like the same mask in float32.
    mask = (probability > 0).astype(np.uint8)
    np.testing.assert_array_equal(
        native().sample_centres(mask, patch, uniforms),
        native().sample_centres(mask.astype(np.float32), patch, uniforms),
    )


def test_centre_table_of_another_map_is_refused() -> None:
    probability = np.ones((6, 6, 6), np.float32)
    table = native().centre_table(probability, (2, 2, 2))
    with pytest.raises(ValueError, match="rows"):
        native().draw_centres(probability, (4, 4, 4), table, np.array([0.5]))
    with pytest.raises(ValueError, match="rows"):
        native().draw_centres(np.ones((7, 6, 6), np.float32), (2, 2, 2), table, np.array([0.5]))
    with pytest.raises(ValueError, match="non-decreasing"):
        native().draw_centres(probability, (2, 2, 2), table[::-1].copy(), np.array([0.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        native().draw_centres(probability, (2, 2, 2), table, np.array([1.5]))


def _grid_locations(shape: tuple[int, int, int], patch: tuple[int, ...], overlap: tuple[int, ...]):
    per_axis = []
    for n, p, o in zip(shape, patch, overlap, strict=True):
        starts = list(range(0, n - p + 1, p - o))
        if starts[-1] != n - p:
            starts.append(n - p)
        per_axis.append(starts)
    grid = np.array(np.meshgrid(*per_axis, indexing="ij")).reshape(3, -1).T
    return np.hstack([grid, grid + np.array(patch)]).astype(np.int64)


def _aggregate(volume, patch, overlap, mode, dtype=np.float32, ds=1):
    locations = _grid_locations(volume.shape[1:], patch, overlap)
    patches = native().extract_patches(volume, locations[:, :3].copy(), patch)
    if ds > 1:
        patches = np.ascontiguousarray(patches[:, :, ::ds, ::ds, ::ds])
    shape = tuple(n // ds for n in volume.shape[1:])
    output = np.zeros((volume.shape[0], *shape), dtype)
    weights = None if mode == "crop" else np.zeros((1, *shape), dtype)
    native().aggregate_patches(
        output, weights, patches.astype(dtype), locations, mode, overlap, False, ds
    )
    return output if weights is None else output / weights


@pytest.mark.parametrize("mode", ["crop", "average", "hann"])
@pytest.mark.parametrize(
    ("shape", "patch", "overlap"),
    [((17, 13, 11), (6, 5, 4), (2, 2, 0)), ((9, 9, 9), (9, 4, 3), (0, 2, 2))],
)
def test_aggregation_reconstructs_the_volume(mode, shape, patch, overlap) -> None:
    # Integer-valued floats: sums of up to 8 contributions and their division
    # by the count are exact, so crop and average must reproduce bit for bit.
    volume = np.round(_volume((2, *shape), np.float32))
    output = _aggregate(volume, patch, overlap, mode)
    if mode == "hann":
        np.testing.assert_allclose(output, volume, rtol=1e-6, atol=1e-5)
    else:
        np.testing.assert_array_equal(output, volume)


def test_hann_matches_torch_window_products() -> None:
    patch = (5, 4, 3)
    window = torch.as_tensor([1.0])
    for axis, size in enumerate(patch):
        shape = [1, 1, 1]
        shape[axis] = size
        window = window * torch.hann_window(size + 2, periodic=False)[1:-1].view(*shape)
    ones = np.ones((1, 1, *patch), np.float32)
    output = np.zeros((1, *patch), np.float32)
    weights = np.zeros((1, *patch), np.float32)
    location = np.array([[0, 0, 0, *patch]], np.int64)
    native().aggregate_patches(output, weights, ones, location, "hann", (0, 0, 0), False, 1)
    np.testing.assert_allclose(weights[0], window.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(output[0], window.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["crop", "average"])
def test_downsampled_aggregation(mode) -> None:
    volume = np.round(_volume((1, 16, 16, 12), np.float64))
    output = _aggregate(volume, (8, 8, 6), (4, 4, 2), mode, np.float64, ds=2)
    np.testing.assert_array_equal(output, volume[:, ::2, ::2, ::2])


def test_aggregate_bad_input() -> None:
    output = np.zeros((1, 8, 8, 8), np.float32)
    patches = np.ones((1, 1, 4, 4, 4), np.float32)
    location = np.array([[0, 0, 0, 4, 4, 4]], np.int64)
    with pytest.raises(ValueError, match="overlap mode"):
        native().aggregate_patches(output, None, patches, location, "max", (0, 0, 0), False, 1)
    with pytest.raises(ValueError, match="weights must have shape"):
        weights = np.zeros((1, 8, 8, 7), np.float32)
        native().aggregate_patches(
            output, weights, patches, location, "average", (0, 0, 0), False, 1
        )
    with pytest.raises(ValueError, match="does not match"):
        wrong = np.array([[0, 0, 0, 5, 4, 4]], np.int64)
        native().aggregate_patches(output, None, patches, wrong, "crop", (0, 0, 0), False, 1)
    with pytest.raises(TypeError, match="dtype"):
        native().aggregate_patches(
            output, None, patches.astype(np.float64), location, "crop", (0, 0, 0), False, 1
        )
    with pytest.raises(ValueError, match="exceeds"):
        far = np.array([[6, 0, 0, 10, 4, 4]], np.int64)
        native().aggregate_patches(output, None, patches, far, "crop", (0, 0, 0), False, 1)
    with pytest.raises(ValueError, match="float"):
        ints = np.zeros((1, 8, 8, 8), np.int32)
        native().aggregate_patches(
            ints, ints[:1].copy(), patches.astype(np.int32), location, "hann", (0, 0, 0), False, 1
        )


@pytest.mark.parametrize("mode", ["average", "hann"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_weights_divide_like_an_accumulated_weight_volume(mode, dtype) -> None:
    rng = np.random.default_rng(5)
    shape, patch = (13, 11, 9), (5, 4, 3)
    starts = ([0, 4, 8], [0, 3, 7], [0, 2, 4, 6])
    corners = np.array(list(itertools.product(*starts)), np.int64)
    locations = np.concatenate([corners, corners + np.array(patch)], axis=1)
    patches = rng.random((len(corners), 2, *patch)).astype(dtype)
    summed = np.zeros((2, *shape), dtype)
    weights = np.zeros((1, *shape), dtype)
    native().aggregate_patches(summed, weights, patches, locations, mode, (0, 0, 0), False, 1)
    quotient = native().divide_by_grid_weights(summed, starts, patch, mode)
    assert quotient.dtype == dtype
    np.testing.assert_allclose(quotient, summed / weights, rtol=1e-6)


def test_grid_weights_bad_input() -> None:
    summed = np.zeros((1, 8, 8, 8), np.float32)
    starts = ([0, 4], [0, 4], [0, 4])
    with pytest.raises(ValueError, match="crop"):
        native().divide_by_grid_weights(summed, starts, (4, 4, 4), "crop")
    with pytest.raises(ValueError, match="exceeds"):
        native().divide_by_grid_weights(summed, ([0, 6], [0], [0]), (4, 4, 4), "average")
    with pytest.raises(TypeError, match="float32 or float64"):
        native().divide_by_grid_weights(summed.astype(np.int32), starts, (4, 4, 4), "average")


@pytest.mark.parametrize("dtype", DTYPES)
def test_extract_patches_into_a_buffer(dtype: type) -> None:
    volume = _volume((2, 12, 11, 10), dtype)
    starts = np.array([[0, 0, 0], [4, 5, 6], [7, 1, 3]], np.int64)
    expected = native().extract_patches(volume, starts, (5, 6, 4))
    buffer = np.full((3, 2, 5, 6, 4), 7, dtype)
    returned = native().extract_patches(volume, starts, (5, 6, 4), buffer)
    assert returned is buffer
    np.testing.assert_array_equal(buffer, expected)


def test_extract_patches_into_bad_buffers() -> None:
    volume = _volume((1, 8, 8, 8))
    starts = np.array([[0, 0, 0], [4, 4, 4]], np.int64)
    with pytest.raises(ValueError, match="shape"):
        native().extract_patches(volume, starts, (4, 4, 4), np.zeros((1, 1, 4, 4, 4), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        native().extract_patches(volume, starts, (4, 4, 4), np.zeros((2, 1, 4, 4, 4)))
    strided = np.zeros((2, 1, 4, 4, 8), np.float32)[..., ::2]
    with pytest.raises(ValueError, match="contiguous"):
        native().extract_patches(volume, starts, (4, 4, 4), strided)
    with pytest.raises(ValueError, match="does not fit"):
        far = np.array([[5, 0, 0]], np.int64)
        native().extract_patches(volume, far, (4, 4, 4), np.zeros((1, 1, 4, 4, 4), np.float32))


@pytest.mark.parametrize("mode", ["average", "hann"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_weights_divide_in_place_like_a_new_array(mode, dtype) -> None:
    rng = np.random.default_rng(6)
    summed = rng.random((2, 13, 11, 9)).astype(dtype)
    starts = ([0, 4, 8], [0, 3, 7], [0, 2, 4, 6])
    quotient = native().divide_by_grid_weights(summed, starts, (5, 4, 3), mode)
    divided = summed.copy()
    returned = native().divide_by_grid_weights(divided, starts, (5, 4, 3), mode, in_place=True)
    assert returned is divided
    np.testing.assert_array_equal(divided, quotient)
    with pytest.raises(ValueError, match="contiguous"):
        native().divide_by_grid_weights(
            np.asfortranarray(summed), starts, (5, 4, 3), mode, in_place=True
        )


@pytest.mark.parametrize("mode", ["average", "hann"])
def test_dividing_planes_in_place_leaves_the_others(mode) -> None:
    rng = np.random.default_rng(7)
    summed = rng.random((2, 13, 11, 9)).astype(np.float32)
    starts = ([0, 4, 8], [0, 3, 7], [0, 2, 4, 6])
    quotient = native().divide_by_grid_weights(summed, starts, (5, 4, 3), mode)
    planes = np.arange(13) % 4 == 1
    divided = summed.copy()
    native().divide_by_grid_weights(divided, starts, (5, 4, 3), mode, in_place=True, planes=planes)
    np.testing.assert_array_equal(divided[:, planes], quotient[:, planes])
    np.testing.assert_array_equal(divided[:, ~planes], summed[:, ~planes])
    with pytest.raises(ValueError, match="in_place"):
        native().divide_by_grid_weights(summed, starts, (5, 4, 3), mode, planes=planes)
    with pytest.raises(ValueError, match="one flag per output plane"):
        native().divide_by_grid_weights(
            summed, starts, (5, 4, 3), mode, in_place=True, planes=planes[1:]
        )


def test_aggregating_and_dividing_complete_planes_bad_input() -> None:
    volume = np.round(_volume((1, 9, 9, 9), np.float32))
    locations = _grid_locations((9, 9, 9), (5, 5, 5), (2, 2, 2))
    patches = native().extract_patches(volume, locations[:, :3].copy(), (5, 5, 5))
    starts = [[0, 3, 4], [0, 3, 4], [0, 3, 4]]
    flags = np.zeros(9, dtype=bool)

    def aggregate(output, mode="average", complete=flags, batch=patches):
        native().aggregate_patches_dividing(
            output, batch, locations, mode, (2, 2, 2), False, 1, flags.copy(), complete, starts
        )

    with pytest.raises(TypeError, match="float32 or float64"):
        aggregate(np.zeros((1, 9, 9, 9), np.int32), batch=patches.astype(np.int32))
    with pytest.raises(ValueError, match="crop"):
        aggregate(np.zeros((1, 9, 9, 9), np.float32), mode="crop")
    with pytest.raises(ValueError, match="one flag per output plane"):
        aggregate(np.zeros((1, 9, 9, 9), np.float32), complete=flags[1:])
    # Every plane flagged in one batch holding the whole grid: the volume back.
    output = np.zeros((1, 9, 9, 9), np.float32)
    aggregate(output, complete=np.ones(9, dtype=bool))
    np.testing.assert_array_equal(output, volume)
