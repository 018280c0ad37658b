"""Affine and RandomAffine against TorchIO 1.2.1 and analytic cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio
from scipy import ndimage

import torchvox as tio

OBLIQUE = np.array(
    [[0.0, -1.2, 0.0, 10.0], [0.9, 0.0, 0.0, -5.0], [0.0, 0.0, 1.5, 3.0], [0, 0, 0, 1.0]]
)


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


def subjects(affine: np.ndarray = OBLIQUE) -> tuple[torchio.Subject, tio.Subject]:
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


PARAMETERS = [
    {"scales": (1.1, 0.9, 1.05), "degrees": (10, -20, 30), "translation": (3, -2, 1)},
    {"scales": 1, "degrees": (0, 0, 90), "translation": 0, "center": "origin"},
    {
        "scales": (0.8, 1.2, 1.0),
        "degrees": (0, 45, 0),
        "translation": (0, 0, 5),
        "image_interpolation": "bspline",
    },
]


@pytest.mark.parametrize("parameters", PARAMETERS)
@pytest.mark.parametrize("pad", ["minimum", "mean", "otsu", 3.5])
def test_affine_matches_torchio(parameters: dict[str, object], pad: object) -> None:
    theirs_in, ours_in = subjects()
    theirs = torchio.Affine(**parameters, default_pad_value=pad)(theirs_in)
    ours = tio.Affine(**parameters, default_pad_value=pad)(ours_in)
    np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=1e-4)
    assert ours.t.data.dtype == torch.float32
    # Label maps are resampled with nearest neighbour and keep their dtype.
    assert ours.l.data.dtype == torch.int16
    np.testing.assert_array_equal(ours.l.data, theirs.l.data.to(torch.int16))


@pytest.mark.parametrize("kind", ["intensity", "label"])
@pytest.mark.parametrize("name", ["Affine", "AffineElasticDeformation"])
def test_plain_images_are_interpolated_by_their_type(name: str, kind: str) -> None:
    # Older TorchIO code builds Image(..., type=INTENSITY) rather than a
    # ScalarImage; the type, not the class, decides the interpolation and fill.
    data = torch.arange(8 * 7 * 6, dtype=torch.int16).reshape(1, 8, 7, 6) % 50 - 10
    parameters = {"scales": (1.1, 1, 1), "degrees": (0, 0, 10), "translation": (0.5, 0, 0)}
    outputs = []
    for module in (torchio, tio):
        image = module.Image(tensor=data.clone(), affine=OBLIQUE, type=kind)
        if name == "Affine":
            transform = module.Affine(**parameters, default_pad_value="minimum")
        else:
            ranges = {"scales": (1.1, 1.1, 1, 1, 1, 1), "degrees": (0, 0, 0, 0, 10, 10)}
            transform = module.RandomAffineElasticDeformation(
                affine_kwargs={
                    **ranges,
                    "translation": (0.5, 0.5, 0, 0, 0, 0),
                    "default_pad_value": "minimum",
                },
                elastic_kwargs={"max_displacement": 0},
            )
        outputs.append(transform(module.Subject(i=image)).i.data)
    theirs, ours = outputs
    if kind == "intensity":
        assert ours.dtype == torch.float32
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
        assert not np.isin(ours.numpy(), data.numpy()).all()  # linear, not nearest
    else:
        np.testing.assert_array_equal(ours, theirs.to(ours.dtype))


def test_random_affine_matches_torchio_with_same_seed() -> None:
    for seed in range(3):
        theirs_in, ours_in = subjects()
        torch.manual_seed(seed)
        theirs = torchio.RandomAffine(scales=0.2, degrees=15, translation=4, isotropic=True)(
            theirs_in
        )
        torch.manual_seed(seed)
        ours = tio.RandomAffine(scales=0.2, degrees=15, translation=4, isotropic=True)(ours_in)
        np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=1e-4)
        np.testing.assert_array_equal(ours.l.data, theirs.l.data.to(torch.int16))
        assert [name for name, _ in ours.applied_transforms] == ["Affine"]


def test_affine_of_mni_t1_matches_torchio(mni152: tio.Subject) -> None:
    # Most of the skull-stripped T1 is exactly 0: the warp writes the steps
    # that read only this background without gathering their taps.
    data, affine = mni152.t1.data.float(), mni152.t1.affine
    parameters = {"scales": (1.05, 0.95, 1.02), "degrees": (7, -5, 8), "translation": (2, 0, -3)}
    theirs = torchio.Affine(**parameters)(torchio.ScalarImage(tensor=data.clone(), affine=affine))
    ours = tio.Affine(**parameters)(tio.ScalarImage(tensor=data.clone(), affine=affine))
    assert (theirs.data == 0).float().mean() > 0.5
    np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-5, atol=1e-4 * float(data.max()))
    np.testing.assert_allclose((ours.data == 0).float().mean(), (theirs.data == 0).float().mean())


def test_identity_and_whole_voxel_translation() -> None:
    data, _ = arrays()
    image = tio.ScalarImage(tensor=torch.from_numpy(data), affine=np.eye(4))
    same = tio.Affine(1, 0, 0)(image)
    np.testing.assert_allclose(same.data, data, atol=1e-5)
    # Moving the content by +3 mm along R: voxel i holds what was at i - 3.
    moved = tio.Affine(1, 0, (3, 0, 0), default_pad_value=-99)(image)
    np.testing.assert_allclose(moved.data[:, 3:], data[:, :-3], atol=1e-5)
    assert (moved.data[:, :3] == -99).all()


def test_two_180_degree_rotations_give_back_the_original() -> None:
    data, labels = arrays(shape=(31, 24, 20))
    for affine in [np.eye(4), OBLIQUE]:
        subject = tio.Subject(
            t=tio.ScalarImage(tensor=torch.from_numpy(data), affine=affine),
            l=tio.LabelMap(tensor=torch.from_numpy(labels), affine=affine),
        )
        rotate = tio.Affine(1, (0, 0, 180), 0)
        twice = rotate(rotate(subject))
        np.testing.assert_allclose(twice.t.data, data, atol=1e-4)
        np.testing.assert_array_equal(twice.l.data, labels)
        once = rotate(subject)
        np.testing.assert_allclose(once.t.data, data[:, ::-1, ::-1, :], atol=1e-4)


def test_scaling_a_sphere_scales_its_volume() -> None:
    shape = (64, 64, 64)
    grid = np.stack(np.meshgrid(*[np.arange(n) - 31.5 for n in shape], indexing="ij"))
    sphere = (np.linalg.norm(grid, axis=0) < 12).astype(np.float32)[None]
    volume = sphere.sum()
    for s in (0.7, 1.3):
        scaled = tio.Affine(s, 0, 0, default_pad_value=0)(
            tio.ScalarImage(tensor=torch.from_numpy(sphere))
        )
        ratio = scaled.data.sum().item() / volume
        assert abs(ratio - s**3) < 0.02 * s**3


def test_inverse_is_exact_on_mni_labels(mni152: tio.Subject) -> None:
    transform = tio.Affine((1.05, 0.95, 1.0), (8, -6, 12), (4, -3, 2))
    moved = transform(mni152)
    assert moved.tissues.data.dtype == mni152.tissues.data.dtype
    assert set(moved.tissues.data.unique().tolist()) <= set(mni152.tissues.data.unique().tolist())
    back = moved.apply_inverse_transform()
    original = mni152.tissues.data > 0
    restored = back.tissues.data > 0
    dice = 2 * (original & restored).sum().item() / (original.sum() + restored.sum()).item()
    assert dice > 0.99
    inverse = transform.inverse()
    assert isinstance(inverse, tio.Affine) and inverse.invert_transform


def test_random_affine_on_mni_keeps_label_set(mni152: tio.Subject) -> None:
    torch.manual_seed(0)
    out = tio.RandomAffine()(mni152)
    assert out.tissues.data.dtype == torch.uint8
    assert set(out.tissues.data.unique().tolist()) <= set(mni152.tissues.data.unique().tolist())
    assert out.t1.data.dtype == torch.float32


def test_2d_image_rotates_in_plane_only() -> None:
    image = tio.ScalarImage(tensor=torch.rand(3, 40, 30, 1))
    out = tio.Affine(1.2, (30, 40, 90), 0)(image)
    assert out.shape == (3, 40, 30, 1)
    theirs = torchio.Affine(1.2, (30, 40, 90), 0)(torchio.ScalarImage(tensor=image.data.clone()))
    np.testing.assert_allclose(out.data, theirs.data, atol=1e-5)


def test_label_partial_volume_interpolation() -> None:
    _, labels = arrays()
    image = tio.LabelMap(tensor=torch.from_numpy(labels), affine=OBLIQUE)
    out = tio.Affine(1.1, (5, 10, 15), 2, label_interpolation="label")(image)
    assert out.data.dtype == torch.int16
    assert set(out.data.unique().tolist()) <= set(np.unique(labels).tolist())
    nearest = tio.Affine(1.1, (5, 10, 15), 2)(image)
    assert 0.8 < (out.data == nearest.data).float().mean() < 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scales": (1, 0, 1)},
        {"scales": (1, 1)},
        {"degrees": float("nan")},
        {"center": "corner"},
        {"default_pad_value": "maximum"},
        {"default_pad_label": "zero"},
        {"image_interpolation": "sinc"},
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"scales": 1, "degrees": 0, "translation": 0}
    arguments.update(kwargs)
    with pytest.raises(ValueError):
        tio.Affine(**arguments)


def test_random_affine_bad_arguments() -> None:
    with pytest.raises(ValueError):
        tio.RandomAffine(scales=(0.9, 1.1, 0.9, 1.1, 0.9, 1.1), isotropic=True)
    with pytest.raises(ValueError):
        tio.RandomAffine(center="middle")
    with pytest.raises(ValueError):
        tio.RandomAffine(default_pad_value="max")


def test_mismatched_subject_raises() -> None:
    subject = tio.Subject(
        a=tio.ScalarImage(tensor=torch.rand(1, 10, 10, 10)),
        b=tio.ScalarImage(tensor=torch.rand(1, 9, 10, 10)),
    )
    with pytest.raises(RuntimeError):
        tio.Affine(1, 10, 0)(subject)


def test_channel_minima_for_every_kind_of_tensor() -> None:
    from torchvox.transforms.spatial.affine import channel_minima

    values = torch.tensor([[3.0, -2.0, 5.0], [7.0, 1.0, float("nan")]]).reshape(2, 3, 1, 1)
    minima = channel_minima(values)
    assert minima[0] == -2.0
    assert np.isnan(minima[1])
    # Tensors NumPy cannot view take torch's path with the same answer.
    assert channel_minima(values[:1].to(torch.bfloat16)) == [-2.0]
    assert channel_minima(values[:1].clone().requires_grad_()) == [-2.0]
    assert channel_minima(torch.tensor([4, 9], dtype=torch.int16).reshape(1, 2, 1, 1)) == [4.0]
