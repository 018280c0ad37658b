"""SubjectsDataset and SubjectsLoader against TorchIO 1.2.1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchvox as tio

tio_ref = pytest.importorskip("torchio")


def make_subjects(library, paths, count=3):
    return [
        library.Subject(
            t1=library.ScalarImage(paths["t1"], scanner="A"),
            label=library.LabelMap(paths["label"]),
            age=20 + i,
            weight=60.5 + i,
            name=f"s{i}",
            flag=bool(i % 2),
            location=torch.tensor([i, i, i]),
            matrix=np.eye(2) * i,
        )
        for i in range(count)
    ]


def assert_same_structure(ours, theirs, where="batch"):
    assert type(ours) is type(theirs), f"{where}: {type(ours)} != {type(theirs)}"
    if isinstance(ours, dict):
        assert list(ours) == list(theirs), where
        for key in ours:
            assert_same_structure(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(ours, torch.Tensor):
        assert ours.dtype == theirs.dtype, where
        assert torch.equal(ours, theirs), where
    elif isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype, where
        np.testing.assert_array_equal(ours, theirs)
    else:
        assert ours == theirs, where


def test_dataset_getitem_copies_loads_and_transforms(subject_files):
    subjects = make_subjects(tio, subject_files)
    calls = []

    def transform(subject):
        calls.append(subject.name)
        subject["seen"] = True
        return subject

    dataset = tio.SubjectsDataset(subjects, transform=transform)
    assert len(dataset) == 3
    item = dataset[np.int64(1)]
    assert calls == ["s1"]
    assert item.t1._loaded and item.label._loaded
    assert item is not subjects[1] and "seen" not in subjects[1]
    assert not subjects[1].t1._loaded  # the stored subject is never loaded
    lazy = tio.SubjectsDataset(subjects, load_getitem=False)
    assert not lazy[0].t1._loaded
    assert lazy.dry_iter() is subjects


def test_dataset_validation(subject_files):
    subjects = make_subjects(tio, subject_files, count=1)
    with pytest.raises(ValueError, match="empty"):
        tio.SubjectsDataset([])
    with pytest.raises(TypeError, match="iterable"):
        tio.SubjectsDataset(3)
    with pytest.raises(TypeError, match="instances of torchvox.Subject"):
        tio.SubjectsDataset([{"a": 1}])
    with pytest.raises(ValueError, match="callable"):
        tio.SubjectsDataset(subjects, transform=3)
    dataset = tio.SubjectsDataset(subjects)
    with pytest.raises(ValueError, match="must be int"):
        dataset["a"]
    dataset.set_transform(lambda s: s)
    with pytest.raises(ValueError, match="callable"):
        dataset.set_transform("x")


def test_loader_batch_layout_matches_torchio(subject_files):
    ours = tio.SubjectsLoader(tio.SubjectsDataset(make_subjects(tio, subject_files)), batch_size=3)
    theirs = tio_ref.SubjectsLoader(
        tio_ref.SubjectsDataset(make_subjects(tio_ref, subject_files)), batch_size=3
    )
    batch = next(iter(ours))
    reference = next(iter(theirs))
    assert_same_structure(batch, reference)
    # The documented layout.
    assert batch["t1"]["data"].shape == (3, 1, 9, 11, 13)
    assert isinstance(batch["t1"]["affine"], np.ndarray)
    assert batch["t1"]["affine"].shape == (3, 4, 4)
    assert batch["t1"]["path"] == [str(subject_files["t1"])] * 3
    assert batch["label"]["type"] == ["label"] * 3
    assert batch["age"].tolist() == [20, 21, 22]
    assert batch["flag"].dtype == torch.bool
    assert batch["name"] == ["s0", "s1", "s2"]
    assert type(batch) is dict and type(batch["t1"]) is dict


def test_loader_with_workers_and_transform(subject_files):
    def double(subject):
        subject.t1.set_data(subject.t1.data * 2)
        return subject

    dataset = tio.SubjectsDataset(make_subjects(tio, subject_files, count=4), transform=double)
    loader = tio.SubjectsLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2
    expected = tio.ScalarImage(subject_files["t1"]).data * 2
    for batch in batches:
        assert batch["t1"]["data"].shape == (2, 1, 9, 11, 13)
        assert torch.equal(batch["t1"]["data"][0], expected)


def test_from_batch_and_subjects_from_batch(subject_files):
    loader = tio.SubjectsLoader(
        tio.SubjectsDataset(make_subjects(tio, subject_files, count=2)), batch_size=2
    )
    batch = tio.utils.get_first_item(loader)
    names, size = tio.utils.get_batch_images_and_size(batch)
    assert names == ["t1", "label"] and size == 2
    subjects = tio.utils.get_subjects_from_batch(batch)
    assert len(subjects) == 2
    assert isinstance(subjects[0].t1, tio.ScalarImage)
    assert isinstance(subjects[0].label, tio.LabelMap)
    assert subjects[1].t1["filename"] == "t1.nii.gz"
    assert subjects[1].age == 21
    np.testing.assert_array_equal(subjects[0].t1.affine, batch["t1"]["affine"][0])
    dataset = tio.SubjectsDataset.from_batch(batch)
    assert len(dataset) == 2 and torch.equal(dataset[0].t1.data, batch["t1"]["data"][0])

    predictions = torch.rand(2, 3, 9, 11, 13)
    tio.utils.add_images_from_batch(subjects, predictions, tio.LabelMap, name="pred")
    assert isinstance(subjects[0].pred, tio.LabelMap)
    assert torch.equal(subjects[1].pred.data, predictions[1])
    assert subjects[1].pred["filename"] == "t1.nii.gz"
    with pytest.raises(RuntimeError, match="does not seem to contain any images"):
        tio.utils.get_batch_images_and_size({"a": [1]})


def test_history_collate(synthetic_subject):
    import copy

    subject = copy.deepcopy(synthetic_subject)
    del subject["name"]
    subject.applied_transforms.append(("Pad", {"padding": 1}))
    batch = tio.utils.history_collate([subject, subject], collate_transforms=False)
    assert batch["t1"]["data"].shape == (2, 1, 10, 12, 14)
    assert batch["applied_transforms"] == [[("Pad", {"padding": 1})]] * 2
    assert tio.utils.history_collate([1, 2]) == {}


def test_history_survives_batch_round_trip(synthetic_subject):
    transforms = pytest.importorskip("torchvox.transforms")
    if not hasattr(transforms, "Flip"):  # pragma: no cover
        pytest.skip("torchvox.transforms.Flip is not available")
    flipped = transforms.Flip(axes=(0,))(synthetic_subject)
    del flipped["name"]
    batch = tio.utils.history_collate([flipped, flipped])
    assert [type(t).__name__ for t in batch["history"][0]] == ["Flip"]
    subjects = tio.utils.get_subjects_from_batch(batch)
    assert [name for name, _ in subjects[0].applied_transforms] == ["Flip"]
    restored = subjects[0].apply_inverse_transform()
    assert torch.equal(restored.t1.data, synthetic_subject.t1.data)


def test_dict_access_to_data_loads(subject_files):
    image = tio.ScalarImage(subject_files["t1"])
    assert not image._loaded
    affine = image["affine"]
    assert image._loaded and affine is image.affine
    assert image.is_2d() is False


class _Items(torch.utils.data.Dataset):
    """Subjects built on the fly from a list of (name, tensor) images."""

    def __init__(self, images: list[dict[str, torch.Tensor]]):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tio.Subject:
        items = self.images[index]
        return tio.Subject(
            seg=tio.LabelMap(tensor=items["seg"]),
            t1=tio.ScalarImage(tensor=items["t1"]),
            value=items["value"],
        )


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_batch_of_mixed_dtypes_is_promoted_as_torchio_does(num_workers) -> None:
    # Label maps stored as uint8 for some subjects and int16 for others: a
    # worker's collate used to stack into the first item's dtype (2035 -> 243).
    images = [
        {
            "seg": torch.full((1, 4, 4, 4), 17, dtype=torch.uint8),
            "t1": torch.full((1, 4, 4, 4), -1000, dtype=torch.int16),
            "value": torch.tensor(3, dtype=torch.int32),
        },
        {
            "seg": torch.full((1, 4, 4, 4), 2035, dtype=torch.int16),
            "t1": torch.full((1, 4, 4, 4), 0.5, dtype=torch.float32),
            "value": torch.tensor(2**40, dtype=torch.int64),
        },
    ]
    loader = tio.SubjectsLoader(_Items(images), batch_size=2, num_workers=num_workers)
    batch = next(iter(loader))
    reference = torch.utils.data.DataLoader(
        _Items(images), batch_size=2, collate_fn=tio_ref.SubjectsLoader._collate
    )
    expected = next(iter(reference))
    for key in ("seg", "t1"):
        assert batch[key][tio.DATA].dtype == expected[key][tio.DATA].dtype
        assert torch.equal(batch[key][tio.DATA], expected[key][tio.DATA])
    assert batch["seg"][tio.DATA].unique().tolist() == [17, 2035]
    assert batch["value"].dtype == torch.int64 and batch["value"][1] == 2**40


def test_a_batch_never_aliases_the_tensors_a_dataset_holds() -> None:
    # Items that happen to be in-order views of one cached tensor: the batch
    # must still be a copy, or editing it in place edits the cache.
    cache = torch.ones(4, 1, 8, 8, 8)

    class Cached(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> tio.Subject:
            return tio.Subject(t1=tio.ScalarImage(tensor=cache[index]))

    for batch in tio.SubjectsLoader(Cached(), batch_size=4):
        data = batch["t1"][tio.DATA]
        data -= 1
    assert bool((cache == 1).all())


def test_tensor_subclasses_survive_the_collate() -> None:
    class Tagged(torch.Tensor):
        pass

    subjects = [
        tio.Subject(
            t1=tio.ScalarImage(tensor=torch.rand(1, 3, 3, 3)), tag=torch.rand(2).as_subclass(Tagged)
        )
        for _ in range(2)
    ]
    batch = next(iter(tio.SubjectsLoader(subjects, batch_size=2)))
    assert type(batch["tag"]) is Tagged and batch["tag"].shape == (2, 2)
