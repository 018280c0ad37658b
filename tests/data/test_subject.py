"""Subject against TorchIO 1.2.1: container behaviour, consistency checks, slicing, history."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

import torchvox as tio
from conftest import AFFINES

tio_ref = pytest.importorskip("torchio")


def pair_of_subjects(images: dict[str, tuple[str, torch.Tensor, np.ndarray]], **metadata):
    """The same subject built with torchvox and with TorchIO."""
    ours = tio.Subject(
        {name: getattr(tio, cls)(tensor=t, affine=a) for name, (cls, t, a) in images.items()},
        **metadata,
    )
    theirs = tio_ref.Subject(
        {name: getattr(tio_ref, cls)(tensor=t, affine=a) for name, (cls, t, a) in images.items()},
        **metadata,
    )
    return ours, theirs


def test_container_behaviour(synthetic_subject):
    subject = synthetic_subject
    assert isinstance(subject, dict)
    assert len(subject) == 2  # images only
    assert len(subject.keys()) == 4
    assert subject.t1 is subject["t1"]
    assert subject.age == 45
    assert repr(subject) == "Subject(Keys: ('t1', 'label', 'age', 'name'); images: 2)"
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = subject.missing
    subject["late"] = 3  # added after construction: reachable through __getattr__
    assert subject.late == 3


def test_repr_matches_torchio(synthetic_subject):
    t1 = synthetic_subject.t1
    ours, theirs = pair_of_subjects(
        {"t1": ("ScalarImage", t1.data, t1.affine), "seg": ("LabelMap", t1.data, t1.affine)},
        age=3,
    )
    assert repr(ours) == repr(theirs)
    assert len(ours) == len(theirs)


def test_constructor_errors():
    with pytest.raises(TypeError, match="without images"):
        tio.Subject(age=3)
    image = tio.ScalarImage(tensor=torch.zeros(1, 1, 1, 1))
    with pytest.raises(ValueError, match="one dictionary"):
        tio.Subject({"a": image}, {"b": image})
    with pytest.raises(ValueError, match="one dictionary"):
        tio.Subject([("a", image)])
    subject = tio.Subject({"image one": image}, age=1)
    assert subject["image one"] is image


def test_geometry_properties(synthetic_subject):
    assert synthetic_subject.shape == (1, 10, 12, 14)
    assert synthetic_subject.spatial_shape == (10, 12, 14)
    np.testing.assert_allclose(synthetic_subject.spacing, (0.8, 1.25, 2.5))
    assert not synthetic_subject.is_2d()
    flat = tio.Subject(a=tio.ScalarImage(tensor=torch.zeros(1, 3, 3, 1)))
    assert flat.is_2d()


def test_inconsistent_spatial_shape_message_matches_torchio():
    images = {
        "t1": ("ScalarImage", torch.zeros(1, 4, 5, 6), np.eye(4)),
        "seg": ("LabelMap", torch.zeros(1, 4, 5, 7), np.eye(4)),
    }
    ours, theirs = pair_of_subjects(images)
    with pytest.raises(RuntimeError) as ours_error:
        ours.check_consistent_spatial_shape()
    with pytest.raises(RuntimeError) as theirs_error:
        theirs.check_consistent_spatial_shape()
    assert str(ours_error.value) == str(theirs_error.value)
    assert '"spatial_shape"' in str(ours_error.value) and "'seg': (4, 5, 7)" in str(
        ours_error.value
    )
    with pytest.raises(RuntimeError, match="same spatial shape"):
        ours[1:2]
    with pytest.raises(RuntimeError, match="shape"):
        _ = ours.shape


def test_inconsistent_orientation_and_space_match_torchio():
    images = {
        "t1": ("ScalarImage", torch.zeros(1, 4, 5, 6), AFFINES["ras_identity"]),
        "seg": ("LabelMap", torch.zeros(1, 4, 5, 6), AFFINES["lps"]),
    }
    ours, theirs = pair_of_subjects(images)
    for method in ("check_consistent_orientation", "check_consistent_affine"):
        with pytest.raises(RuntimeError) as ours_error:
            getattr(ours, method)()
        with pytest.raises(RuntimeError) as theirs_error:
            getattr(theirs, method)()
        assert str(ours_error.value) == str(theirs_error.value)
    with pytest.raises(RuntimeError, match="not in the same space") as error:
        ours.check_consistent_space()
    assert "spacing" in str(error.value.__cause__)


def test_consistency_tolerance():
    a = np.diag([0.8, 0.8, 2.50000000000001, 1])
    b = np.diag([0.8, 0.8, 2.49999999999999, 1])
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=a),
        mask=tio.LabelMap(tensor=torch.zeros(1, 2, 2, 2), affine=b),
    )
    subject.check_consistent_attribute("spacing")
    subject.check_consistent_space()
    c = np.diag([0.8, 0.8, 2.6, 1])
    subject.add_image(tio.LabelMap(tensor=torch.zeros(1, 2, 2, 2), affine=c), "other")
    with pytest.raises(RuntimeError, match="spacing"):
        subject.check_consistent_attribute("spacing")
    subject.check_consistent_attribute("spacing", relative_tolerance=0.1)


def test_image_access_matches_torchio(synthetic_subject):
    t1 = synthetic_subject.t1
    images = {
        "a": ("ScalarImage", t1.data, t1.affine),
        "b": ("LabelMap", t1.data, t1.affine),
        "c": ("ScalarImage", t1.data, t1.affine),
    }
    ours, theirs = pair_of_subjects(images, age=1)
    assert ours.get_images_names() == theirs.get_images_names() == ["a", "b", "c"]
    for kwargs in (
        {},
        {"intensity_only": False},
        {"intensity_only": False, "include": ["b", "c"]},
        {"intensity_only": False, "exclude": ["a"]},
        {"include": ["b"]},
    ):
        assert list(ours.get_images_dict(**kwargs)) == list(theirs.get_images_dict(**kwargs))
        assert len(ours.get_images(**kwargs)) == len(theirs.get_images(**kwargs))
    assert ours.get_first_image() is ours.a
    assert ours.get_image("b") is ours.b
    assert ours.get_scalar_image("a") is ours.a
    assert ours.get_label_map("b") is ours.b
    with pytest.raises(TypeError, match="not a scalar image"):
        ours.get_scalar_image("b")
    with pytest.raises(TypeError, match="not a label map"):
        ours.get_label_map("a")
    with pytest.raises(KeyError):
        ours.get_image("age")


def test_add_and_remove_image(synthetic_subject):
    subject = synthetic_subject
    new = tio.ScalarImage(tensor=torch.zeros(1, 10, 12, 14))
    subject.add_image(new, "t2")
    assert subject.t2 is new and len(subject) == 3
    subject.remove_image("t2")
    assert "t2" not in subject and len(subject) == 2
    with pytest.raises(AttributeError):
        _ = subject.t2
    with pytest.raises(ValueError, match="instance of torchvox.Image"):
        subject.add_image(torch.zeros(1, 1, 1, 1), "bad")
    with pytest.raises(ValueError, match="must be a string"):
        subject.add_image(new, 3)


def test_load_and_unload(file_subject):
    assert not any(image._loaded for image in file_subject.get_images(intensity_only=False))
    assert file_subject.spatial_shape == (9, 11, 13)  # from headers
    file_subject.load()
    assert all(image._loaded for image in file_subject.get_images(intensity_only=False))
    file_subject.unload()
    assert not file_subject.t1._loaded


def test_slicing_a_lazy_subject_leaves_it_unloaded(file_subject):
    # Subjects kept in a dataset list must not fill memory when sliced.
    sliced = file_subject[2:5, :, 1:]
    assert not any(image._loaded for image in file_subject.get_images(intensity_only=False))
    file_subject.load()
    for name in ("t1", "label"):
        assert torch.equal(sliced[name].data, file_subject[name].data[:, 2:5, :, 1:])
        assert sliced[name].path == file_subject[name].path


@pytest.mark.parametrize("index", [slice(2, 5), (slice(None), 3), (1, slice(2, 8), slice(0, 4))])
def test_slicing_matches_torchio(synthetic_subject, index):
    t1, label = synthetic_subject.t1, synthetic_subject.label
    images = {"t1": ("ScalarImage", t1.data, t1.affine), "seg": ("LabelMap", label.data, t1.affine)}
    ours, theirs = pair_of_subjects(images, age=4)
    ours.applied_transforms.append(("Flip", {"axes": (0,)}))
    sliced = ours[index]
    reference = theirs[index]
    assert type(sliced) is tio.Subject
    for name in ("t1", "seg"):
        assert torch.equal(sliced[name].data, reference[name].data)
        np.testing.assert_allclose(sliced[name].affine, reference[name].affine)
        assert getattr(sliced, name) is sliced[name]
    assert sliced.age == 4
    assert sliced.applied_transforms == ours.applied_transforms
    assert sliced.applied_transforms is not ours.applied_transforms
    # The original is untouched.
    assert ours.spatial_shape == (10, 12, 14)


def test_deepcopy_and_pickle_keep_history(synthetic_subject):
    synthetic_subject.applied_transforms.append(("Pad", {"padding": 1}))
    for clone in (
        copy.deepcopy(synthetic_subject),
        pickle.loads(pickle.dumps(synthetic_subject)),
    ):
        assert clone.applied_transforms == [("Pad", {"padding": 1})]
        assert torch.equal(clone.t1.data, synthetic_subject.t1.data)
        assert clone.t1 is clone["t1"]
        assert clone.t1 is not synthetic_subject.t1


# ----------------------------------------------------------------------------- history

transforms = pytest.importorskip("torchvox.transforms")
needed = ("Compose", "Flip", "Pad", "Crop", "RescaleIntensity", "Transform")
if not all(hasattr(transforms, name) for name in needed):  # pragma: no cover
    pytest.skip("torchvox.transforms is not ready", allow_module_level=True)


def test_history_replay_and_inverse(synthetic_subject):
    pipeline = tio.transforms.Compose(
        [
            tio.transforms.RescaleIntensity(out_min_max=(0, 1)),
            tio.transforms.Flip(axes=(0,)),
            tio.transforms.Pad((1, 2, 2, 3, 2, 1)),
            tio.transforms.Crop((0, 1, 2, 0, 1, 1)),
        ]
    )
    transformed = pipeline(synthetic_subject)
    names = [name for name, _ in transformed.applied_transforms]
    assert names == ["RescaleIntensity", "Flip", "Pad", "Crop"]
    history = transformed.history
    assert [type(t).__name__ for t in history] == names
    assert [
        type(t).__name__ for t in transformed.get_applied_transforms(ignore_intensity=True)
    ] == [
        "Flip",
        "Pad",
        "Crop",
    ]
    # Replaying the history reproduces the output.
    replayed = transformed.get_composed_history()(synthetic_subject)
    assert torch.equal(replayed.t1.data, transformed.t1.data)
    np.testing.assert_allclose(replayed.t1.affine, transformed.t1.affine)
    # Inverting the spatial transforms restores the label map and geometry exactly.
    inverse = transformed.get_inverse_transform(warn=False, ignore_intensity=True)
    assert [type(t).__name__ for t in inverse.transforms] == ["Pad", "Crop", "Flip"]
    restored = transformed.apply_inverse_transform(warn=False, ignore_intensity=True)
    assert restored.applied_transforms == []
    assert torch.equal(restored.label.data, synthetic_subject.label.data)
    np.testing.assert_allclose(restored.label.affine, synthetic_subject.label.affine)
    transformed.clear_history()
    assert transformed.history == []


def test_history_matches_torchio_for_same_pipeline(synthetic_subject):
    t1 = synthetic_subject.t1
    images = {"t1": ("ScalarImage", t1.data, t1.affine)}
    ours, theirs = pair_of_subjects(images)
    ours_out = tio.transforms.Compose([tio.transforms.Flip(axes=(1,)), tio.transforms.Pad(2)])(ours)
    theirs_out = tio_ref.Compose([tio_ref.Flip(axes=(1,)), tio_ref.Pad(2)])(theirs)
    assert [n for n, _ in ours_out.applied_transforms] == [
        n for n, _ in theirs_out.applied_transforms
    ]
    back = ours_out.apply_inverse_transform()
    back_ref = theirs_out.apply_inverse_transform()
    assert torch.equal(back.t1.data, back_ref.t1.data)
    np.testing.assert_allclose(back.t1.affine, back_ref.t1.affine)


def test_image_interpolation_override_and_unknown_name(synthetic_subject):
    class ResamplingProbe(tio.transforms.Transform):
        """A transform that only carries an interpolation, to test the override."""

        def __init__(self, image_interpolation="linear", **kwargs):
            super().__init__(**kwargs)
            self.image_interpolation = self.parse_interpolation(image_interpolation)
            self.args_names = ["image_interpolation"]

        def apply_transform(self, subject):
            return subject

    subject = synthetic_subject
    subject.add_transform(ResamplingProbe(), {"image_interpolation": "linear"})
    (probe,) = subject.get_applied_transforms(image_interpolation="nearest")
    assert isinstance(probe, ResamplingProbe)
    assert probe.image_interpolation == "nearest"
    assert subject.get_applied_transforms()[0].image_interpolation == "linear"
    subject.applied_transforms.append(("NoSuchTransform", {}))
    with pytest.raises(ValueError, match="NoSuchTransform"):
        _ = subject.history
