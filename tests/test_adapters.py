"""MonaiAdapter (MONAI transforms in torchvox pipelines) and TorchIO <-> torchvox converters."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

import torchvox as tio

monai_transforms = pytest.importorskip("monai.transforms")
torchio = pytest.importorskip("torchio")


def _affine(spacing=(1.0, 1.5, 2.0), origin=(-10.0, 5.0, 3.0), flips=(1, 1, 1)) -> np.ndarray:
    affine = np.diag([*(np.asarray(spacing) * flips), 1.0])
    affine[:3, 3] = origin
    return affine


@pytest.fixture
def subject() -> tio.Subject:
    generator = torch.Generator().manual_seed(0)
    t1 = torch.rand(1, 8, 9, 10, generator=generator)
    seg = (t1 > 0.5).to(torch.uint8)
    affine = _affine()
    return tio.Subject(
        t1=tio.ScalarImage(tensor=t1, affine=affine),
        seg=tio.LabelMap(tensor=seg, affine=affine),
        age=42,
    )


# ----------------------------------------------------------------------- MonaiAdapter


def test_orientationd_round_trip_matches_nibabel(subject: tio.Subject) -> None:
    keys = ["t1", "seg"]
    to_lps = tio.MonaiAdapter(monai_transforms.Orientationd(keys=keys, axcodes="LPS"))
    lps = to_lps(subject)
    # Reference: nibabel's reorientation of the same array and affine.
    t1 = nib.Nifti1Image(subject.t1.numpy()[0], subject.t1.affine)
    reference = t1.as_reoriented(nib.orientations.axcodes2ornt("LPS"))
    assert lps.t1.orientation == ("L", "P", "S")
    assert np.allclose(lps.t1.affine, reference.affine)
    assert np.array_equal(lps.t1.numpy()[0], reference.get_fdata(dtype=np.float32))
    assert np.allclose(lps.seg.affine, reference.affine)
    assert torch.equal(lps.seg.data, subject.seg.data.flip(1, 2))
    assert lps["age"] == 42 and isinstance(lps.seg, tio.LabelMap)
    # Back to RAS: the original data and affine.
    back = tio.MonaiAdapter(monai_transforms.Orientationd(keys=keys, axcodes="RAS"))(lps)
    assert np.allclose(back.t1.affine, subject.t1.affine)
    assert torch.equal(back.t1.data, subject.t1.data)
    assert torch.equal(back.seg.data.to(torch.uint8), subject.seg.data)
    # The input was not modified (copy=True) and the adapter is not in the history.
    assert subject.t1.orientation == ("R", "A", "S")
    assert back.history == []


def test_spacingd_writes_affine_back_and_resamples_in_world_space() -> None:
    # A linear function of the world coordinates is reproduced exactly by linear
    # interpolation, so each output voxel must hold f(affine_out @ index).
    affine = _affine(spacing=(1.0, 1.0, 1.0), origin=(3.0, -2.0, 1.0))
    shape = (12, 14, 10)
    index = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    weights = np.array([0.5, -0.25, 2.0])
    values = (world @ weights)[np.newaxis].astype(np.float32)
    image = tio.ScalarImage(tensor=torch.from_numpy(values), affine=affine)
    spacing = monai_transforms.Spacingd(keys="image", pixdim=(2.0, 2.0, 2.0), mode="bilinear")
    result = tio.MonaiAdapter(spacing)(tio.Subject(image=image))["image"]
    assert result.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert np.allclose(result.origin, image.origin)  # MONAI keeps the first voxel centre
    out_index = np.stack(
        np.meshgrid(*[np.arange(s) for s in result.spatial_shape], indexing="ij"), -1
    )
    out_world = out_index @ result.affine[:3, :3].T + result.affine[:3, 3]
    expected = out_world @ weights
    inside = np.all(out_index * 2 <= np.asarray(shape) - 1, axis=-1)
    assert inside.sum() > 50
    assert np.allclose(result.numpy()[0][inside], expected[inside], atol=1e-4)


def test_array_transform_per_image_with_include(subject: tio.Subject) -> None:
    adapter = tio.MonaiAdapter(monai_transforms.ScaleIntensity(minv=-1.0, maxv=1.0), include=["t1"])
    out = adapter(subject)
    assert out.t1.data.min() == pytest.approx(-1) and out.t1.data.max() == pytest.approx(1)
    assert torch.equal(out.seg.data, subject.seg.data)  # excluded
    assert np.array_equal(out.t1.affine, subject.t1.affine)
    # Inside a Compose with torchvox transforms.
    pipeline = tio.Compose([tio.Flip(axes=(0,)), adapter])
    composed = pipeline(subject)
    expected = subject.t1.data.flip(1)
    expected = (expected - expected.min()) / (expected.max() - expected.min()) * 2 - 1
    assert torch.allclose(composed.t1.data, expected, atol=1e-6)
    assert [name for name, _ in composed.applied_transforms] == ["Flip"]


def test_random_array_transform_warns(subject: tio.Subject) -> None:
    with pytest.warns(UserWarning, match="RandFlipd"):
        tio.MonaiAdapter(monai_transforms.RandFlip(prob=1.0, spatial_axis=0))(subject)


def test_dict_outputs_new_keys_and_errors(subject: tio.Subject) -> None:
    copied = tio.MonaiAdapter(monai_transforms.CopyItemsd(keys="t1", names="t1_copy"))(subject)
    assert isinstance(copied["t1_copy"], tio.ScalarImage)
    assert np.allclose(copied["t1_copy"].affine, subject.t1.affine)
    assert torch.equal(copied["t1_copy"].data, subject.t1.data)
    assert copied.t1_copy is copied["t1_copy"]
    many = monai_transforms.RandSpatialCropSamplesd(
        keys=["t1", "seg"], roi_size=(4, 4, 4), num_samples=2, random_size=False
    )
    with pytest.raises(TypeError, match="several samples"):
        tio.MonaiAdapter(many)(subject)
    with pytest.raises(TypeError, match="callable"):
        tio.MonaiAdapter(42)
    with pytest.raises(NotImplementedError):
        tio.MonaiAdapter(monai_transforms.ScaleIntensity()).to_hydra_config()


def test_crop_updates_origin(subject: tio.Subject) -> None:
    crop = monai_transforms.SpatialCropd(keys=["t1", "seg"], roi_start=(2, 3, 4), roi_end=(6, 8, 9))
    out = tio.MonaiAdapter(crop)(subject)
    assert out.t1.shape == (1, 4, 5, 5)
    # Same result as torchvox's own slicing, which moves the origin to the first voxel kept.
    reference = subject.t1[2:6, 3:8, 4:9]
    assert torch.equal(out.t1.data, reference.data)
    assert np.allclose(out.t1.affine, reference.affine)


# ----------------------------------------------------------------------- converters


def test_images_and_subjects_round_trip(subject: tio.Subject, tmp_path) -> None:
    subject.t1["scanner"] = "Prisma"
    transformed = tio.Flip(axes=(1,))(subject)
    as_torchio = tio.to_torchio(transformed)
    assert isinstance(as_torchio, torchio.Subject)
    assert isinstance(as_torchio["t1"], torchio.ScalarImage)
    assert isinstance(as_torchio["seg"], torchio.LabelMap)
    assert as_torchio["age"] == 42 and as_torchio["t1"]["scanner"] == "Prisma"
    assert torch.equal(as_torchio["t1"].data, transformed.t1.data)
    assert np.array_equal(as_torchio["t1"].affine, transformed.t1.affine)
    assert as_torchio.applied_transforms == transformed.applied_transforms
    # TorchIO can replay the converted history.
    inverse = as_torchio.get_inverse_transform()
    restored = inverse(as_torchio)
    assert torch.equal(restored["t1"].data, subject.t1.data)
    back = tio.from_torchio(as_torchio)
    assert isinstance(back, tio.Subject) and isinstance(back.seg, tio.LabelMap)
    assert back.applied_transforms == transformed.applied_transforms
    assert torch.equal(back.t1.data, transformed.t1.data)
    assert back.t1["scanner"] == "Prisma" and back["age"] == 42
    assert torch.equal(back.apply_inverse_transform().t1.data, subject.t1.data)


def test_lazy_images_stay_lazy(tmp_path) -> None:
    path = tmp_path / "t1.nii.gz"
    affine = _affine(flips=(-1, 1, 1))
    tio.ScalarImage(tensor=torch.rand(1, 4, 5, 6), affine=affine).save(path)
    lazy = torchio.ScalarImage(path)
    converted = tio.from_torchio(lazy)
    assert not converted._loaded and converted.path == path
    assert np.allclose(converted.affine, lazy.affine)
    assert torch.equal(converted.data, lazy.data)
    generic = torchio.Image(tensor=torch.zeros(1, 2, 2, 2), type=torchio.SAMPLING_MAP)
    as_vox = tio.from_torchio(generic)
    assert type(as_vox) is tio.Image and as_vox.type == "sampling_map"


def test_transforms_convert_by_name_and_arguments(subject: tio.Subject) -> None:
    pipeline = torchio.Compose(
        [
            torchio.Flip(axes=(0, 2)),
            torchio.RescaleIntensity(out_min_max=(-1, 1), percentiles=(1, 99)),
            torchio.OneOf({torchio.RandomFlip(axes=(1,)): 0.2, torchio.Flip(axes=(1,)): 0.8}),
        ],
        p=0.9,
    )
    converted = tio.from_torchio(pipeline)
    assert isinstance(converted, tio.Compose) and converted.probability == 0.9
    flip, rescale, one_of = converted.transforms
    assert isinstance(flip, tio.Flip) and tuple(flip.axes) == (0, 2)
    assert tuple(rescale.out_min_max) == (-1, 1) and tuple(rescale.percentiles) == (1, 99)
    assert isinstance(one_of, tio.OneOf)
    weights = sorted(one_of.transforms_dict.values())
    assert weights == pytest.approx([0.2, 0.8])
    random_flip = next(t for t in one_of.transforms_dict if isinstance(t, tio.RandomFlip))
    assert tuple(random_flip.axes) == (1,)
    # Deterministic parts give TorchIO's output.
    deterministic = torchio.Compose(pipeline.transforms[:2])
    expected = deterministic(tio.to_torchio(subject))
    got = tio.from_torchio(deterministic)(subject)
    assert torch.allclose(got.t1.data, expected["t1"].data, atol=1e-6)
    # And back to TorchIO.
    again = tio.to_torchio(converted)
    assert isinstance(again, torchio.Compose) and isinstance(again.transforms[0], torchio.Flip)
    inverted = tio.from_torchio(torchio.Gamma(gamma=0.7).inverse())
    assert isinstance(inverted, tio.Gamma) and inverted.invert_transform
    image = tio.ScalarImage(tensor=torch.rand(1, 3, 4, 5) + 0.5)
    expected_image = torchio.Gamma(gamma=0.7).inverse()(tio.to_torchio(image))
    assert torch.allclose(inverted(image).data, expected_image.data.float(), atol=1e-5)


def test_dataset_and_unknown_transform() -> None:
    subjects = [torchio.Subject(t1=torchio.ScalarImage(tensor=torch.rand(1, 3, 3, 3)))]
    dataset = torchio.SubjectsDataset(subjects, transform=torchio.Flip(axes=(0,)))
    converted = tio.from_torchio(dataset)
    assert isinstance(converted, tio.SubjectsDataset) and len(converted) == 1
    assert torch.equal(converted[0].t1.data, subjects[0]["t1"].data.flip(1))
    with pytest.raises(ValueError, match='no transform named "SomeOf"'):
        tio.to_torchio(tio.SomeOf([tio.Flip(axes=(0,))]))


def test_torchvox_transform_on_monai_style_dict() -> None:
    # The reverse direction: a MONAI pipeline's dict (MetaTensors) through torchvox.
    image = torch.rand(1, 4, 5, 6)
    label = (image > 0.5).to(torch.uint8)
    from monai.data import MetaTensor

    sample = {"image": MetaTensor(image), "label": MetaTensor(label), "id": "case-1"}
    flip = tio.Flip(axes=(0,), include=["image", "label"], label_keys=["label"])
    out = flip(sample)
    assert out["id"] == "case-1"
    assert torch.equal(torch.as_tensor(out["image"]), image.flip(1))
    assert torch.equal(torch.as_tensor(out["label"]), label.flip(1))
