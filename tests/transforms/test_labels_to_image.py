"""LabelsToImage and RandomLabelsToImage compared with TorchIO 1.2.1.

With zero standard deviations the synthetic image is deterministic, so it must equal
TorchIO's exactly; with noise, its statistics must match the requested Gaussians and
the recorded seed must replay it bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from transform_helpers import torchio

import torchvox as tio

pytestmark = pytest.mark.reference

SHAPE = (10, 11, 12)


def categorical(seed: int = 0, num_labels: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, num_labels, (1, *SHAPE)).astype(np.int64)


def partial_volume(seed: int = 0, num_labels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    maps = rng.dirichlet(np.ones(num_labels), size=SHAPE).transpose(3, 0, 1, 2)
    maps[:, 0, 0, :] = 0  # voxels without any label (-1 once discretised)
    return np.ascontiguousarray(maps, np.float32)


def subjects(labels: np.ndarray, with_image: bool = True) -> tuple[tio.Subject, Any]:
    image = np.random.default_rng(9).random((1, *SHAPE)).astype(np.float32) * 100
    ours: dict[str, Any] = {"label": tio.LabelMap(tensor=labels.copy())}
    theirs: dict[str, Any] = {"label": torchio.LabelMap(tensor=labels.copy())}
    if with_image:
        ours["t1"] = tio.ScalarImage(tensor=image.copy())
        theirs["t1"] = torchio.ScalarImage(tensor=image.copy())
    return tio.Subject(**ours), torchio.Subject(**theirs)


KWARGS: list[dict[str, Any]] = [
    {},
    {"used_labels": [1, 2]},
    {"ignore_background": True},
    {"image_key": "t1"},
    {"image_key": "t1", "used_labels": [0, 2]},
    {"image_key": "t1", "used_labels": [0, 1], "ignore_background": True},
    {"discretize": True},
    {"discretize": True, "image_key": "t1", "used_labels": [1]},
]


@pytest.mark.parametrize("kwargs", KWARGS)
@pytest.mark.parametrize("kind", ["categorical", "partial_volume", "one_hot"])
def test_labels_to_image_equals_torchio_without_noise(kwargs: dict[str, Any], kind: str) -> None:
    if kind == "categorical":
        labels = categorical()
    elif kind == "partial_volume":
        labels = partial_volume()
    else:  # one-hot integer maps are partial-volume maps for TorchIO too
        labels = np.eye(3, dtype=np.int64)[categorical(num_labels=3)[0]].transpose(3, 0, 1, 2)
        labels = np.ascontiguousarray(labels)
    ours_subject, theirs_subject = subjects(labels)
    num_labels = 4 if kind == "categorical" else 3
    means = [0.1 + 0.2 * i for i in range(num_labels)]
    if kwargs.get("discretize") and kind != "categorical":
        # Discretised maps lose the label-free voxels (-1): only labels present count.
        means = means[:3]
    stds = [0.0] * len(means)
    ours = tio.LabelsToImage("label", means, stds, **kwargs)(ours_subject)
    theirs = torchio.LabelsToImage("label", means, stds, **kwargs)(theirs_subject)
    key = kwargs.get("image_key", "image_from_labels")
    assert ours[key].data.dtype == torch.float32
    assert torch.equal(ours[key].data, theirs[key].data)
    np.testing.assert_array_equal(ours[key].affine, theirs[key].affine)
    assert torch.equal(ours["label"].data, ours_subject["label"].data)  # labels untouched


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mean": [0.5, (0.1, 0.2), 1, (2, 3)]},
        {"default_mean": 0.3, "used_labels": [0, 3], "image_key": "t1"},
        {"ignore_background": True, "image_key": "t1", "discretize": True},
    ],
)
def test_random_labels_to_image_draws_torchio_parameters(kwargs: dict[str, Any]) -> None:
    ours_subject, theirs_subject = subjects(categorical())
    torch.manual_seed(42)
    ours = tio.RandomLabelsToImage(label_key="label", default_std=0, **kwargs)(ours_subject)
    torch.manual_seed(42)
    theirs = torchio.RandomLabelsToImage(label_key="label", default_std=0, **kwargs)(theirs_subject)
    key = kwargs.get("image_key", "image_from_labels")
    assert torch.equal(ours[key].data, theirs[key].data)
    ours_record, theirs_record = ours.history[0], theirs.history[0]
    assert ours_record.means == theirs_record.means
    assert ours_record.stds == theirs_record.stds == [0.0] * 4


def test_random_labels_to_image_finds_the_label_map_and_noise_statistics() -> None:
    labels = categorical(1)
    subject, _ = subjects(labels, with_image=False)
    transform = tio.RandomLabelsToImage(mean=[0.2, 0.4, 0.6, 0.8], std=[0.05, 0.1, 0.02, 0.0])
    transformed = transform(subject)
    assert transform.label_key == "label"
    image = transformed["image_from_labels"].data.numpy()
    for label, (mean, std) in enumerate([(0.2, 0.05), (0.4, 0.1), (0.6, 0.02), (0.8, 0.0)]):
        values = image[labels == label].astype(np.float64)
        assert abs(values.mean() - mean) < 4 * std / np.sqrt(values.size) + 1e-6
        assert abs(values.std() - std) < 0.1 * std + 1e-6


def test_history_replays_noise_exactly_and_seeds_differ() -> None:
    subject, _ = subjects(partial_volume(2))
    torch.manual_seed(0)
    first = tio.RandomLabelsToImage(image_key="t1")(subject)
    second = tio.RandomLabelsToImage(image_key="t1")(subject)
    assert not torch.equal(first["t1"].data, second["t1"].data)
    for transformed in (first, second):
        replayed = transformed.get_composed_history()(subject)
        assert torch.equal(replayed["t1"].data, transformed["t1"].data)
    # Without a seed, LabelsToImage draws one per call and records it.
    transform = tio.LabelsToImage("label", [0.1, 0.5, 0.9], [0.1, 0.1, 0.1])
    once, twice = transform(subject), transform(subject)
    assert transform.seed is None
    assert not torch.equal(once["image_from_labels"].data, twice["image_from_labels"].data)
    record = once.history[0]
    assert isinstance(record.seed, int)
    assert torch.equal(record(subject)["image_from_labels"].data, once["image_from_labels"].data)


def test_same_image_with_one_and_two_threads() -> None:
    subject, _ = subjects(categorical(3))
    transform = tio.LabelsToImage("label", [0.1, 0.3, 0.5, 0.7], [0.1] * 4, seed=123)
    results = []
    for threads in (1, 2):
        tio.set_num_threads(threads)
        try:
            results.append(transform(subject)["image_from_labels"].data)
        finally:
            tio.set_num_threads(None)
    assert torch.equal(results[0], results[1])


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="label_key"):
        tio.RandomLabelsToImage(label_key=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="used_labels"):
        tio.RandomLabelsToImage(used_labels=[1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="same length"):
        tio.RandomLabelsToImage(used_labels=[1, 2], mean=[0.5])
    with pytest.raises(ValueError, match="same length"):
        tio.RandomLabelsToImage(mean=[0.5, 0.1], std=[0.5])
    with pytest.raises(ValueError, match="second value"):
        tio.RandomLabelsToImage(default_mean=(0.9, 0.1))
    with pytest.raises(ValueError, match="finite"):
        tio.LabelsToImage("label", [float("nan")], [0.0])
    with pytest.raises(ValueError, match="seed"):
        tio.LabelsToImage("label", [0.0], [0.0], seed=-1)
    subject, _ = subjects(categorical())
    with pytest.raises(RuntimeError, match="labels were found"):
        tio.LabelsToImage("label", [0.1, 0.2], [0.1, 0.2])(subject)
    with pytest.raises(RuntimeError, match="No label maps"):
        tio.RandomLabelsToImage()(tio.Subject(t1=subject["t1"]))
    two_channel = tio.Subject(
        label=subject["label"], t1=tio.ScalarImage(tensor=torch.rand(2, *SHAPE))
    )
    with pytest.raises(RuntimeError, match="one channel"):
        tio.LabelsToImage("label", [0.1] * 4, [0.1] * 4, image_key="t1")(two_channel)
    nan_map = tio.Subject(label=tio.LabelMap(tensor=torch.full((2, *SHAPE), float("nan"))))
    with pytest.raises(ValueError, match="NaN"):
        tio.LabelsToImage("label", [0.1, 0.1], [0.1, 0.1])(nan_map)


@pytest.mark.slow
def test_mni152_tissues(mni152: tio.Subject) -> None:
    subject = tio.Subject(t1=mni152["t1"], tissues=mni152["tissues"])
    transformed = tio.RandomLabelsToImage(label_key="tissues", image_key="t1", used_labels=[1, 2])(
        subject
    )
    data = transformed["t1"].data
    labels = subject["tissues"].data
    assert data.shape == subject["t1"].data.shape
    assert torch.isfinite(data).all()
    # Background keeps the template; tissues get intensities around their means.
    background = labels == 0
    assert torch.equal(data[background], subject["t1"].data[background].float())
    means = transformed.history[0].means
    for label in (1, 2):
        assert abs(float(data[labels == label].mean()) - means[label]) < 0.01
