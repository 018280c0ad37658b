"""Label transforms (OneHot, Contour, KeepLargestComponent, RemapLabels, RemoveLabels,
SequentialLabels) compared with TorchIO 1.2.1 on identical inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scipy import ndimage
from transform_helpers import assert_same_subject, run_both, torchio

import torchvox as tio

pytestmark = pytest.mark.reference

LABEL_DTYPES = [np.uint8, np.int16, np.int32, np.int64]


def blob_labels(shape: tuple[int, int, int], seed: int, fraction: float = 0.4) -> np.ndarray:
    """A binary (1, I, J, K) map of many blobs, some of equal size."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 0.7)
    return (noise > np.quantile(noise, 1 - fraction)).astype(np.int64)[np.newaxis]


def subjects(labels: np.ndarray, **extra: np.ndarray) -> tuple[tio.Subject, Any]:
    """The same subject (label map 'label', optional extra label maps) in both libraries."""
    image = np.random.default_rng(0).random(labels.shape[-4:]).astype(np.float32)[:1]
    ours = tio.Subject(
        image=tio.ScalarImage(tensor=image.copy()),
        label=tio.LabelMap(tensor=labels.copy()),
        **{name: tio.LabelMap(tensor=value.copy()) for name, value in extra.items()},
    )
    theirs = torchio.Subject(
        image=torchio.ScalarImage(tensor=image.copy()),
        label=torchio.LabelMap(tensor=labels.copy()),
        **{name: torchio.LabelMap(tensor=value.copy()) for name, value in extra.items()},
    )
    return ours, theirs


def assert_history_replays(original: tio.Subject, transformed: tio.Subject) -> None:
    replayed = transformed.get_composed_history()(original)
    for name, image in transformed.get_images_dict(intensity_only=False).items():
        assert torch.equal(replayed[name].data, image.data), name


# --- OneHot -----------------------------------------------------------------------------


@pytest.mark.parametrize("label_dtype", [*LABEL_DTYPES, np.float32, np.float64])
@pytest.mark.parametrize("num_classes", [-1, 6])
def test_one_hot_matches_torchio(label_dtype: Any, num_classes: int) -> None:
    ours, theirs = run_both(
        lambda: tio.OneHot(num_classes),
        lambda: torchio.OneHot(num_classes),
        label_dtype=label_dtype,
        shape=(1, 6, 7, 8),
    )
    assert_same_subject(ours, theirs)
    assert ours["label"].data.shape[0] == (4 if num_classes == -1 else 6)


def test_one_hot_inverse_is_argmax_and_history_replays() -> None:
    labels = np.random.default_rng(1).integers(0, 5, (1, 7, 8, 9))
    ours, theirs = subjects(labels)
    transformed = tio.OneHot()(ours)
    assert_history_replays(ours, transformed)
    restored = transformed.apply_inverse_transform()
    assert restored["label"].data.dtype == torch.int64
    assert torch.equal(restored["label"].data, torch.from_numpy(labels))
    their_restored = torchio.OneHot()(theirs).apply_inverse_transform()
    assert torch.equal(restored["label"].data, their_restored["label"].data)
    assert tio.OneHot().is_invertible()


def test_one_hot_bad_input() -> None:
    with pytest.raises(TypeError, match="num_classes"):
        tio.OneHot(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes"):
        tio.OneHot(0)
    two_channels = tio.LabelMap(tensor=torch.zeros(2, 3, 3, 3, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="channels must be 1"):
        tio.OneHot()(two_channels)
    negative = tio.LabelMap(tensor=-torch.ones(1, 3, 3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-negative"):
        tio.OneHot()(negative)
    too_large = tio.LabelMap(tensor=torch.full((1, 3, 3, 3), 4))
    with pytest.raises(ValueError, match="smaller than num_classes"):
        tio.OneHot(3)(too_large)


def test_one_hot_of_types_the_kernels_widen() -> None:
    for dtype in (torch.bool, torch.int8, torch.float16):
        tensor = (torch.rand(1, 4, 5, 6) > 0.5).to(dtype)
        ours = tio.OneHot()(tio.LabelMap(tensor=tensor))
        theirs = torchio.OneHot()(torchio.LabelMap(tensor=tensor))
        assert ours.data.dtype == theirs.data.dtype
        assert torch.equal(ours.data, theirs.data)


# --- Contour and KeepLargestComponent ----------------------------------------------------


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contour_matches_torchio(label_dtype: Any, seed: int) -> None:
    labels = blob_labels((14, 15, 16), seed).astype(label_dtype)
    labels[0, 3:6, 3:6, 3:6] = 2  # other labels are kept, as by SimpleITK
    ours, theirs = subjects(labels)
    ours_out, theirs_out = tio.Contour()(ours), torchio.Contour()(theirs)
    assert_same_subject(ours_out, theirs_out)
    assert_history_replays(ours, ours_out)


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_keep_largest_component_matches_torchio(label_dtype: Any, seed: int) -> None:
    labels = blob_labels((14, 15, 16), seed, fraction=0.3).astype(label_dtype)
    ours, theirs = subjects(labels)
    ours_out = tio.KeepLargestComponent()(ours)
    assert_same_subject(ours_out, torchio.KeepLargestComponent()(theirs))
    assert ours_out["label"].data.dtype == torch.uint8
    assert_history_replays(ours, ours_out)


@pytest.mark.parametrize("seed", range(6))
def test_keep_largest_component_breaks_ties_like_torchio(seed: int) -> None:
    # Only single voxels: every component ties, the choice follows SimpleITK's order.
    rng = np.random.default_rng(seed)
    labels = np.zeros((1, 9, 8, 7), np.uint8)
    flat = rng.choice(labels.size, 12, replace=False)
    labels.reshape(-1)[flat] = 1
    labels *= (ndimage.label(labels[0])[0] > 0)[np.newaxis]
    ours, theirs = subjects(labels)
    assert_same_subject(tio.KeepLargestComponent()(ours), torchio.KeepLargestComponent()(theirs))


def test_components_transforms_on_2d_images() -> None:
    labels = blob_labels((20, 21, 1), 4)
    ours, theirs = subjects(labels)
    assert_same_subject(tio.KeepLargestComponent()(ours), torchio.KeepLargestComponent()(theirs))
    assert_same_subject(tio.Contour()(ours), torchio.Contour()(theirs))


@pytest.mark.parametrize("transform", [tio.Contour, tio.KeepLargestComponent])
def test_component_transforms_reject_multichannel_maps(transform: Any) -> None:
    image = tio.LabelMap(tensor=torch.ones(2, 3, 3, 3, dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="channels must be 1"):
        transform()(image)


# --- RemapLabels, RemoveLabels ---------------------------------------------------------


def _lower_half(tensor: torch.Tensor) -> torch.Tensor:
    return tensor < 2


MASKING_METHODS: list[Any] = [None, "Left", "superior", "mask", (1, 2, 0), _lower_half]


@pytest.mark.parametrize("masking_method", MASKING_METHODS)
@pytest.mark.parametrize("label_dtype", [*LABEL_DTYPES, np.float32])
def test_remap_labels_matches_torchio(masking_method: Any, label_dtype: Any) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, (1, 8, 9, 10)).astype(label_dtype)
    mask = rng.integers(0, 2, (1, 8, 9, 10)).astype(np.uint8)
    ours, theirs = subjects(labels, mask=mask)
    remapping = {1: 2, 2: 1, 3: 1, 4: 7}
    ours_out = tio.RemapLabels(remapping, masking_method=masking_method, include=["label"])(ours)
    theirs_out = torchio.RemapLabels(remapping, masking_method=masking_method, include=["label"])(
        theirs
    )
    assert_same_subject(ours_out, theirs_out)
    assert_history_replays(ours, ours_out)


def test_remap_labels_inverse_and_masked_split() -> None:
    labels = np.random.default_rng(4).integers(0, 4, (1, 8, 9, 10))
    ours, _ = subjects(labels)
    transformed = tio.RemapLabels({1: 5, 2: 6})(ours)
    restored = transformed.apply_inverse_transform()
    assert torch.equal(restored["label"].data, torch.from_numpy(labels))
    # Label 1 on the left and 2 on the right (first axis in RAS+) merged into 1: only
    # a transform masked to the right half can be undone.
    sided = labels.copy()
    sided[:, :4][sided[:, :4] == 2] = 1
    sided[:, 4:][sided[:, 4:] == 1] = 2
    ours, _ = subjects(sided)
    merged = tio.RemapLabels({2: 1}, masking_method="Right")(ours)
    assert not (merged["label"].data == 2).any()
    assert torch.equal(merged.apply_inverse_transform()["label"].data, torch.from_numpy(sided))
    unmasked = tio.RemapLabels({2: 1})(ours).apply_inverse_transform()
    assert not torch.equal(unmasked["label"].data, torch.from_numpy(sided))
    with pytest.raises(RuntimeError, match="cannot be inverted"):
        tio.RemapLabels({1: 0, 2: 0}).inverse()


def test_remap_labels_skips_images_without_the_labels_and_checks_values() -> None:
    labels = np.zeros((1, 3, 3, 3), np.uint8)
    ours, _ = subjects(labels)
    # The mask name does not exist, but it is not needed: label 9 is absent.
    untouched = tio.RemapLabels({9: 1}, masking_method="missing")(ours)
    assert torch.equal(untouched["label"].data, torch.from_numpy(labels))
    with pytest.raises(ValueError, match="cannot be represented"):
        tio.RemapLabels({0: 300})(ours)
    with pytest.raises(TypeError, match="remapping"):
        tio.RemapLabels([(1, 2)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        tio.RemapLabels({1: float("nan")})


@pytest.mark.parametrize("masking_method", [None, "Anterior"])
def test_remove_labels_matches_torchio(masking_method: Any) -> None:
    labels = np.random.default_rng(5).integers(0, 5, (1, 8, 9, 10)).astype(np.int16)
    ours, theirs = subjects(labels)
    kwargs = {"background_label": 4, "masking_method": masking_method}
    ours_out = tio.RemoveLabels([1, 3], **kwargs)(ours)
    assert_same_subject(ours_out, torchio.RemoveLabels([1, 3], **kwargs)(theirs))
    assert_history_replays(ours, ours_out)
    assert not tio.RemoveLabels([1]).is_invertible()
    with pytest.raises(RuntimeError, match="not invertible"):
        tio.RemoveLabels([1]).inverse()
    with pytest.raises(TypeError, match="labels"):
        tio.RemoveLabels(3)  # type: ignore[arg-type]


# --- SequentialLabels -------------------------------------------------------------------


@pytest.mark.parametrize("label_dtype", [*LABEL_DTYPES, np.float32])
@pytest.mark.parametrize("masking_method", [None, "Left"])
def test_sequential_labels_matches_torchio_and_inverts(
    label_dtype: Any, masking_method: Any
) -> None:
    rng = np.random.default_rng(6)
    values = np.array([3, 7, 11, 99])
    labels = values[rng.integers(0, 4, (1, 8, 9, 10))].astype(label_dtype)
    second = values[rng.integers(1, 3, (1, 8, 9, 10))].astype(label_dtype)
    ours, theirs = subjects(labels, second=second)
    ours_out = tio.SequentialLabels(masking_method=masking_method)(ours)
    assert_same_subject(ours_out, torchio.SequentialLabels(masking_method=masking_method)(theirs))
    history = ours_out.history
    assert [type(t).__name__ for t in history] == ["RemapLabels", "RemapLabels"]
    assert [t.include for t in history] == [["label"], ["second"]]
    assert_history_replays(ours, ours_out)
    if masking_method is None:
        assert sorted(torch.unique(ours_out["label"].data).tolist()) == [0, 1, 2, 3]
        restored = ours_out.apply_inverse_transform()
        assert torch.equal(restored["label"].data, ours["label"].data)
        assert torch.equal(restored["second"].data, ours["second"].data)


def test_sequential_labels_with_exclude_and_keep() -> None:
    labels = np.array([0, 5, 10], np.int64).reshape(1, 1, 1, 3)
    ours, _ = subjects(labels, other=labels * 2)
    out = tio.SequentialLabels(exclude=["other"], keep={"label": "label_original"})(ours)
    assert out["label"].data.reshape(-1).tolist() == [0, 1, 2]
    assert out["other"].data.reshape(-1).tolist() == [0, 10, 20]
    assert out["label_original"].data.reshape(-1).tolist() == [0, 5, 10]
    assert ours["label"].data.reshape(-1).tolist() == [0, 5, 10]  # input untouched
