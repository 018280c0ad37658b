"""Resample, Resize, ToReferenceSpace and RandomAnisotropy against TorchIO 1.2.1,
nibabel world coordinates and analytic cases."""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
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


def run_both(
    transform_io: object, transform_vox: object, affine: np.ndarray = OBLIQUE
) -> tuple[object, object]:
    data, labels = arrays()
    theirs = transform_io(  # type: ignore[operator]
        torchio.Subject(
            t=torchio.ScalarImage(tensor=torch.from_numpy(data), affine=affine),
            l=torchio.LabelMap(tensor=torch.from_numpy(labels), affine=affine),
        )
    )
    ours = transform_vox(  # type: ignore[operator]
        tio.Subject(
            t=tio.ScalarImage(tensor=torch.from_numpy(data), affine=affine),
            l=tio.LabelMap(tensor=torch.from_numpy(labels), affine=affine),
        )
    )
    return theirs, ours


@pytest.mark.parametrize(
    "target",
    [0.75, (2.0, 1.3, 0.9), 2, ((20, 21, 22), np.diag([1.1, -0.9, 1.2, 1.0]))],
    ids=["0.75mm", "anisotropic", "2mm", "shape-affine"],
)
def test_resample_matches_torchio(target: object) -> None:
    theirs, ours = run_both(torchio.Resample(target), tio.Resample(target))
    assert ours.t.shape == theirs.t.shape  # type: ignore[attr-defined]
    np.testing.assert_allclose(ours.t.affine, theirs.t.affine, atol=1e-12)  # type: ignore[attr-defined]
    np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=1e-4)  # type: ignore[attr-defined]
    assert ours.l.data.dtype == torch.int16  # type: ignore[attr-defined]
    np.testing.assert_array_equal(ours.l.data, theirs.l.data)  # type: ignore[attr-defined]


def test_resample_nearest_ties_resolve_like_simpleitk() -> None:
    # 1.2 mm -> 1 mm puts many output centres exactly half-way between input
    # voxels; ties must round half up, whatever the floating-point noise.
    theirs, ours = run_both(torchio.Resample(1), tio.Resample(1))
    np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=1e-4)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(ours.l.data, theirs.l.data)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("spacing", "target"), [(1.1, 1), (1.3, 0.5), (2.2, 2)])
def test_nearest_labels_of_float32_spacings_match_torchio(tmp_path: Path, spacing, target) -> None:
    # A header stores 1.1 mm as 1.10000002 mm: indices then miss the ties by
    # about 1e-7, which SimpleITK rounds by the side they fall on.
    labels = np.random.default_rng(0).integers(0, 5, (20, 20, 20)).astype(np.uint8)
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.diag([spacing] * 3 + [1.0])), path)
    ours = tio.Resample(target)(tio.LabelMap(path)).data
    theirs = torchio.Resample(target)(torchio.LabelMap(path)).data
    assert torch.equal(ours, theirs.to(ours.dtype))


@pytest.mark.parametrize("interpolation", ["bspline", "cubic", "lanczos", "gaussian"])
def test_resample_other_interpolations_match_torchio(interpolation: str) -> None:
    reference = "bspline" if interpolation == "cubic" else interpolation
    theirs, ours = run_both(
        torchio.Resample(1.5, image_interpolation=reference),
        tio.Resample(1.5, image_interpolation=interpolation),
    )
    np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=1e-3)  # type: ignore[attr-defined]


def test_resample_to_image_name_path_and_image(tmp_path: Path) -> None:
    data, labels = arrays()
    reference = tio.ScalarImage(
        tensor=torch.zeros(1, 12, 13, 14), affine=np.diag([2.0, 2.0, 2.0, 1.0])
    )
    path = tmp_path / "reference.nii.gz"
    reference.save(path)
    results = []
    for target in ["ref", path, reference]:
        subject = tio.Subject(
            t=tio.ScalarImage(tensor=torch.from_numpy(data), affine=OBLIQUE), ref=reference
        )
        out = tio.Resample(target)(subject)
        assert out.t.shape == (2, 12, 13, 14)
        np.testing.assert_allclose(out.t.affine, reference.affine)
        results.append(out.t.data)
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)
    np.testing.assert_allclose(results[0], results[2], atol=1e-6)


def test_pre_affine_and_scalars_only() -> None:
    data, labels = arrays()
    shift = np.eye(4)
    shift[0, 3] = 4.0
    subject = tio.Subject(
        t=tio.ScalarImage(tensor=torch.from_numpy(data), affine=np.eye(4), pre=shift),
        l=tio.LabelMap(tensor=torch.from_numpy(labels), affine=np.eye(4)),
    )
    out = tio.Resample(
        (tuple(data.shape[1:]), np.eye(4)), pre_affine_name="pre", scalars_only=True
    )(subject)
    # The image moved 4 mm along +R: voxel i now holds what was at i - 4.
    np.testing.assert_allclose(out.t.data[:, 4:], data[:, :-4], atol=1e-5)
    assert (out.t.data[:, :4] == 0).all()
    assert out.l.data is subject.l.data or torch.equal(out.l.data, subject.l.data)
    with pytest.raises(ValueError, match="not found"):
        tio.Resample(1, pre_affine_name="missing")(subject)


def test_antialias_uses_cardoso_sigmas() -> None:
    theirs, ours = run_both(torchio.Resample(2, antialias=True), tio.Resample(2, antialias=True))
    # TorchIO smooths with ITK's recursive Gaussian, torchvox with a sampled one.
    difference = (ours.t.data - theirs.t.data).abs()  # type: ignore[attr-defined]
    assert difference.mean() < 0.01 * theirs.t.data.abs().mean()  # type: ignore[attr-defined]
    plain = run_both(torchio.Resample(2), tio.Resample(2))[1]
    assert (plain.t.data - ours.t.data).abs().max() > 0.1  # type: ignore[attr-defined]


@pytest.mark.parametrize("flips", [(1, 1, 1), (-1, -1, 1)], ids=["RAS", "LPS"])
def test_lesion_stays_at_its_world_coordinate(flips: tuple[int, int, int]) -> None:
    shape = (40, 44, 36)
    affine = np.diag([*(np.array(flips) * np.array([1.0, 1.1, 1.3])), 1.0])
    affine[:3, 3] = [-20.0 * flips[0], -22.0 * flips[1], -15.0]
    lesion_world = np.array([5.0, -3.0, 7.0])
    index = np.linalg.inv(affine) @ np.r_[lesion_world, 1.0]
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = grid @ affine[:3, :3].T + affine[:3, 3]
    lesion = (np.linalg.norm(world - lesion_world, axis=-1) < 4).astype(np.uint8)[None]
    image = tio.LabelMap(tensor=torch.from_numpy(lesion), affine=affine)
    scalar = tio.ScalarImage(tensor=torch.from_numpy(lesion.astype(np.float32)), affine=affine)
    assert lesion[(0, *np.round(index[:3]).astype(int))] == 1
    before = nib.affines.apply_affine(affine, ndimage.center_of_mass(lesion[0]))
    for target in [0.7, 2.0, (1.5, 0.8, 1.2)]:
        # Linear interpolation keeps the centroid; nearest moves it by less than
        # half an output voxel.
        out = tio.Resample(target)(scalar)
        centroid = nib.affines.apply_affine(out.affine, ndimage.center_of_mass(out.data[0].numpy()))
        assert np.linalg.norm(centroid - before) < 0.1
        out = tio.Resample(target)(image)
        centroid = nib.affines.apply_affine(out.affine, ndimage.center_of_mass(out.data[0].numpy()))
        half_voxel = np.linalg.norm(np.array(out.spacing)) / 2
        assert np.linalg.norm(centroid - before) < half_voxel
    canonical = tio.ToCanonical()(image)
    centroid = np.array(ndimage.center_of_mass(canonical.data[0].numpy()))
    np.testing.assert_allclose(
        nib.affines.apply_affine(canonical.affine, centroid), lesion_world, atol=0.2
    )


def test_resize_matches_torchio() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs, ours = run_both(torchio.Resize((15, 20, 11)), tio.Resize((15, 20, 11)))
    assert ours.t.shape == (2, 15, 20, 11)  # type: ignore[attr-defined]
    np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=1e-4)  # type: ignore[attr-defined]
    np.testing.assert_allclose(ours.t.affine, theirs.t.affine, atol=1e-12)  # type: ignore[attr-defined]
    out = tio.Resize((-1, 13, 11))(tio.ScalarImage(tensor=torch.rand(1, 30, 26, 22)))
    assert out.shape == (1, 30, 13, 11)
    with pytest.raises(ValueError):
        tio.Resize((10, 0, 10))


def test_to_reference_space_matches_torchio() -> None:
    data, _ = arrays()
    small = torch.rand(1, 10, 13, 11)
    reference_io = torchio.ScalarImage(tensor=torch.from_numpy(data), affine=OBLIQUE)
    reference = tio.ScalarImage(tensor=torch.from_numpy(data), affine=OBLIQUE)
    theirs = torchio.ToReferenceSpace.from_tensor(small, reference_io)
    ours = tio.ToReferenceSpace.from_tensor(small, reference)
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-12)
    assert torch.equal(ours.data, small)
    transformed = tio.ToReferenceSpace(reference)(tio.ScalarImage(tensor=small))
    np.testing.assert_allclose(transformed.affine, theirs.affine, atol=1e-12)
    with pytest.raises(TypeError):
        tio.ToReferenceSpace(data)  # type: ignore[arg-type]


def test_random_anisotropy_matches_torchio_with_same_seed() -> None:
    data, _ = arrays()
    torch.manual_seed(3)
    theirs = torchio.RandomAnisotropy()(
        torchio.ScalarImage(tensor=torch.from_numpy(data), affine=OBLIQUE)
    )
    torch.manual_seed(3)
    ours = tio.RandomAnisotropy()(tio.ScalarImage(tensor=torch.from_numpy(data), affine=OBLIQUE))
    np.testing.assert_allclose(ours.data, theirs.data, atol=1e-4)
    assert not torch.allclose(ours.data, torch.from_numpy(data))
    subject = tio.Subject(t=tio.ScalarImage(tensor=torch.from_numpy(data), affine=OBLIQUE))
    out = tio.RandomAnisotropy()(subject)
    assert [name for name, _ in out.applied_transforms] == ["Resample", "Resample"]
    with pytest.raises(ValueError):
        tio.RandomAnisotropy(axes=(3,))
    with pytest.raises(ValueError):
        tio.RandomAnisotropy(downsampling=(0.5, 2))


def test_mni_labels_stay_integer_with_same_label_set(mni152: tio.Subject) -> None:
    out = tio.Resample(2)(mni152)
    assert out.tissues.data.dtype == mni152.tissues.data.dtype
    assert set(out.tissues.data.unique().tolist()) == set(mni152.tissues.data.unique().tolist())
    assert out.t1.shape == (1, 98, 116, 94)


@pytest.mark.parametrize(
    "target",
    [
        0,
        -1.0,
        (1, 1),
        (1, 2, 0),
        "nan",
        ((10, 10), np.eye(4)),
        ((10, 10, 10), np.zeros((4, 4))),
        object(),
    ],
)
def test_bad_targets_raise(target: object) -> None:
    if target == "nan":
        target = (1.0, float("nan"), 1.0)
    with pytest.raises(ValueError):
        tio.Resample(target)


def test_bad_interpolation_and_missing_image() -> None:
    with pytest.raises(ValueError):
        tio.Resample(1, image_interpolation="sinc")
    with pytest.raises(TypeError):
        tio.Resample(1, image_interpolation=3)  # type: ignore[arg-type]
    data, _ = arrays()
    with pytest.raises(ValueError, match="not found"):
        tio.Resample("nonexistent")(tio.Subject(t=tio.ScalarImage(tensor=torch.from_numpy(data))))


def test_history_replays_exactly() -> None:
    data, labels = arrays()
    subject = tio.Subject(
        t=tio.ScalarImage(tensor=torch.from_numpy(data), affine=OBLIQUE),
        l=tio.LabelMap(tensor=torch.from_numpy(labels), affine=OBLIQUE),
    )
    out = tio.Resample((1.5, 0.8, 1.1), label_interpolation="label")(subject)
    replayed = out.get_composed_history()(subject)
    assert torch.equal(replayed.t.data, out.t.data)
    assert torch.equal(replayed.l.data, out.l.data)
    assert set(out.l.data.unique().tolist()) <= set(subject.l.data.unique().tolist())


def test_2d_image() -> None:
    image = tio.ScalarImage(tensor=torch.rand(3, 40, 30, 1), affine=np.diag([0.5, 0.5, 1.0, 1.0]))
    out = tio.Resample((1.0, 1.0, 1.0))(image)
    assert out.shape == (3, 20, 15, 1)
    theirs = torchio.Resample((1.0, 1.0, 1.0))(
        torchio.ScalarImage(tensor=image.data.clone(), affine=image.affine)
    )
    np.testing.assert_allclose(out.data, theirs.data, atol=1e-5)
