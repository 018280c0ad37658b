"""Patch samplers: statistics, locations, affines, TorchIO parity and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio
from scipy import stats

import torchvox as tio


def _subject(module=tio, shape=(20, 18, 16), affine=None, label=None, sampling=None):
    generator = torch.Generator().manual_seed(1)
    images = {
        "t1": module.ScalarImage(tensor=torch.rand(2, *shape, generator=generator), affine=affine)
    }
    if label is not None:
        images["label"] = module.LabelMap(tensor=label, affine=affine)
    if sampling is not None:
        images["sampling"] = module.Image(tensor=sampling, type=module.SAMPLING_MAP, affine=affine)
    return module.Subject(**images, age=42)


def test_uniform_corners_are_uniform_chi_square() -> None:
    torch.manual_seed(0)
    subject = _subject(shape=(12, 10, 8))
    sampler = tio.UniformSampler((5, 4, 8))
    corners = np.array([p["location"][:3].tolist() for p in sampler(subject, 3000)])
    # Valid corners: i in 0..7, j in 0..6, k = 0.
    assert corners[:, 2].max() == 0
    for axis, n_valid in ((0, 8), (1, 7)):
        counts = np.bincount(corners[:, axis], minlength=n_valid)
        assert len(counts) == n_valid
        assert stats.chisquare(counts).pvalue > 1e-3


def test_patches_have_right_data_location_affine_and_metadata() -> None:
    affine = np.array([[0, -2.0, 0, 5], [1.5, 0, 0, -3], [0, 0, 3, 8], [0, 0, 0, 1]])
    subject = _subject(affine=affine, label=torch.randint(0, 3, (1, 20, 18, 16)))
    for patch in tio.UniformSampler((6, 5, 4))(subject, 20):
        i0, j0, k0, i1, j1, k1 = patch["location"].tolist()
        assert (i1 - i0, j1 - j0, k1 - k0) == (6, 5, 4)
        assert i0 >= 0 and i1 <= 20 and j0 >= 0 and j1 <= 18 and k0 >= 0 and k1 <= 16
        for name in ("t1", "label"):
            expected = subject[name].data[:, i0:i1, j0:j1, k0:k1]
            assert torch.equal(patch[name].data, expected)
            assert type(patch[name]) is type(subject[name])
            # Voxel (a, b, c) of the patch is voxel (i0 + a, ...) of the volume in world space.
            np.testing.assert_allclose(
                patch[name].affine @ [2, 3, 1, 1], affine @ [i0 + 2, j0 + 3, k0 + 1, 1]
            )
        assert patch["age"] == 42 and patch.age == 42
    # The original subject is untouched.
    assert subject["t1"].shape == (2, 20, 18, 16)


def test_uniform_matches_torchio_under_the_same_seed() -> None:
    ours_subject, their_subject = _subject(tio), _subject(torchio)
    torch.manual_seed(7)
    ours = [p["location"] for p in tio.UniformSampler(5)(ours_subject, 10)]
    torch.manual_seed(7)
    theirs = [p["location"] for p in torchio.UniformSampler(5)(their_subject, 10)]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_weighted_follows_a_known_map() -> None:
    sampling = torch.zeros(1, 9, 9, 9)
    sampling[0, 3, 4, 5] = 1
    sampling[0, 5, 5, 5] = 2
    sampling[0, 4, 6, 3] = 7
    sampling[0, 0, 0, 0] = 100  # on the border: can never be a centre of a 3^3 patch
    subject = _subject(shape=(9, 9, 9), sampling=sampling)
    torch.manual_seed(0)
    sampler = tio.WeightedSampler(3, "sampling")
    centres = [tuple((p["location"][:3] + 1).tolist()) for p in sampler(subject, 5000)]
    values, counts = np.unique(np.array(centres), axis=0, return_counts=True)
    observed = {tuple(v): c for v, c in zip(values.tolist(), counts, strict=True)}
    assert set(observed) == {(3, 4, 5), (5, 5, 5), (4, 6, 3)}
    expected = np.array([1, 2, 7]) / 10 * 5000
    got = np.array([observed[(3, 4, 5)], observed[(5, 5, 5)], observed[(4, 6, 3)]])
    assert stats.chisquare(got, expected).pvalue > 1e-3


def test_weighted_matches_torchio_under_the_same_seed() -> None:
    generator = torch.Generator().manual_seed(3)
    sampling = torch.rand(1, 20, 18, 16, generator=generator) ** 3
    ours_subject = _subject(tio, sampling=sampling)
    their_subject = _subject(torchio, sampling=sampling)
    torch.manual_seed(11)
    ours = [p["location"] for p in tio.WeightedSampler((6, 5, 4), "sampling")(ours_subject, 30)]
    torch.manual_seed(11)
    sampler = torchio.WeightedSampler((6, 5, 4), "sampling")
    theirs = [p["location"] for p in sampler(their_subject, 30)]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_weighted_bad_maps() -> None:
    sampling = torch.ones(1, 8, 8, 8)
    sampling[0, 2, 2, 2] = -1
    subject = _subject(shape=(8, 8, 8), sampling=sampling)
    with pytest.raises(ValueError, match="Negative values found"):
        next(tio.WeightedSampler(3, "sampling")(subject, 1))
    border = torch.zeros(1, 8, 8, 8)
    border[0, 0, 4, 4] = 1
    subject = _subject(shape=(8, 8, 8), sampling=border)
    with pytest.raises(RuntimeError, match=r"(?s)Empty probability map.*Pad\(\(2, 2, 2\)\)"):
        next(tio.WeightedSampler(5, "sampling")(subject, 1))
    with pytest.raises(KeyError, match="not found"):
        next(tio.WeightedSampler(5, "missing")(subject, 1))


def test_label_sampler_hits_classes_at_requested_rates() -> None:
    label = torch.zeros(1, 16, 16, 16, dtype=torch.int16)
    label[0, 4:6, 4:6, 4:6] = 1  # 8 voxels
    label[0, 8:12, 8:12, 8:12] = 2  # 64 voxels
    subject = _subject(shape=(16, 16, 16), label=label)
    torch.manual_seed(0)
    probabilities = {0: 0.2, 1: 0.5, 2: 0.3}
    sampler = tio.LabelSampler(5, "label", probabilities)
    n = 4000
    centre_labels = [int(p["label"].data[0, 2, 2, 2]) for p in sampler(subject, n)]
    counts = np.bincount(centre_labels, minlength=3)
    assert stats.chisquare(counts, np.array([0.2, 0.5, 0.3]) * n).pvalue > 1e-3
    # Without probabilities every centre is labelled.
    for patch in tio.LabelSampler(5)(subject, 200):
        assert patch["label"].data[0, 2, 2, 2] > 0


def test_label_sampler_multichannel_and_torchio_parity() -> None:
    one_hot = torch.zeros(3, 12, 12, 12)
    one_hot[0] = 1
    one_hot[0, 3:5, 3:5, 3:5] = 0
    one_hot[1, 3:5, 3:5, 3:5] = 1
    one_hot[0, 7:9, 6:9, 7:10] = 0
    one_hot[2, 7:9, 6:9, 7:10] = 1
    probabilities = {0: 0.1, 1: 0.6, 2: 0.3}
    ours = tio.LabelSampler.get_probabilities_from_label_map(
        one_hot, probabilities, np.array([3, 3, 3])
    )
    theirs = torchio.LabelSampler.get_probabilities_from_label_map(
        one_hot, probabilities, np.array([3, 3, 3])
    )
    torch.testing.assert_close(ours, theirs)
    label = one_hot.argmax(0, keepdim=True).to(torch.int64)
    ours = tio.LabelSampler.get_probabilities_from_label_map(
        label, probabilities, np.array([5, 4, 3])
    )
    theirs = torchio.LabelSampler.get_probabilities_from_label_map(
        label.float(), probabilities, np.array([5, 4, 3])
    )
    torch.testing.assert_close(ours, theirs)


def test_label_sampler_bad_input() -> None:
    subject = _subject(shape=(8, 8, 8))
    with pytest.raises(RuntimeError, match="No label maps found"):
        next(tio.LabelSampler(3)(subject, 1))
    with pytest.raises(TypeError, match="dictionary"):
        tio.LabelSampler(3, label_probabilities=[0.5, 0.5])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        tio.LabelSampler(3, label_probabilities={0: -1, 1: 2})


def test_patch_sampler_bad_input() -> None:
    subject = _subject(shape=(8, 8, 8))
    with pytest.raises(RuntimeError, match="cannot be larger than image size"):
        next(tio.UniformSampler((9, 2, 2))(subject, 1))
    for bad in (0, -3, (2, 2), 2.5, (2, 2, 0)):
        with pytest.raises(ValueError, match="Patch"):
            tio.UniformSampler(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="probability_map"):
        tio.WeightedSampler(3, 5)  # type: ignore[arg-type]


def test_infinite_generator_and_patch_count() -> None:
    subject = _subject(shape=(8, 8, 8))
    generator = tio.UniformSampler(4)(subject)
    assert len([next(generator) for _ in range(7)]) == 7
    assert len(list(tio.UniformSampler(4)(subject, 3))) == 3


@pytest.mark.parametrize(
    "dtype",
    [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int64, torch.float16, torch.float64],
)
def test_label_sampler_centre_mask_equals_torch_comparison(dtype) -> None:
    # The default centres are `label > 0`, computed by NumPy on the first channel;
    # torch's comparison of the whole map (as TorchIO does) is the reference.
    generator = torch.Generator().manual_seed(3)
    values = torch.randint(-2, 3, (2, 9, 8, 7), generator=generator).to(torch.float64)
    if dtype.is_floating_point:
        values[0, 1, 2, 3] = float("nan")
        values[0, 2, 2, 3] = 0.25
        values[0, 3, 2, 3] = -0.0
    if dtype in (torch.bool, torch.uint8):
        values = values.clamp(min=0)
    label = values.to(dtype)
    subject = tio.Subject(label=tio.LabelMap(tensor=label))
    sampler = tio.LabelSampler(3)
    expected = (label > 0)[0].to(torch.uint8).numpy()
    mask = sampler._centre_map(subject)
    assert mask.dtype == np.uint8
    assert mask.flags.c_contiguous
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(
        sampler._map_array(sampler.get_probability_map(subject)), expected
    )


def test_label_sampler_matches_torchio_under_the_same_seed_on_a_float_map() -> None:
    label = torch.zeros(1, 20, 18, 16)
    label[0, 5:9, 4:12, 6:10] = 1.0
    label[0, 12:15, 10:14, 3:7] = 2.5
    patches = []
    for module in (tio, torchio):
        subject = module.Subject(
            image=module.ScalarImage(tensor=torch.rand(1, 20, 18, 16)),
            label=module.LabelMap(tensor=label.clone()),
        )
        torch.manual_seed(7)
        patches.append([p[module.LOCATION] for p in module.LabelSampler(5, "label")(subject, 12)])
    ours, theirs = patches
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int16])
def test_label_probabilities_match_labels_exactly_as_torchio(dtype) -> None:
    # With label_probabilities, a voxel of 0.6 is no label's (TorchIO compares
    # with ==); whole numbers stored as floats are labels as usual.
    label = torch.zeros(1, 12, 11, 10, dtype=torch.float64)
    label[0, 3:6, 3:6, 3:6] = 1
    label[0, 6:9, 5:8, 4:7] = 2
    if dtype.is_floating_point:
        label[0, 4, 4, 4] = 0.6
        label[0, 7, 6, 5] = 2.0000001
    label = label.to(dtype)
    probabilities = {0: 0.2, 1: 0.5, 2: 0.3}
    maps = []
    for module in (tio, torchio):
        subject = module.Subject(label=module.LabelMap(tensor=label.clone()))
        sampler = module.LabelSampler(3, "label", label_probabilities=probabilities)
        maps.append(sampler.get_probability_map(subject))
    ours, theirs = maps
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=1e-6, atol=1e-9)
