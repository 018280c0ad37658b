"""Spatial transforms compared with TorchIO 1.2.1 on identical inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transform_helpers import assert_same_subject, make_pair, run_both, torchio

import torchvox as tio

pytestmark = [
    pytest.mark.reference,
    pytest.mark.filterwarnings("ignore:The value computed for padding mode:RuntimeWarning"),
]

LABEL_DTYPES = [np.int16, np.uint8, np.int64]


@pytest.mark.parametrize("axes", [0, (1,), (0, 2), (0, 1, 2), ("LR",), ("Anterior", "i"), ("T",)])
@pytest.mark.parametrize("affine_name", ["oblique", "lps", "oblique_flipped"])
def test_flip(axes, affine_name):
    ours, theirs = run_both(
        lambda: tio.Flip(axes), lambda: torchio.Flip(axes), affine_name=affine_name
    )
    assert_same_subject(ours, theirs)


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_flip_label_dtypes(label_dtype):
    ours, theirs = run_both(
        lambda: tio.Flip((0, 2)), lambda: torchio.Flip((0, 2)), label_dtype=label_dtype
    )
    assert_same_subject(ours, theirs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("axes", "probability"), [(0, 0.5), ((0, 1, 2), 0.5), (("LR", "AP"), 0.7), ((2,), 1.0)]
)
def test_random_flip_same_draws(seed, axes, probability):
    ours, theirs = run_both(
        lambda: tio.RandomFlip(axes, flip_probability=probability),
        lambda: torchio.RandomFlip(axes, flip_probability=probability),
        seed=seed,
        affine_name="lps",
    )
    assert_same_subject(ours, theirs)
    assert [name for name, _ in ours.applied_transforms] == [
        name for name, _ in theirs.applied_transforms
    ]


@pytest.mark.parametrize("cropping", [1, (1, 2, 0), (0, 1, 2, 3, 1, 0)])
@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_crop(cropping, copy, label_dtype):
    ours, theirs = run_both(
        lambda: tio.Crop(cropping, copy=copy),
        lambda: torchio.Crop(cropping, copy=copy),
        label_dtype=label_dtype,
    )
    assert_same_subject(ours, theirs)
    assert ours["age"] == 45


PAD_MODES = [
    0,
    -3.5,
    7,
    "constant",
    "edge",
    "wrap",
    "reflect",
    "symmetric",
    "linear_ramp",
    "maximum",
    "minimum",
    "mean",
    "median",
]


@pytest.mark.parametrize("padding_mode", PAD_MODES)
@pytest.mark.parametrize("padding", [2, (1, 0, 3), (0, 3, 1, 1, 4, 2), (9, 0, 0, 10, 11, 1)])
def test_pad_modes(padding_mode, padding):
    ours, theirs = run_both(
        lambda: tio.Pad(padding, padding_mode=padding_mode),
        lambda: torchio.Pad(padding, padding_mode=padding_mode),
    )
    assert_same_subject(ours, theirs)


@pytest.mark.parametrize("padding_mode", PAD_MODES)
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_pad_modes_integer_labels(padding_mode, label_dtype):
    if label_dtype is np.uint8 and isinstance(padding_mode, float) and padding_mode < 0:
        # NumPy (hence TorchIO) silently wraps -3 around to 253; torchvox refuses.
        subject, _ = make_pair(label_dtype=label_dtype)
        with pytest.raises(ValueError, match="cannot be stored"):
            tio.Pad(1, padding_mode=padding_mode)(subject)
        return
    ours, theirs = run_both(
        lambda: tio.Pad((2, 1, 0, 3, 1, 1), padding_mode=padding_mode),
        lambda: torchio.Pad((2, 1, 0, 3, 1, 1), padding_mode=padding_mode),
        label_dtype=label_dtype,
    )
    assert_same_subject(ours, theirs)


def test_pad_callable_mode():
    def ramp_to_seven(vector, pad_width, iaxis, kwargs):
        if pad_width[0]:
            vector[: pad_width[0]] = 7
        if pad_width[1]:
            vector[-pad_width[1] :] = -7

    ours, theirs = run_both(
        lambda: tio.Pad((1, 2, 0, 1, 2, 0), padding_mode=ramp_to_seven),
        lambda: torchio.Pad((1, 2, 0, 1, 2, 0), padding_mode=ramp_to_seven),
    )
    assert_same_subject(ours, theirs)


def test_pad_mean_warns_for_integers():
    subject, _ = make_pair()
    with pytest.warns(RuntimeWarning, match="truncated"):
        tio.Pad(1, padding_mode="mean")(subject)


@pytest.mark.parametrize(
    "target_shape",
    [(5, 8, 9), (10, 11, 12), (4, 12, 3), 6, (None, 5, None), (7, 8, 9), (2, 20, 1)],
)
@pytest.mark.parametrize(
    "padding_mode",
    [0, 7.5, "edge", "wrap", "reflect", "symmetric", "linear_ramp", "mean", "median", "maximum"],
)
def test_crop_or_pad(target_shape, padding_mode):
    ours, theirs = run_both(
        lambda: tio.CropOrPad(target_shape, padding_mode=padding_mode),
        lambda: torchio.CropOrPad(target_shape, padding_mode=padding_mode),
    )
    assert_same_subject(ours, theirs)
    assert ours.applied_transforms == theirs.applied_transforms


@pytest.mark.parametrize("kwargs", [{"only_crop": True}, {"only_pad": True}])
def test_crop_or_pad_only(kwargs):
    ours, theirs = run_both(
        lambda: tio.CropOrPad((4, 12, 9), **kwargs),
        lambda: torchio.CropOrPad((4, 12, 9), **kwargs),
    )
    assert_same_subject(ours, theirs)


@pytest.mark.parametrize("seed", range(8))
def test_crop_or_pad_random_location(seed):
    ours, theirs = run_both(
        lambda: tio.CropOrPad((3, 10, 4), location="random"),
        lambda: torchio.CropOrPad((3, 10, 4), location="random"),
        seed=seed,
    )
    assert_same_subject(ours, theirs)
    assert ours.applied_transforms == theirs.applied_transforms


@pytest.mark.parametrize(
    ("target_shape", "units"),
    [((5.0, 9.5, 11.0), "mm"), ((0.6, 1.0, 1.2), "cm"), ((6.3, None, 4.0), "mm")],
)
def test_crop_or_pad_units(target_shape, units):
    ours, theirs = run_both(
        lambda: tio.CropOrPad(target_shape, units=units),
        lambda: torchio.CropOrPad(target_shape, units=units),
        affine_name="ras_anisotropic",
    )
    assert_same_subject(ours, theirs)


@pytest.mark.parametrize("target_shape", [(4, 4, 4), (3, 10, 5), None, (8, 9, 10)])
@pytest.mark.parametrize("labels", [None, [2], [1, 3]])
@pytest.mark.parametrize("padding_mode", [0, "reflect", "linear_ramp"])
def test_crop_or_pad_mask(target_shape, labels, padding_mode):
    def ours():
        return tio.CropOrPad(
            target_shape, mask_name="label", labels=labels, padding_mode=padding_mode
        )

    def theirs():
        return torchio.CropOrPad(
            target_shape, mask_name="label", labels=labels, padding_mode=padding_mode
        )

    for seed in range(3):
        our_subject, their_subject = make_pair(seed=seed)
        # A compact mask region so the bounding box is smaller than the image.
        for subject in (our_subject, their_subject):
            data = subject["label"].data.clone()
            data[:, :2] = 0
            data[:, :, -3:] = 0
            data[:, :, :, :1] = 0
            subject["label"].set_data(data)
        torch.manual_seed(0)
        their_output = theirs()(their_subject)
        torch.manual_seed(0)
        our_output = ours()(our_subject)
        assert_same_subject(our_output, their_output)
        assert our_output.applied_transforms == their_output.applied_transforms


def test_crop_or_pad_empty_or_missing_mask_falls_back_to_center():
    ours_subject, _ = make_pair()
    ours_subject["label"].set_data(torch.zeros_like(ours_subject["label"].data))
    with pytest.warns(RuntimeWarning, match="zero"):
        out = tio.CropOrPad((5, 5, 5), mask_name="label")(ours_subject)
    assert out.spatial_shape == (5, 5, 5)
    with pytest.warns(RuntimeWarning, match="not found"):
        out = tio.CropOrPad((5, 5, 5), mask_name="missing")(ours_subject)
    assert out.spatial_shape == (5, 5, 5)


@pytest.mark.parametrize("multiple", [4, (2, 3, 5), 16])
@pytest.mark.parametrize("method", ["pad", "crop"])
def test_ensure_shape_multiple(multiple, method):
    ours, theirs = run_both(
        lambda: tio.EnsureShapeMultiple(multiple, method=method),
        lambda: torchio.EnsureShapeMultiple(multiple, method=method),
    )
    assert_same_subject(ours, theirs)
    assert ours.applied_transforms == theirs.applied_transforms


ORIENTATIONS = ["RAS", "LAS", "LPS", "PLS", "SLP", "IRA", "ASL", "ras"]


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("affine_name", ["oblique", "lps", "oblique_flipped", "ras_identity"])
def test_to_orientation(orientation, affine_name):
    ours, theirs = run_both(
        lambda: tio.ToOrientation(orientation),
        lambda: torchio.ToOrientation(orientation),
        affine_name=affine_name,
    )
    assert_same_subject(ours, theirs)
    assert ours["image"].orientation_str == orientation.upper()


@pytest.mark.parametrize("affine_name", ["oblique", "lps", "oblique_flipped"])
def test_to_canonical_and_transpose(affine_name):
    ours, theirs = run_both(tio.ToCanonical, torchio.ToCanonical, affine_name=affine_name)
    assert_same_subject(ours, theirs)
    ours, theirs = run_both(tio.Transpose, torchio.Transpose, affine_name=affine_name)
    assert_same_subject(ours, theirs)


def test_to_orientation_matches_nibabel_as_reoriented():
    import nibabel as nib
    from nibabel import orientations

    ours, _ = make_pair(affine_name="oblique_flipped", shape=(1, 5, 6, 7))
    array = ours["image"].data[0].numpy()
    affine = ours["image"].affine.copy()
    nii = nib.Nifti1Image(array, affine)
    for code in ("PSR", "LIA", "RAS"):
        transform = orientations.ornt_transform(
            orientations.io_orientation(affine), orientations.axcodes2ornt(tuple(code))
        )
        expected = nii.as_reoriented(transform)
        result = tio.ToOrientation(code)(ours)
        np.testing.assert_array_equal(result["image"].data[0].numpy(), expected.get_fdata())
        np.testing.assert_allclose(result["image"].affine, expected.affine, atol=1e-12)


def test_copy_affine():
    ours, theirs = make_pair()
    for subject in (ours, theirs):
        subject["label"].affine = subject["label"].affine * 1.0001
    torch.manual_seed(0)
    theirs_out = torchio.CopyAffine("image")(theirs)
    ours_out = tio.CopyAffine("image")(ours)
    assert_same_subject(ours_out, theirs_out)
    assert ours_out["label"].affine is not ours_out["image"].affine


@pytest.mark.parametrize("image_dtype", [np.float16, np.int8, np.float32])
def test_crop_or_pad_one_pass_equals_pad_then_crop(image_dtype):
    # The fused path (kernel, or NumPy for dtypes without a kernel) against the two
    # recorded transforms replayed one after the other.
    subject, _ = make_pair(image_dtype=image_dtype)
    out = tio.CropOrPad((4, 12, 3), padding_mode="symmetric")(subject)
    names = [name for name, _ in out.applied_transforms]
    assert names == ["Pad", "Crop"]
    replayed = subject
    for transform in out.history:
        replayed = transform(replayed)
    for name in ("image", "label"):
        assert out[name].data.dtype == subject[name].data.dtype
        assert torch.equal(out[name].data, replayed[name].data)
        np.testing.assert_array_equal(out[name].affine, replayed[name].affine)
