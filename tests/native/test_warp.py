"""The warp kernel, B-spline fields and field inversion of the Rust core against
SimpleITK's ResampleImageFilter / BSplineTransform and scipy.ndimage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from torchvox._backend import native

#: RAS <-> LPS: negate the first two world axes.
FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def nat() -> Any:
    return native()


def make_affine(spacing: Any, angles: Any, origin: Any) -> np.ndarray:
    ax, ay, az = np.radians(angles)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def to_sitk(volume: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """(I, J, K) array with a RAS voxel->world affine -> ITK image (LPS)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.transpose(2, 1, 0)))
    lps = FLIP_XY @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def from_sitk(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def sitk_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    """A RAS world->world 4x4 as an ITK (LPS) affine transform."""
    lps = FLIP_XY @ matrix @ FLIP_XY
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(lps[:3, :3].flatten().tolist())
    transform.SetTranslation(lps[:3, 3].tolist())
    return transform


def sitk_resample(
    volume: np.ndarray,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    out_affine: np.ndarray,
    transform: sitk.Transform,
    interpolator: int,
    default: float,
) -> np.ndarray:
    reference = to_sitk(np.zeros(shape, volume.dtype), out_affine)
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(reference)
    resampler.SetTransform(transform)
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(default)
    return from_sitk(resampler.Execute(to_sitk(volume, affine)))


def smooth_volume(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) * 100 + 50


IN_AFFINE = make_affine((1.2, 0.9, 1.5), (10, -5, 20), (-12.0, 8.0, 3.0))
OUT_AFFINE = make_affine((1.0, 1.1, 1.3), (-4, 7, 15), (-10.0, 6.0, 5.0))
MOTION = make_affine((1.05, 0.95, 1.0), (8, 3, -12), (1.5, -2.0, 0.7))
SHAPE = (21, 18, 15)
OUT_SHAPE = (19, 20, 13)

INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}


def interior_mask(
    shape: tuple[int, ...], out_affine: np.ndarray, chain: np.ndarray, margin: float
) -> np.ndarray:
    """Output voxels whose input continuous index is at least ``margin`` from the borders."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    homogeneous = np.c_[index, np.ones(len(index))]
    input_index = (np.linalg.inv(IN_AFFINE) @ chain @ out_affine @ homogeneous.T).T[:, :3]
    inside = np.all((input_index >= margin) & (input_index <= np.array(SHAPE) - 1 - margin), axis=1)
    return inside.reshape(shape)


@pytest.mark.parametrize("name", ["nearest", "linear", "bspline"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_warp_matches_simpleitk(nat: Any, name: str, dtype: type) -> None:
    volume = smooth_volume(SHAPE, 0).astype(dtype)
    expected = sitk_resample(
        volume, IN_AFFINE, OUT_SHAPE, OUT_AFFINE, sitk_transform(MOTION), INTERPOLATORS[name], -7.0
    )
    result = nat.warp(volume[np.newaxis], IN_AFFINE, OUT_SHAPE, OUT_AFFINE, [MOTION], name, [-7.0])[
        0
    ]
    assert result.dtype == dtype
    assert (result == -7.0).sum() > 100  # part of the output falls outside the input
    if name == "nearest":
        np.testing.assert_array_equal(result, expected)
        return
    scale = np.abs(volume).max()
    if name == "linear":
        # Linear agrees everywhere, border half-voxels included.
        np.testing.assert_allclose(result, expected, rtol=0, atol=1e-4 * scale)
    else:
        interior = interior_mask(OUT_SHAPE, OUT_AFFINE, MOTION, 2.0)
        assert interior.sum() > 1000
        np.testing.assert_allclose(result[interior], expected[interior], rtol=0, atol=1e-4 * scale)
        # Same fill pattern as ITK.
        np.testing.assert_array_equal(result == -7.0, expected == -7.0)


def test_chain_of_affines_equals_their_product(nat: Any) -> None:
    volume = smooth_volume(SHAPE, 1).astype(np.float32)[np.newaxis]
    first = make_affine((1, 1, 1), (0, 0, 30), (2, 0, 0))
    second = make_affine((1.1, 1, 0.9), (5, 0, 0), (0, -1, 3))
    chained = nat.warp(volume, IN_AFFINE, OUT_SHAPE, OUT_AFFINE, [first, second], "linear", [0.0])
    product = nat.warp(volume, IN_AFFINE, OUT_SHAPE, OUT_AFFINE, [second @ first], "linear", [0.0])
    np.testing.assert_allclose(chained, product, atol=1e-4)


def test_integer_linear_truncates_like_simpleitk(nat: Any) -> None:
    volume = (smooth_volume(SHAPE, 2) * 10).astype(np.int16)
    expected = sitk_resample(
        volume, IN_AFFINE, OUT_SHAPE, OUT_AFFINE, sitk_transform(MOTION), sitk.sitkLinear, 0
    )
    result = nat.warp(
        volume[np.newaxis], IN_AFFINE, OUT_SHAPE, OUT_AFFINE, [MOTION], "linear", [0.0]
    )[0]
    assert result.dtype == np.int16
    # Interpolated values within 1e-9 of an integer may round either way.
    assert np.mean(result == expected) > 0.999
    assert np.abs(result.astype(int) - expected).max() <= 1


def test_bspline_matches_scipy_mirror_spline(nat: Any) -> None:
    volume = smooth_volume((16, 14, 12), 3)
    rng = np.random.default_rng(4)
    shift = rng.uniform(-0.5, 0.5, 3)
    motion = np.eye(4)
    motion[:3, 3] = shift
    result = nat.warp(
        volume[np.newaxis], np.eye(4), volume.shape, np.eye(4), [motion], "bspline", [0.0]
    )[0]
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij")).astype(float)
    expected = ndimage.map_coordinates(
        volume, grid + shift[:, None, None, None], order=3, mode="mirror"
    )
    interior = (slice(2, -2),) * 3
    np.testing.assert_allclose(
        result[interior], expected[interior], rtol=0, atol=1e-6 * np.abs(volume).max()
    )
    linear = nat.warp(
        volume[np.newaxis], np.eye(4), volume.shape, np.eye(4), [motion], "linear", [0.0]
    )[0]
    expected = ndimage.map_coordinates(volume, grid + shift[:, None, None, None], order=1)
    np.testing.assert_allclose(linear[interior], expected[interior], atol=1e-9)


def test_multichannel_uses_one_fill_per_channel(nat: Any) -> None:
    volume = np.stack([smooth_volume(SHAPE, s) for s in range(3)]).astype(np.float32)
    fills = [-1.0, 2.0, 1000.0]
    result = nat.warp(volume, IN_AFFINE, OUT_SHAPE, OUT_AFFINE, [MOTION], "linear", fills)
    for c in range(3):
        single = nat.warp(
            volume[c : c + 1], IN_AFFINE, OUT_SHAPE, OUT_AFFINE, [MOTION], "linear", [fills[c]]
        )
        np.testing.assert_array_equal(result[c], single[0])
        assert (result[c] == fills[c]).any()


def test_2d_image_rotation_matches_simpleitk_2d(nat: Any) -> None:
    rng = np.random.default_rng(5)
    image = ndimage.gaussian_filter(rng.standard_normal((30, 24)), 1.0).astype(np.float64)
    angle = np.radians(17.0)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    rotation[:2, 3] = [3.0, -2.0]
    result = nat.warp(
        image[np.newaxis, ..., np.newaxis],
        np.eye(4),
        (30, 24, 1),
        np.eye(4),
        [rotation],
        "linear",
        [0.0],
    )
    assert result.shape == (1, 30, 24, 1)
    sitk_image = sitk.GetImageFromArray(image.T.copy())
    sitk_image.SetDirection([-1.0, 0.0, 0.0, -1.0])  # RAS identity seen in LPS
    transform = sitk.AffineTransform(2)
    lps = np.diag([-1.0, -1.0]) @ rotation[:2, :2] @ np.diag([-1.0, -1.0])
    transform.SetMatrix(lps.flatten().tolist())
    transform.SetTranslation((-rotation[:2, 3]).tolist())
    expected = sitk.GetArrayFromImage(
        sitk.Resample(sitk_image, sitk_image, transform, sitk.sitkLinear, 0.0)
    ).T
    np.testing.assert_allclose(result[0, ..., 0], expected, atol=1e-9)


def test_label_mode_equals_argmax_of_linear_one_hot(nat: Any) -> None:
    rng = np.random.default_rng(6)
    smooth = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 2.0)
    labels = np.digitize(smooth, np.quantile(smooth, [0.3, 0.6, 0.9])).astype(np.int32) * 2
    result = nat.warp(
        labels[np.newaxis], IN_AFFINE, OUT_SHAPE, OUT_AFFINE, [MOTION], "label", [-1.0]
    )[0]
    present = np.unique(labels)
    one_hot = np.stack([(labels == value).astype(np.float64) for value in present])
    interpolated = nat.warp(
        one_hot, IN_AFFINE, OUT_SHAPE, OUT_AFFINE, [MOTION], "linear", [0.0] * len(present)
    )
    expected = present[np.argmax(interpolated, axis=0)]
    outside = interpolated.sum(0) == 0
    expected[outside] = -1
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, expected)
    assert set(np.unique(result)) <= set(present) | {-1}


def lps_control_points(n: tuple[int, int, int], seed: int, amplitude: float) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-amplitude, amplitude, (*n, 3))


def sitk_bspline(
    volume_shape: tuple[int, int, int], affine: np.ndarray, lps_points: np.ndarray
) -> sitk.Transform:
    image = to_sitk(np.zeros(volume_shape, np.float32), affine)
    mesh = [n - 3 for n in lps_points.shape[:-1]]
    transform = sitk.BSplineTransformInitializer(image, mesh)
    transform.SetParameters(lps_points.flatten(order="F").tolist())
    return transform


def voxel_aligned_ras_points(
    transform: sitk.Transform, affine: np.ndarray, lps_points: np.ndarray
) -> np.ndarray:
    """Control points reordered from ITK's grid axes to the image's voxel axes, in RAS.

    ITK's initializer aligns each grid axis with the image axis closest to a
    physical axis, running in the positive physical direction; read that
    assignment from the transform's fixed parameters (grid direction).
    """
    grid_direction = np.array(transform.GetFixedParameters()[9:18]).reshape(3, 3)
    lps = FLIP_XY @ affine
    image_direction = lps[:3, :3] / np.linalg.norm(lps[:3, :3], axis=0)
    alignment = grid_direction.T @ image_direction  # [grid axis, image axis] cosines
    image_axis_of_grid = np.argmax(np.abs(alignment), axis=1)
    points = lps_points
    for grid_axis, image_axis in enumerate(image_axis_of_grid):
        if alignment[grid_axis, image_axis] < 0:
            points = np.flip(points, axis=grid_axis)
    order = np.argsort(image_axis_of_grid)  # voxel axis v takes grid axis order[v]
    points = np.transpose(points, (*order, 3))
    return np.ascontiguousarray(points * np.array([-1.0, -1.0, 1.0]))


PERMUTED = np.array(
    [[0.0, 0.0, -1.2, 4.0], [0.8, 0.0, 0.0, -3.0], [0.0, 1.5, 0.0, 2.0], [0, 0, 0, 1]]
)


@pytest.mark.parametrize(
    "affine",
    [np.eye(4), IN_AFFINE, FLIP_XY @ make_affine((0.7, 1.3, 2.0), (0, 0, 0), (5, 5, 5)), PERMUTED],
)
def test_bspline_field_matches_sitk_transform_point(nat: Any, affine: np.ndarray) -> None:
    shape = (23, 17, 9)
    lps_points = lps_control_points((7, 6, 5), 7, 4.0)
    transform = sitk_bspline(shape, affine, lps_points)
    field = nat.bspline_field(voxel_aligned_ras_points(transform, affine, lps_points), shape)
    assert field.shape == (3, *shape) and field.dtype == np.float32
    rng = np.random.default_rng(8)
    voxels = np.vstack([rng.integers(0, shape, (300, 3)), [[0, 0, 0], [s - 1 for s in shape]]])
    for voxel in voxels:
        world = (affine @ np.r_[voxel, 1.0])[:3]
        lps = world * np.array([-1.0, -1.0, 1.0])
        displaced = np.array(transform.TransformPoint(lps.tolist())) - lps
        expected = displaced * np.array([-1.0, -1.0, 1.0])
        np.testing.assert_allclose(field[(slice(None), *voxel)], expected, atol=1e-5)


def test_elastic_warp_matches_sitk_resampling(nat: Any) -> None:
    volume = smooth_volume(SHAPE, 9)
    lps_points = lps_control_points((6, 6, 6), 10, 3.0)
    transform = sitk_bspline(SHAPE, IN_AFFINE, lps_points)
    expected = sitk_resample(volume, IN_AFFINE, SHAPE, IN_AFFINE, transform, sitk.sitkLinear, 0.0)
    field = nat.bspline_field(voxel_aligned_ras_points(transform, IN_AFFINE, lps_points), SHAPE)
    result = nat.warp(
        volume[np.newaxis], IN_AFFINE, SHAPE, IN_AFFINE, [(field, IN_AFFINE)], "linear", [0.0]
    )[0]
    np.testing.assert_allclose(result, expected, atol=1e-4 * np.abs(volume).max())


def test_field_inverse_maps_voxels_back(nat: Any) -> None:
    shape = (40, 36, 30)
    affine = make_affine((1.0, 1.2, 1.5), (0, 0, 0), (0, 0, 0))
    lps_points = lps_control_points((7, 7, 7), 11, 5.0)
    lps_points[[0, 1, -2, -1]] = 0
    lps_points[:, [0, 1, -2, -1]] = 0
    lps_points[:, :, [0, 1, -2, -1]] = 0
    field = nat.bspline_field(np.ascontiguousarray(lps_points * [-1.0, -1.0, 1.0]), shape)
    inverse = nat.invert_field(field, affine)
    # Warp the voxel coordinates themselves: forward after inverse must be identity.
    coordinates = np.stack(
        np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    )
    mapped = nat.warp(
        coordinates,
        affine,
        shape,
        affine,
        [(inverse, affine), (field, affine)],
        "linear",
        [0.0] * 3,
    )
    interior = (slice(None), *(slice(4, -4),) * 3)
    error = np.linalg.norm(mapped - coordinates, axis=0)[interior[1:]]
    assert np.abs(field).max() > 2.0  # a real deformation
    assert error.max() < 0.1
    # Negating the field (TorchIO's approximate inverse) is much worse.
    negated = np.ascontiguousarray(-field)
    approximate = nat.warp(
        coordinates,
        affine,
        shape,
        affine,
        [(negated, affine), (field, affine)],
        "linear",
        [0.0] * 3,
    )
    assert np.linalg.norm(approximate - coordinates, axis=0)[interior[1:]].max() > 5 * error.max()


def test_bad_input_raises_clear_errors(nat: Any) -> None:
    volume = np.zeros((1, 4, 4, 4), np.float32)
    eye = np.eye(4)
    singular = np.diag([1.0, 0.0, 1.0, 1.0])
    nan = eye.copy()
    nan[0, 3] = np.nan
    field = np.zeros((3, 4, 4, 4), np.float32)
    points = np.zeros((4, 4, 4, 3))
    bad_points = points.copy()
    bad_points[1, 2, 3, 0] = np.inf
    cases: list[tuple[type[Exception], tuple[Any, ...]]] = [
        (ValueError, (volume, singular, (4, 4, 4), eye, [], "linear", [0.0])),
        (ValueError, (volume, eye, (4, 4, 4), nan, [], "linear", [0.0])),
        (ValueError, (volume, eye, (4, 4, 4), eye, [singular], "linear", [0.0])),
        (ValueError, (volume, eye, (4, 4, 4), eye, [nan], "linear", [0.0])),
        (ValueError, (volume, eye, (4, 4, 4), eye, [], "sinc", [0.0])),
        (ValueError, (volume, eye, (4, 4, 4), eye, [(field[:2].copy(), eye)], "linear", [0.0])),
        (ValueError, (volume, eye, (4, 4, 4), eye, [(field, eye, eye, eye)], "linear", [0.0])),
        # B-spline steps: (control points, shape, affine).
        (TypeError, (volume, eye, (4, 4, 4), eye, [(field, eye, eye)], "linear", [0.0])),
        (
            ValueError,
            (volume, eye, (4, 4, 4), eye, [(points[:3].copy(), (4, 4, 4), eye)], "linear", [0.0]),
        ),
        (
            ValueError,
            (volume, eye, (4, 4, 4), eye, [(bad_points, (4, 4, 4), eye)], "nearest", [0.0]),
        ),
        (TypeError, (volume, eye, (4, 4, 4), eye, [(points, (4, -1, 4), eye)], "linear", [0.0])),
        (ValueError, (volume, eye, (4, 4, 4), eye, [(points, (4, 0, 4), eye)], "label", [0.0])),
        (ValueError, (volume, eye, (4, 4, 4), eye, [(points, (4, 4, 4), nan)], "linear", [0.0])),
        (
            TypeError,
            (volume, eye, (4, 4, 4), eye, [(field.astype(np.float64), eye)], "linear", [0.0]),
        ),
        (ValueError, (volume, eye, (4, 4, 4), eye, [], "linear", [0.0, 1.0])),
        (ValueError, (volume, eye, (4, 0, 4), eye, [], "linear", [0.0])),
        (
            ValueError,
            (np.zeros((1, 0, 4, 4), np.float32), eye, (4, 4, 4), eye, [], "linear", [0.0]),
        ),
        (ValueError, (volume[0], eye, (4, 4, 4), eye, [], "linear", [0.0])),
        (
            ValueError,
            (
                np.zeros((1, 4, 4, 8), np.float32)[..., ::2],
                eye,
                (4, 4, 4),
                eye,
                [],
                "linear",
                [0.0],
            ),
        ),
        (TypeError, (volume.astype(np.float16), eye, (4, 4, 4), eye, [], "linear", [0.0])),
        (ValueError, (volume, np.eye(3), (4, 4, 4), eye, [], "linear", [0.0])),
        (TypeError, (volume, eye.astype(np.float32), (4, 4, 4), eye, [], "linear", [0.0])),
    ]
    for error, arguments in cases:
        with pytest.raises(error):
            nat.warp(*arguments)
    with pytest.raises(ValueError):
        nat.bspline_field(np.zeros((3, 4, 4, 3)), (4, 4, 4))
    with pytest.raises(ValueError):
        nat.bspline_field(np.full((4, 4, 4, 3), np.nan), (4, 4, 4))
    with pytest.raises(ValueError):
        nat.invert_field(field, singular)
    with pytest.raises(ValueError):
        nat.invert_field(field[:, :0].copy(), eye)


@pytest.mark.parametrize("name", ["nearest", "linear", "bspline", "label"])
def test_results_do_not_depend_on_thread_count(nat: Any, name: str) -> None:
    from torchvox._backend import set_num_threads

    volume = (smooth_volume(SHAPE, 12) * 3).astype(np.int32 if name == "label" else np.float32)[
        np.newaxis
    ]
    field = nat.bspline_field(np.random.default_rng(13).uniform(-2, 2, (5, 5, 5, 3)), SHAPE)
    chain = [MOTION, (field, IN_AFFINE)]
    try:
        results = []
        for threads in (1, 2, 3):
            set_num_threads(threads)
            results.append(
                native().warp(volume, IN_AFFINE, OUT_SHAPE, OUT_AFFINE, chain, name, [0.0])
            )
    finally:
        set_num_threads(None)
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
