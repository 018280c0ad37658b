"""ElasticDeformation, RandomElasticDeformation and the affine + elastic variants
against TorchIO 1.2.1, SimpleITK's B-spline transform and analytic cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torchio
from scipy import ndimage

import torchvox as tio
from torchvox._backend import native
from torchvox.transforms.spatial.elastic import elastic_field

AFFINES = {
    "identity": np.eye(4),
    "permuted": np.array(
        [[0.0, -1.2, 0.0, 10.0], [0.9, 0.0, 0.0, -5.0], [0.0, 0.0, 1.5, 3.0], [0, 0, 0, 1.0]]
    ),
    "flipped": np.diag([-1.0, 1.1, 0.8, 1.0]),
}


def arrays(
    seed: int = 0, shape: tuple[int, int, int] = (30, 26, 22)
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = (
        ndimage.gaussian_filter(rng.standard_normal((2, *shape)), (0, 2, 2, 2)).astype(np.float32)
        * 100
    )
    labels = np.digitize(data[:1], [-5.0, 0.0, 5.0]).astype(np.int16)
    return data, labels


def both(affine: np.ndarray) -> tuple[torchio.Subject, tio.Subject]:
    data, labels = arrays()
    theirs = torchio.Subject(
        t=torchio.ScalarImage(tensor=torch.from_numpy(data), affine=affine),
        l=torchio.LabelMap(tensor=torch.from_numpy(labels), affine=affine),
    )
    ours = tio.Subject(
        t=tio.ScalarImage(tensor=torch.from_numpy(data), affine=affine),
        l=tio.LabelMap(tensor=torch.from_numpy(labels), affine=affine),
    )
    return theirs, ours


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_elastic_matches_torchio(name: str) -> None:
    control_points = np.random.default_rng(1).uniform(-3, 3, (7, 6, 5, 3))
    theirs_in, ours_in = both(AFFINES[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = torchio.ElasticDeformation(control_points, (3, 3, 3))(theirs_in)
        ours = tio.ElasticDeformation(control_points, (3, 3, 3))(ours_in)
    np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=1e-4)
    assert ours.l.data.dtype == torch.int16
    np.testing.assert_array_equal(ours.l.data, theirs.l.data.to(torch.int16))


def test_field_matches_sitk_transform_point_on_oblique_image() -> None:
    angle = np.radians(20)
    affine = np.eye(4)
    affine[:3, :3] = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    ) @ np.diag([1.1, 0.9, 1.4])
    shape = (20, 18, 12)
    control_points = np.random.default_rng(2).uniform(-4, 4, (6, 7, 5, 3))
    field = elastic_field(control_points, shape, affine)
    image = torchio.ScalarImage(tensor=torch.zeros(1, *shape), affine=affine).as_sitk()
    transform = sitk.BSplineTransformInitializer(image, [n - 3 for n in control_points.shape[:-1]])
    transform.SetParameters(control_points.flatten(order="F").tolist())
    lps = np.array([-1.0, -1.0, 1.0])
    for index in np.random.default_rng(3).integers(0, shape, (200, 3)):
        world = (affine @ np.r_[index, 1.0])[:3]
        displaced = np.array(transform.TransformPoint((world * lps).tolist())) * lps
        np.testing.assert_allclose(field[(slice(None), *index)], displaced - world, atol=1e-5)


def test_random_elastic_locks_all_three_axes_and_replays() -> None:
    torch.manual_seed(0)
    points = tio.RandomElasticDeformation.get_params((7, 7, 7), (5.0, 5.0, 5.0), 2)
    for axis in range(3):
        for index in (0, 1, -1, -2):
            assert np.all(np.take(points, index, axis=axis) == 0)
    assert np.abs(points).max() > 1
    # Same random stream as TorchIO apart from the third axis' locked layers.
    torch.manual_seed(0)
    theirs = torchio.RandomElasticDeformation.get_params((7, 7, 7), (5.0, 5.0, 5.0), 2)
    inner = (slice(2, -2),) * 3
    np.testing.assert_array_equal(points[inner], theirs[inner])
    _, subject = both(np.eye(4))
    out = tio.RandomElasticDeformation()(subject)
    assert [name for name, _ in out.applied_transforms] == ["ElasticDeformation"]
    replayed = out.get_composed_history()(subject)
    assert torch.equal(replayed.t.data, out.t.data)


def test_inverse_maps_voxels_back() -> None:
    shape = (40, 36, 30)
    coordinates = np.stack(
        np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    )
    image = tio.ScalarImage(tensor=torch.from_numpy(coordinates))
    torch.manual_seed(1)
    forward = tio.RandomElasticDeformation(max_displacement=6).get_elastic()
    inverse = forward.inverse()
    assert inverse.invert_transform
    back = inverse(forward(image))
    error = np.linalg.norm(back.data.numpy() - coordinates, axis=0)[(slice(4, -4),) * 3]
    assert error.max() < 0.1
    approximate = torchio.ElasticDeformation(forward.control_points, forward.max_displacement)
    approximate_back = approximate.inverse()(
        approximate(torchio.ScalarImage(tensor=torch.from_numpy(coordinates)))
    )
    approximate_error = np.linalg.norm(approximate_back.data.numpy() - coordinates, axis=0)[
        (slice(4, -4),) * 3
    ]
    assert approximate_error.max() > 3 * error.max()


def test_folding_warning_and_zero_displacement() -> None:
    image = tio.ScalarImage(tensor=torch.rand(1, 20, 20, 20))
    with pytest.warns(RuntimeWarning, match="folding"):
        tio.RandomElasticDeformation(num_control_points=5, max_displacement=20)(image)
    same = tio.ElasticDeformation(np.zeros((5, 5, 5, 3)), (0, 0, 0))(image)
    assert torch.equal(same.data, image.data)


def test_2d_elastic_has_no_through_plane_displacement() -> None:
    image = torchio.ScalarImage(tensor=torch.rand(1, 40, 30, 1))
    control_points = np.random.default_rng(4).uniform(-3, 3, (6, 6, 6, 3))
    theirs = torchio.ElasticDeformation(control_points, (3, 3, 3))(image)
    ours = tio.ElasticDeformation(control_points, (3, 3, 3))(
        tio.ScalarImage(tensor=image.data.clone())
    )
    np.testing.assert_allclose(ours.data, theirs.data, atol=1e-4)


def test_mni_random_elastic_keeps_integer_labels(mni152: tio.Subject) -> None:
    torch.manual_seed(0)
    out = tio.RandomElasticDeformation()(mni152)
    assert out.tissues.data.dtype == torch.uint8
    assert set(out.tissues.data.unique().tolist()) == set(mni152.tissues.data.unique().tolist())


@pytest.mark.parametrize("affine_first", [True, False])
def test_affine_elastic_matches_torchio(affine_first: bool) -> None:
    control_points = np.random.default_rng(5).uniform(-3, 3, (7, 6, 5, 3))
    affine_params = {"scales": (1.1, 0.9, 1.0), "degrees": (5, 10, -20), "translation": (1, 2, 3)}
    elastic_params = {"control_points": control_points, "max_displacement": (3, 3, 3)}
    theirs_in, ours_in = both(AFFINES["permuted"])
    theirs = torchio.AffineElasticDeformation(affine_first, affine_params, elastic_params)(
        theirs_in
    )
    ours = tio.AffineElasticDeformation(affine_first, affine_params, elastic_params)(ours_in)
    difference = (ours.t.data - theirs.t.data).abs()
    if affine_first:
        # The B-spline is evaluated at voxel centres: exact.
        assert difference.max() < 1e-4
    else:
        # The field is sampled between voxel centres (trilinear on the dense field)
        # and ITK's spline reaches 1/8 voxel beyond the image: small local differences.
        assert difference.median() < 0.05
        assert (difference > 1.0).float().mean() < 0.05
    assert ours.l.data.dtype == torch.int16


def test_affine_elastic_makes_one_elastic_step_per_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = tio.ElasticDeformation.get_chain_step

    def counting(self, image):
        calls.append(image.spatial_shape)
        return original(self, image)

    monkeypatch.setattr(tio.ElasticDeformation, "get_chain_step", counting)
    control_points = np.random.default_rng(3).uniform(-2, 2, (5, 5, 5, 3))
    _, subject = both(np.eye(4))
    subject.add_image(tio.ScalarImage(tensor=subject.t.data * 2), "twice")
    out = tio.AffineElasticDeformation(
        True,
        {"scales": (1, 1, 1), "degrees": (0, 0, 10), "translation": (0, 0, 0)},
        {"control_points": control_points, "max_displacement": 2},
    )(subject)
    assert len(calls) == 1
    # Every image went through the same deformation.
    torch.testing.assert_close(out.twice.data, out.t.data * 2, rtol=1e-5, atol=1e-4)


def test_random_affine_elastic_runs_one_interpolation() -> None:
    _, subject = both(np.eye(4))
    torch.manual_seed(2)
    out = tio.RandomAffineElasticDeformation(elastic_kwargs={"max_displacement": 4})(subject)
    assert [name for name, _ in out.applied_transforms] == ["AffineElasticDeformation"]
    assert out.t.data.dtype == torch.float32 and out.l.data.dtype == torch.int16


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_control_points": 3},
        {"num_control_points": (7, 7)},
        {"max_displacement": -1},
        {"locked_borders": 3},
        {"num_control_points": 4, "locked_borders": 2},
        {"image_interpolation": "sinc"},
    ],
)
def test_random_elastic_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        tio.RandomElasticDeformation(**kwargs)


def test_elastic_bad_control_points() -> None:
    with pytest.raises(ValueError):
        tio.ElasticDeformation(np.zeros((3, 5, 5, 3)), 1)
    with pytest.raises(ValueError):
        tio.ElasticDeformation(np.full((5, 5, 5, 3), np.nan), 1)
    with pytest.raises(ValueError):
        native().bspline_field(np.zeros((5, 5, 5, 2)), (4, 4, 4))


@pytest.mark.parametrize("interpolation", ["nearest", "linear", "bspline", "label", "gaussian"])
def test_bspline_step_equals_its_dense_field_exactly(interpolation: str) -> None:
    from torchvox.transforms.spatial.resample import BSplineField, _native_steps, warp_tensor

    data, labels = arrays(3)
    affine = AFFINES["permuted"]
    shape = data.shape[1:]
    points = np.random.default_rng(4).uniform(-3, 3, (6, 5, 7, 3))
    step = BSplineField(points, shape, affine)
    rotation = np.eye(4)
    rotation[:3, :3] = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    chains = [
        ([step], [(step.dense(), affine)]),
        ([step, rotation], [(step.dense(), affine), rotation]),
    ]
    for volume in (torch.from_numpy(data), torch.from_numpy(labels)):
        for lazy, dense in chains:
            ours = warp_tensor(volume, affine, shape, affine, lazy, interpolation, 0.0)
            theirs = warp_tensor(volume, affine, shape, affine, dense, interpolation, 0.0)
            assert torch.equal(ours, theirs)
    # The kernel gets the control points only where it can evaluate them row by row.
    steps = _native_steps([step], shape, affine, interpolation)
    assert (len(steps[0]) == 3) == (interpolation in ("nearest", "linear"))
    off_grid = _native_steps([rotation, step], shape, affine, "linear")
    assert len(off_grid[1]) == 2


def test_elastic_deformation_moves_voxels_as_its_field_says() -> None:
    data, _ = arrays(5)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    control_points = np.zeros((7, 7, 7, 3))
    control_points[2:5, 2:5, 2:5] = (-2.0, 0.0, 0.0)  # 2 mm along L in ITK's LPS
    image = tio.ScalarImage(tensor=torch.from_numpy(data), affine=affine)
    out = tio.ElasticDeformation(control_points=control_points, max_displacement=2)(image)
    field = elastic_field(control_points, data.shape[1:], affine)
    # In the middle the field is a pure shift along +R (voxel axis 0) by u mm.
    centre = tuple(n // 2 for n in data.shape[1:])
    shift = float(field[0][centre])
    assert 1.0 < shift < 2.0
    expected = ndimage.map_coordinates(
        data[0], np.add(np.indices(data.shape[1:]), field[:, None][:, 0]), order=1
    )
    middle = tuple(slice(n // 2 - 2, n // 2 + 3) for n in data.shape[1:])
    np.testing.assert_allclose(out.data[0].numpy()[middle], expected[middle], rtol=1e-4, atol=1e-3)
