"""The transform framework: inputs, probability, copies, include/exclude, keep, history,
inversion, serialisation, containers and argument validation."""

from __future__ import annotations

import copy
import importlib
import warnings

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from transform_helpers import assert_same_subject, make_pair, torchio

import torchvox as tio
from torchvox.transforms import transform as transform_module
from torchvox.transforms.interpolation import parse_interpolation
from torchvox.transforms.random_transform import RandomTransform


def _our_and_their(name, *args, **kwargs):
    return getattr(tio, name)(*args, **kwargs), getattr(torchio, name)(*args, **kwargs)


# ----------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("transform_name", ["Flip", "Pad"])
def test_every_input_type_round_trips_like_torchio(transform_name):
    args = {"Flip": ((0, 2),), "Pad": ((1, 0, 2, 1, 0, 3),)}[transform_name]
    rng = np.random.default_rng(3)
    array = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    affine = np.diag([0.5, 2.0, 1.5, 1.0])
    affine[:3, 3] = (1, -2, 3)
    ours, theirs = _our_and_their(transform_name, *args)

    # Tensor and array: same type out, identity affine.
    for data in (torch.from_numpy(array.copy()), array.copy()):
        out, ref = ours(data), theirs(copy.deepcopy(data))
        assert type(out) is type(data)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))

    # Images keep their class; data and affine as TorchIO.
    for our_class, their_class in (
        (tio.ScalarImage, torchio.ScalarImage),
        (tio.LabelMap, torchio.LabelMap),
    ):
        image = our_class(tensor=array.copy(), affine=affine)
        out = ours(image)
        ref = theirs(their_class(tensor=array.copy(), affine=affine))
        assert type(out) is our_class and out is not image
        assert torch.equal(out.data, ref.data)
        np.testing.assert_allclose(out.affine, ref.affine)

    # SimpleITK image.
    sitk_image = sitk.GetImageFromArray(array[0].transpose(2, 1, 0).copy())
    sitk_image.SetSpacing((0.5, 2.0, 1.5))
    sitk_image.SetOrigin((4.0, 5.0, 6.0))
    out, ref = ours(sitk_image), theirs(sitk_image)
    assert isinstance(out, sitk.Image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(ref))
    np.testing.assert_allclose(out.GetOrigin(), ref.GetOrigin())
    np.testing.assert_allclose(out.GetSpacing(), ref.GetSpacing())

    # NiBabel images: 3D and 5D with one time point.
    for nii_array in (array[0], array.transpose(1, 2, 3, 0)[:, :, :, np.newaxis, :]):
        nii = nib.Nifti1Image(nii_array.copy(), affine)
        out, ref = ours(nii), theirs(nii)
        assert isinstance(out, nib.Nifti1Image)
        np.testing.assert_array_equal(out.get_fdata(), ref.get_fdata())
        np.testing.assert_allclose(out.affine, ref.affine)

    # Dicts (MONAI style): include names the images, label_keys the label maps.
    ours_dict = getattr(tio, transform_name)(*args, include=["a", "b"], label_keys=["b"])
    theirs_dict = getattr(torchio, transform_name)(*args, include=["a", "b"], label_keys=["b"])
    labels = (array[:1] > 0).astype(np.int64)
    data = {"a": torch.from_numpy(array.copy()), "b": labels.copy(), "meta": "x"}
    out = ours_dict(data)
    ref = theirs_dict({"a": torch.from_numpy(array.copy()), "b": labels.copy(), "meta": "x"})
    assert isinstance(out, dict) and out["meta"] == "x"
    for key in ("a", "b"):
        assert isinstance(out[key], torch.Tensor)
        assert torch.equal(out[key], ref[key])


def test_bad_inputs():
    flip = tio.Flip(0)
    with pytest.raises(ValueError, match="4D"):
        flip(torch.rand(4, 5, 6))
    with pytest.raises(RuntimeError, match="include"):
        flip({"a": torch.rand(1, 2, 2, 2)})
    with pytest.raises(TypeError, match="tensors or arrays"):
        tio.Flip(0, include=["a"])({"a": [1, 2]})
    with pytest.raises(ValueError, match="not recognized"):
        flip("image.nii")


# ----------------------------------------------------------------------------- probability


def test_probability_consumes_one_draw_and_returns_input_when_skipped():
    subject, _ = make_pair()
    torch.manual_seed(5)
    expected_draw = torch.rand(1).item()
    torch.manual_seed(5)
    assert tio.Flip(0, p=0)(subject) is subject
    after_skip = torch.rand(1).item()
    torch.manual_seed(5)
    torch.rand(1)
    assert after_skip == torch.rand(1).item() != expected_draw
    # p=1 draws too, so seeded pipelines match TorchIO's streams.
    torch.manual_seed(5)
    tio.Flip(0, p=1)(subject)
    torch.manual_seed(5)
    torch.rand(1)
    assert torch.equal(torch.random.get_rng_state(), torch.random.get_rng_state())


@pytest.mark.parametrize("seed", range(10))
def test_probability_decisions_match_torchio(seed):
    ours_subject, theirs_subject = make_pair()
    ours = tio.Compose([tio.Flip(0, p=0.5), tio.Pad(1, p=0.3), tio.RandomFlip((1, 2), p=0.6)])
    theirs = torchio.Compose(
        [torchio.Flip(0, p=0.5), torchio.Pad(1, p=0.3), torchio.RandomFlip((1, 2), p=0.6)]
    )
    torch.manual_seed(seed)
    ref = theirs(theirs_subject)
    torch.manual_seed(seed)
    out = ours(ours_subject)
    assert_same_subject(out, ref)
    assert out.applied_transforms == ref.applied_transforms


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", None])
def test_bad_probability(p):
    with pytest.raises(ValueError, match="Probability"):
        tio.Flip(0, p=p)
    with pytest.raises(ValueError, match="flip_probability"):
        tio.RandomFlip(flip_probability=p)


# ----------------------------------------------------------------------------- copies


def test_copy_true_leaves_input_untouched_and_copy_false_works_in_place():
    subject, _ = make_pair()
    original = subject["image"].data.clone()
    out = tio.Flip(0)(subject)
    assert out is not subject
    assert torch.equal(subject["image"].data, original)
    out = tio.Flip(0, copy=False)(subject)
    assert out is subject
    assert torch.equal(subject["image"].data, torch.flip(original, [1]))


def _count_deepcopies(monkeypatch):
    calls = []
    depth = [0]
    real = copy.deepcopy

    def counting(obj, memo=None):
        # Only outermost copies count (deepcopy recurses through the same function).
        if depth[0] == 0:
            calls.append(type(obj).__name__)
        depth[0] += 1
        try:
            return real(obj, memo)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(transform_module.copy_module, "deepcopy", counting)
    return calls


def test_compose_copies_the_subject_once(monkeypatch):
    subject, _ = make_pair()
    before = {name: image.data.clone() for name, image in subject.get_images_dict(False).items()}
    calls = _count_deepcopies(monkeypatch)
    pipeline = tio.Compose(
        [
            tio.RandomFlip((0, 1, 2), flip_probability=1),
            tio.CropOrPad((5, 9, 9)),
            tio.Crop(1),
            tio.OneOf([tio.ZNormalization(), tio.RescaleIntensity()]),
            tio.SomeOf([tio.Clamp(0, 100), tio.Pad(1)], num_transforms=2),
        ]
    )
    out = pipeline(subject)
    assert calls == ["Subject"]
    # The caller's subject is intact.
    for name, data in before.items():
        assert torch.equal(subject[name].data, data)
    assert out["image"].spatial_shape == (5, 9, 9)


def test_compose_without_copy_still_protects_input_when_children_ask(monkeypatch):
    subject, _ = make_pair()
    before = subject["image"].data.clone()
    calls = _count_deepcopies(monkeypatch)
    tio.Compose([tio.Flip(0), tio.Flip(1)], copy=False)(subject)
    assert calls == ["Subject"]
    assert torch.equal(subject["image"].data, before)
    calls.clear()
    tio.Compose([tio.Flip(0, copy=False)], copy=False)(subject)
    assert calls == []
    assert torch.equal(subject["image"].data, torch.flip(before, [1]))


def test_crop_copies_only_the_patch(monkeypatch):
    subject, theirs = make_pair()
    subject["notes"] = {"a": [1, 2]}
    before = subject["image"].data.clone()
    out = tio.Crop(2)(subject)
    assert out is not subject
    assert torch.equal(subject["image"].data, before)
    assert out["notes"] == {"a": [1, 2]} and out["notes"] is not subject["notes"]
    assert out.spatial_shape == (3, 4, 5)
    assert out.image.data.is_contiguous()
    # Nested in a container, the private copy is cropped in place.
    calls = _count_deepcopies(monkeypatch)
    tio.Compose([tio.Crop(1), tio.Crop(1)])(subject)
    assert calls == ["Subject"]


# ------------------------------------------------------------------ include, exclude, keep


def test_include_exclude():
    subject, _ = make_pair()
    out = tio.Flip(0, include=["image"])(subject)
    assert torch.equal(out["image"].data, torch.flip(subject["image"].data, [1]))
    assert torch.equal(out["label"].data, subject["label"].data)
    out = tio.Flip(0, exclude=["image"])(subject)
    assert torch.equal(out["image"].data, subject["image"].data)
    assert torch.equal(out["label"].data, torch.flip(subject["label"].data, [1]))
    with pytest.raises(ValueError, match="include"):
        tio.Flip(0, include=["a"], exclude=["b"])
    with pytest.raises(ValueError, match='"include"'):
        tio.Flip(0, include="image")
    with pytest.raises(ValueError, match='"exclude"'):
        tio.Flip(0, exclude=3)
    with pytest.raises(ValueError, match='"label_keys"'):
        tio.Flip(0, label_keys="label")
    with pytest.warns(FutureWarning, match="keys"):
        transform = tio.Flip(0, keys=["image"])
    assert transform.include == ["image"]


def test_intensity_transforms_skip_label_maps():
    subject, _ = make_pair()
    out = tio.RescaleIntensity()(subject)
    assert torch.equal(out["label"].data, subject["label"].data)
    assert out["image"].data.max() == 1


def test_keep():
    subject, theirs = make_pair()
    ours = tio.CropOrPad((4, 4, 4), keep={"image": "image_original"})(subject)
    ref = torchio.CropOrPad((4, 4, 4), keep={"image": "image_original"})(theirs)
    assert_same_subject(ours, ref)
    assert torch.equal(ours["image_original"].data, subject["image"].data)
    with pytest.raises(TypeError, match="keep"):
        tio.Flip(0, keep=["image"])


# ----------------------------------------------------------------------------- history


def _pipeline():
    return tio.Compose(
        [
            tio.ToCanonical(),
            tio.RandomFlip(("LR", "AP"), flip_probability=0.7),
            tio.CropOrPad((6, 10, 7), padding_mode="edge"),
            tio.EnsureShapeMultiple(4),
            tio.Transpose(),
            tio.Crop((1, 0, 0, 1, 2, 0)),
            tio.Pad((0, 1, 2, 0, 1, 1), padding_mode="mean"),
            tio.CropOrPad((7, 5, 6), location="random"),
            tio.Clamp(60, 150),
            tio.Mask("label", outside_value=-1, labels=[1, 2]),
            tio.RescaleIntensity((-1, 1), percentiles=(1, 99)),
            tio.ZNormalization(masking_method="Left"),
            tio.ToOrientation("PSL"),
        ]
    )


@pytest.mark.parametrize("seed", range(4))
def test_history_replay_reproduces_output_exactly(seed):
    subject, _ = make_pair(affine_name="oblique_flipped", image_dtype=np.float64)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = _pipeline()(subject)
        replayed = out.get_composed_history()(subject)
    for name in ("image", "label"):
        assert torch.equal(out[name].data, replayed[name].data)
        np.testing.assert_array_equal(out[name].affine, replayed[name].affine)


@pytest.mark.parametrize("seed", range(4))
def test_history_records_match_torchio(seed):
    ours_subject, theirs_subject = make_pair(affine_name="oblique")

    def build(module):
        return module.Compose(
            [
                module.RandomFlip((0, 1, 2)),
                module.CropOrPad((6, 10, 7), location="random"),
                module.EnsureShapeMultiple(4, method="crop"),
                module.Transpose(),
                module.ZNormalization(),
            ]
        )

    torch.manual_seed(seed)
    ref = build(torchio)(theirs_subject)
    torch.manual_seed(seed)
    out = build(tio)(ours_subject)
    assert [name for name, _ in out.applied_transforms] == [
        name for name, _ in ref.applied_transforms
    ]
    for (_, ours_args), (_, their_args) in zip(out.applied_transforms, ref.applied_transforms):
        assert ours_args == their_args
    assert_same_subject(out, ref, exact=False)


def test_inverse_of_invertible_pipeline_restores_input():
    subject, _ = make_pair(affine_name="lps")
    forward = tio.Compose(
        [
            tio.Pad((1, 2, 0, 3, 2, 1)),
            tio.Flip((0, 2)),
            tio.Transpose(),
            tio.Pad(2, padding_mode="edge"),
        ]
    )
    out = forward(subject)
    assert forward.is_invertible()
    restored = out.apply_inverse_transform()
    for name in ("image", "label"):
        assert torch.equal(restored[name].data, subject[name].data)
        np.testing.assert_allclose(restored[name].affine, subject[name].affine, atol=1e-12)
    assert restored.applied_transforms == []
    # Transform.inverse directly.
    restored = forward.inverse()(out)
    assert torch.equal(restored["image"].data, subject["image"].data)


def test_inverse_types_and_non_invertible():
    assert isinstance(tio.Pad(1).inverse(), tio.Crop)
    assert isinstance(tio.Crop((1, 2, 3)).inverse(), tio.Pad)
    flip = tio.Flip(1)
    assert flip.inverse() is flip
    assert tio.Transpose().is_invertible()
    assert not tio.ZNormalization().is_invertible()
    with pytest.raises(RuntimeError, match="not invertible"):
        tio.ZNormalization().inverse()
    compose = tio.Compose([tio.Flip(0), tio.ZNormalization()])
    assert not compose.is_invertible()
    with pytest.warns(RuntimeWarning, match="Skipping ZNormalization"):
        inverse = compose.inverse()
    assert len(inverse) == 1
    with pytest.warns(RuntimeWarning) as record:
        tio.Compose([tio.Clamp(0, 1)]).inverse()
    assert [str(w.message) for w in record] == [
        "Skipping Clamp as it is not invertible",
        "No invertible transforms found",
    ]


# ----------------------------------------------------------------------------- serialisation


def _instantiate(config):
    """A small stand-in for hydra.utils.instantiate (recursive)."""
    if isinstance(config, list):
        return [_instantiate(item) for item in config]
    if not isinstance(config, dict) or "_target_" not in config:
        return config
    module_name, class_name = config["_target_"].rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), class_name)
    kwargs = {key: _instantiate(value) for key, value in config.items() if key != "_target_"}
    return cls(**kwargs)


def test_to_hydra_config_round_trip_and_matches_torchio():
    ours = tio.Compose(
        [
            tio.Pad((1, 2, 3), padding_mode="reflect"),
            tio.RescaleIntensity((-1, 1)),
            tio.Flip(("LR",)),
        ]
    )
    theirs = torchio.Compose(
        [
            torchio.Pad((1, 2, 3), padding_mode="reflect"),
            torchio.RescaleIntensity((-1, 1)),
            torchio.Flip(("LR",)),
        ]
    )
    config = ours.to_hydra_config()
    reference = theirs.to_hydra_config()
    assert config["fuse"] is True
    assert config["_target_"] == "torchvox.transforms.composition.Compose"
    for child, their_child in zip(config["transforms"], reference["transforms"]):
        assert child["_target_"].startswith("torchvox.transforms.")
        assert child["_target_"].rsplit(".", 1)[1] == their_child["_target_"].rsplit(".", 1)[1]
        assert {k: v for k, v in child.items() if k != "_target_"} == {
            k: v for k, v in their_child.items() if k != "_target_"
        }
    rebuilt = _instantiate(config)
    subject, _ = make_pair()
    a, b = ours(subject), rebuilt(subject)
    assert torch.equal(a["image"].data, b["image"].data)


def test_repr_matches_torchio():
    for name, args in [
        ("Flip", ((0, 1),)),
        ("Pad", ((1, 2, 3),)),
        ("Crop", (2,)),
        ("RescaleIntensity", ((0, 1),)),
        ("ZNormalization", ()),
        ("Clamp", (1, 2)),
        ("ToOrientation", ("LPS",)),
        ("CopyAffine", ("t1",)),
        ("CropOrPad", ((4, 5, 6),)),
    ]:
        ours, theirs = _our_and_their(name, *args)
        assert repr(ours) == repr(theirs)


# ----------------------------------------------------------------------------- containers


def test_compose_api():
    flip, pad = tio.Flip(0), tio.Pad(1)
    compose = tio.Compose({"flip": flip, "pad": pad}, fuse=False)
    assert len(compose) == 2 and compose["pad"] is pad and compose[0] is flip
    assert compose.fuse is False
    with pytest.raises(KeyError):
        compose["nope"]
    with pytest.raises(TypeError, match="String indexing"):
        tio.Compose([flip])["flip"]
    with pytest.raises(TypeError, match="callable"):
        tio.Compose([flip, 3])
    with pytest.raises(TypeError, match="strings"):
        tio.Compose({1: flip})
    with pytest.raises(TypeError, match="fuse"):
        tio.Compose([flip], fuse="yes")
    # Any callable child works; a Compose of a Compose too.
    subject, _ = make_pair()
    out = tio.Compose([tio.Compose([flip]), lambda s: s])(subject)
    assert torch.equal(out["image"].data, torch.flip(subject["image"].data, [1]))


@pytest.mark.parametrize("seed", range(8))
def test_one_of_picks_like_torchio(seed):
    ours_subject, theirs_subject = make_pair()
    ours = tio.OneOf({tio.Flip(0): 0.2, tio.Flip(1): 0.5, tio.Pad(1): 0.3})
    theirs = torchio.OneOf({torchio.Flip(0): 0.2, torchio.Flip(1): 0.5, torchio.Pad(1): 0.3})
    torch.manual_seed(seed)
    ref = theirs(theirs_subject)
    torch.manual_seed(seed)
    out = ours(ours_subject)
    assert_same_subject(out, ref)
    assert out.applied_transforms == ref.applied_transforms


def test_one_of_validation():
    with pytest.raises(ValueError, match="non-negative"):
        tio.OneOf({tio.Flip(0): -1, tio.Flip(1): 2})
    with pytest.raises(ValueError, match="greater than zero"):
        tio.OneOf({tio.Flip(0): 0})
    with pytest.raises(ValueError, match="Transform"):
        tio.OneOf([lambda x: x])
    with pytest.raises(ValueError, match="dict"):
        tio.OneOf(tio.Flip(0))


def test_some_of():
    subject, _ = make_pair()
    first, second, third = tio.Pad(1), tio.Flip(0), tio.Crop(2)
    some_of = tio.SomeOf([first, second, third], num_transforms=2)
    names = set()
    for seed in range(30):
        torch.manual_seed(seed)
        out = some_of(subject)
        applied = [name for name, _ in out.applied_transforms]
        assert len(applied) == 2
        # Applied in the given order.
        order = ["Pad", "Flip", "Crop"]
        assert applied == sorted(applied, key=order.index)
        names.add(tuple(applied))
    assert len(names) == 3
    # Reproducible under a seed.
    torch.manual_seed(1)
    a = some_of(subject)
    torch.manual_seed(1)
    b = some_of(subject)
    assert torch.equal(a["image"].data, b["image"].data)
    # A range of counts, with replacement.
    counts = set()
    ranged = tio.SomeOf([first, second], num_transforms=(0, 3), replace=True)
    for seed in range(40):
        torch.manual_seed(seed)
        counts.add(len(ranged(subject).applied_transforms))
    assert counts == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="num_transforms"):
        tio.SomeOf([first, second], num_transforms=3)
    with pytest.raises(ValueError, match="num_transforms"):
        tio.SomeOf([first, second], num_transforms=(2, 1))
    with pytest.raises(TypeError, match="num_transforms"):
        tio.SomeOf([first, second], num_transforms=1.5)
    with pytest.raises(TypeError, match="replace"):
        tio.SomeOf([first, second], replace="no")


def test_lambda():
    subject, theirs = make_pair()
    ours = tio.Lambda(lambda x: x * 2, types_to_apply=[tio.INTENSITY])(subject)
    ref = torchio.Lambda(lambda x: x * 2, types_to_apply=[torchio.INTENSITY])(theirs)
    assert_same_subject(ours, ref)
    with pytest.raises(ValueError, match="torch.Tensor"):
        tio.Lambda(lambda x: x.numpy())(subject)
    with pytest.raises(ValueError, match="4D"):
        tio.Lambda(lambda x: x[0])(subject)
    with pytest.raises(TypeError, match="function"):
        tio.Lambda(3)
    # In-place functions cannot reach the caller's data.
    before = subject["image"].data.clone()
    tio.Lambda(lambda x: x.mul_(3))(subject)
    assert torch.equal(subject["image"].data, before)


# ----------------------------------------------------------------------------- helpers


def test_random_transform_draws_match_torchio():
    from torchio.transforms.augmentation import RandomTransform as TheirRandomTransform

    torch.manual_seed(11)
    expected = [TheirRandomTransform.sample_uniform(-2, 3), TheirRandomTransform._get_random_seed()]
    expected.append(TheirRandomTransform.sample_uniform_sextet((0, 1, 2, 3, -1, 0)))
    torch.manual_seed(11)
    got = [RandomTransform.sample_uniform(-2, 3), RandomTransform._get_random_seed()]
    got.append(RandomTransform.sample_uniform_sextet((0, 1, 2, 3, -1, 0)))
    assert got == expected


def test_parse_params_and_ranges_match_torchio():
    ours, theirs = tio.Flip(0), torchio.Flip(0)
    for params, around in [(0.1, 1), ((0.5, 2), None), ((1, 2, 3), 0), ((1, 2, 3, 4, 5, 6), 1)]:
        assert ours.parse_params(params, around, "x") == theirs.parse_params(params, around, "x")
    assert ours.parse_params(4, None, "x", make_ranges=False) == (4.0, 4.0, 4.0)
    assert theirs.parse_params(4, None, "x", make_ranges=False) == (4.0, 4.0, 4.0)
    with pytest.raises(ValueError, match='"x"'):
        ours.parse_params((1, 2, 3, 4), None, "x")
    with pytest.raises(ValueError, match='"x"'):
        ours.parse_params((2, 1), None, "x")
    assert ours._parse_range(3, "r") == (-3, 3)
    assert ours._parse_range(3, "r", min_constraint=0) == (0, 3)
    with pytest.raises(ValueError, match='"r"'):
        ours._parse_range(-1, "r")
    with pytest.raises(ValueError, match='"r"'):
        ours._parse_range((0, 5), "r", max_constraint=4)
    with pytest.raises(ValueError, match='"r"'):
        ours._parse_range((1, "a"), "r")
    with pytest.raises(ValueError, match='"r"'):
        ours._parse_range((1.0, 2.0), "r", type_constraint=int)


def test_parse_bounds():
    assert tio.Flip(0).parse_bounds(2) == (2,) * 6
    assert tio.Flip(0).parse_bounds((1, 2, 3)) == (1, 1, 2, 2, 3, 3)
    assert tio.Flip(0).parse_bounds(np.array([1, 2, 3, 4, 5, 6])) == (1, 2, 3, 4, 5, 6)
    assert tio.Flip(0).parse_bounds(None) is None
    for bad in [(1, 2), -1, (1.5, 2, 3), "3"]:
        with pytest.raises(ValueError):
            tio.Flip(0).parse_bounds(bad)


def test_interpolation_names():
    assert parse_interpolation("LINEAR") == "linear"
    assert parse_interpolation("cubic") == "bspline"
    assert tio.Transform.parse_interpolation("Cubic") == "bspline"
    assert tio.Transform.get_sitk_interpolator("cubic") == sitk.sitkBSpline
    assert tio.Transform.get_sitk_interpolator("label_gaussian") == sitk.sitkLabelGaussian
    with pytest.raises(ValueError, match="trilinear"):
        parse_interpolation("trilinear")
    with pytest.raises(TypeError, match="interpolation"):
        parse_interpolation(1)


@pytest.mark.parametrize(
    ("factory", "error", "argument"),
    [
        (lambda: tio.Pad(1, padding_mode="nope"), ValueError, "padding_mode"),
        (lambda: tio.Pad(1, padding_mode="nope"), KeyError, "padding_mode"),
        (lambda: tio.Pad((1, 2)), ValueError, "padding"),
        (lambda: tio.Crop(-1), ValueError, "cropping"),
        (lambda: tio.Flip(3), ValueError, "axes"),
        (lambda: tio.Flip("X"), ValueError, "axes"),
        (lambda: tio.CropOrPad(), ValueError, "target_shape"),
        (lambda: tio.CropOrPad("abc"), TypeError, "target_shape"),
        (lambda: tio.CropOrPad((1, 2)), ValueError, "target_shape"),
        (lambda: tio.CropOrPad((1.5, 2, 3)), ValueError, "target_shape"),
        (lambda: tio.CropOrPad((0, 2, 3)), ValueError, "target_shape"),
        (lambda: tio.CropOrPad(3, units="m"), ValueError, "units"),
        (lambda: tio.CropOrPad(3, location="left"), ValueError, "location"),
        (lambda: tio.CropOrPad(3, mask_name="m", location="random"), ValueError, "mask_name"),
        (lambda: tio.CropOrPad(3, labels=[1]), ValueError, "labels"),
        (lambda: tio.CropOrPad(3, only_crop=True, only_pad=True), ValueError, "only_crop"),
        (lambda: tio.CropOrPad(3, padding_mode="bad"), ValueError, "padding_mode"),
        (lambda: tio.EnsureShapeMultiple(0), ValueError, "target_multiple"),
        (lambda: tio.EnsureShapeMultiple(4, method="grow"), ValueError, "method"),
        (lambda: tio.ToOrientation("RAR"), ValueError, "orientation"),
        (lambda: tio.ToOrientation("RASS"), ValueError, "orientation"),
        (lambda: tio.ToOrientation("XYZ"), ValueError, "orientation"),
        (lambda: tio.CopyAffine(1), ValueError, "target"),
        (lambda: tio.RescaleIntensity(out_min_max=(1, 0)), ValueError, "out_min_max"),
        (lambda: tio.RescaleIntensity(percentiles=(0, 101)), ValueError, "percentiles"),
        (lambda: tio.RescaleIntensity(in_min_max=(1, 2, 3)), ValueError, "in_min_max"),
        (lambda: tio.RescaleIntensity(masking_method=1.5), TypeError, "masking_method"),
        (lambda: tio.ZNormalization(masking_method=(1, 2)), ValueError, "masking_method"),
        (lambda: tio.Clamp("a"), TypeError, "out_min"),
        (lambda: tio.Clamp(2, 1), ValueError, "out_min"),
        (lambda: tio.Mask("label", outside_value="x"), TypeError, "outside_value"),
        (lambda: tio.Mask("label", labels="1"), ValueError, "labels"),
        (lambda: tio.Flip(0, copy="yes"), TypeError, "copy"),
    ],
)
def test_bad_arguments_name_the_argument(factory, error, argument):
    with pytest.raises(error, match=argument):
        factory()


def test_masking_method_errors_at_call():
    subject, _ = make_pair()
    with pytest.raises(ValueError, match="masking_method"):
        tio.ZNormalization(masking_method="missing")(subject)
    # A scalar image is not a mask.
    with pytest.raises(ValueError, match="masking_method"):
        tio.ZNormalization(masking_method="image")(subject)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_dtype_is_kept_by_shape_transforms():
    for dtype in (np.float32, np.float64, np.int16, np.uint8, np.int32, np.int64):
        subject, _ = make_pair(image_dtype=dtype, label_dtype=np.uint8)
        out = tio.Compose(
            [
                tio.Flip((0, 1)),
                tio.Pad(2, padding_mode="median"),
                tio.Crop(1),
                tio.Transpose(),
                tio.ToOrientation("LIP"),
                tio.Mask("label"),
            ]
        )(subject)
        assert out["image"].data.dtype == subject["image"].data.dtype
        assert out["label"].data.dtype == torch.uint8


@pytest.mark.parametrize(
    "transform",
    [
        tio.ZNormalization(),
        tio.Flip(0, include=["image"]),
        tio.CopyAffine("image"),
        tio.ToOrientation("RAS"),
        tio.Compose([tio.Clamp(0, 1), tio.Crop(0)]),
        tio.Crop(1),
        tio.RescaleIntensity(masking_method=lambda x: torch.zeros_like(x, dtype=torch.bool)),
    ],
)
def test_outputs_never_alias_the_input(transform):
    subject, _ = make_pair(affine_name="ras_identity")
    before = {name: image.data.clone() for name, image in subject.get_images_dict(False).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = transform(subject)
    for name, image in out.get_images_dict(False).items():
        image.data.add_(1)
        assert torch.equal(subject[name].data, before[name])


def test_transforms_pickle_for_dataloader_workers():
    import pickle

    pipeline = tio.Compose(
        {
            "canonical": tio.ToCanonical(),
            "flip": tio.RandomFlip(("LR",)),
            "size": tio.CropOrPad((5, 6, 7), mask_name="label", labels=[1]),
            "pick": tio.OneOf({tio.RescaleIntensity(): 1, tio.ZNormalization(): 2}),
            "some": tio.SomeOf([tio.Clamp(0, 1), tio.Pad(1)], num_transforms=(0, 2)),
        }
    )
    restored = pickle.loads(pickle.dumps(pipeline))
    subject, _ = make_pair()
    torch.manual_seed(3)
    a = pipeline(subject)
    torch.manual_seed(3)
    b = restored(subject)
    assert torch.equal(a["image"].data, b["image"].data)
    assert restored["size"].labels == [1]


def test_label_interpolation_name():
    assert parse_interpolation("LABEL") == "label"
    with pytest.raises(ValueError, match="SimpleITK"):
        tio.Transform.get_sitk_interpolator("label")


class _ClampInPlace(tio.Clamp):
    """A user's subclass that edits the tensors in place."""

    def apply_transform(self, subject):
        for image in self.get_images(subject):
            image.data.clamp_(0, 10)
        return subject


@pytest.mark.parametrize("compose", [False, True])
def test_a_subclass_editing_tensors_in_place_leaves_the_input_alone(compose) -> None:
    # Built-in transforms may share tensors with their copy (they only replace
    # them); a subclass inherits that flag, not the promise behind it.
    subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.arange(64.0).reshape(1, 4, 4, 4)))
    before = subject.t1.data.clone()
    transform = tio.Compose([_ClampInPlace(), tio.Flip(0)]) if compose else _ClampInPlace()
    output = transform(subject)
    assert torch.equal(subject.t1.data, before)
    assert output.t1.data.max() == 10


def test_image_names_may_come_from_any_iterable() -> None:
    # TorchIO takes any iterable but a string, e.g. a dict's keys.
    subject = tio.Subject(
        t1=tio.ScalarImage(tensor=torch.rand(1, 4, 4, 4) * 5),
        t2=tio.ScalarImage(tensor=torch.rand(1, 4, 4, 4) * 5),
    )
    for names in ({"t1": 0}.keys(), np.array(["t1"]), (n for n in ["t1"]), map(str, ["t1"])):
        transform = tio.RescaleIntensity(include=names)
        assert transform.include == ["t1"]
        for _ in range(2):  # a generator is read once, when the transform is made
            output = transform(subject)
            assert output.t1.data.max() == 1 and torch.equal(output.t2.data, subject.t2.data)
    assert tio.ZNormalization(exclude=np.array(["t2"])).exclude == ["t2"]
    for bad in ("t1", [1], 5):
        with pytest.raises(ValueError, match="include"):
            tio.RescaleIntensity(include=bad)


def test_constructor_arguments_torchio_accepts() -> None:
    subject = tio.Subject(
        t1=tio.ScalarImage(tensor=torch.ones(1, 4, 4, 4)),
        seg=tio.LabelMap(tensor=torch.ones(1, 4, 4, 4, dtype=torch.int16)),
    )
    # One type name as a string: TorchIO tests membership in it.
    doubled = tio.Lambda(lambda x: x * 2, types_to_apply="intensity")(subject)
    assert doubled.t1.data.max() == 2 and doubled.seg.data.max() == 1
    # The Transform's positional arguments, p first.
    for transform in (tio.Contour(0.0), tio.KeepLargestComponent(0.0)):
        assert transform.probability == 0.0
        assert torch.equal(transform(subject).seg.data, subject.seg.data)


def test_pad_lists_its_padding_modes_as_torchio() -> None:
    assert tio.Pad.PADDING_MODES == torchio.Pad.PADDING_MODES
