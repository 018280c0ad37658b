"""Pending voxels: the warp and noise the queue computes inside the sampled patches only."""

from __future__ import annotations

import copy
import pickle
from contextlib import nullcontext

import numpy as np
import pytest
import torch

import torchvox as tio
from torchvox._backend import native
from torchvox.data._subject_patches import SubjectPatches
from torchvox.data.pending import PendingVoxels, deferred_voxels
from torchvox.data.sampler.sampler import patch_boxes

SHAPE = (37, 41, 43)


def _subject() -> tio.Subject:
    """A textured ball on zeros (the warp skips background taps there), a
    two-channel image without background, and a label map of two shells."""
    generator = torch.Generator().manual_seed(0)
    axes = [torch.arange(n, dtype=torch.float32) for n in SHAPE]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))
    radius = (grid - torch.tensor([18.0, 20.0, 21.0]).view(3, 1, 1, 1)).pow(2).sum(0).sqrt()
    texture = 100 + 50 * torch.rand(SHAPE, generator=generator)
    t1 = torch.where(radius < 15, texture, torch.zeros(SHAPE))[None]
    seg = ((radius < 15).to(torch.uint8) + (radius < 8).to(torch.uint8))[None]
    affine = np.diag([1.2, 0.9, 1.1, 1.0])
    affine[:3, 3] = [-20.0, 15.0, 3.0]
    return tio.Subject(
        t1=tio.ScalarImage(tensor=t1, affine=affine),
        two=tio.ScalarImage(tensor=torch.rand((2, *SHAPE), generator=generator), affine=affine),
        seg=tio.LabelMap(tensor=seg, affine=affine),
    )


TRANSFORMS = {
    "affine and noise": lambda: tio.Compose([tio.RandomAffine(degrees=15), tio.RandomNoise()]),
    "elastic and noise": lambda: tio.Compose(
        [tio.RandomElasticDeformation(max_displacement=4), tio.RandomNoise(std=(0.5, 1))]
    ),
    "fused affine and elastic": lambda: tio.Compose(
        [tio.RandomAffine(), tio.RandomElasticDeformation(max_displacement=4), tio.RandomNoise()],
        fuse=True,
    ),
}


def _same_bits(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _eager_and_pending(name: str, seed: int = 5) -> tuple[tio.Subject, tio.Subject]:
    subject = _subject()
    torch.manual_seed(seed)
    eager = TRANSFORMS[name]()(subject)
    torch.manual_seed(seed)
    with deferred_voxels():
        pending = TRANSFORMS[name]()(subject)
    return eager, pending


@pytest.mark.parametrize("name", TRANSFORMS)
def test_pending_voxels_are_those_of_the_transform(name) -> None:
    eager, pending = _eager_and_pending(name)
    for key in ("t1", "two", "seg"):
        image = pending[key]
        assert image._pending_voxels() is not None, key
        # Shapes and affines come without computing anything.
        assert image.shape == eager[key].shape
        assert pending.spatial_shape == SHAPE
        assert image._pending_voxels() is not None
        np.testing.assert_array_equal(image.affine, eager[key].affine)
        assert _same_bits(image.data, eager[key].data), key
        assert image._pending_voxels() is None
    assert repr(pending.applied_transforms) == repr(eager.applied_transforms)
    # The augmentation did something.
    assert not torch.equal(eager["t1"].data, _subject()["t1"].data)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_boxes_compute_the_voxels_of_the_patches(name) -> None:
    eager, pending = _eager_and_pending(name, seed=11)
    boxes = patch_boxes([[0, 0, 0], [10, 12, 5], [30, 1, 20], [12, 14, 7]], (7, 9, 23))
    inside = np.zeros(SHAPE, dtype=bool)
    for i0, j0, k0, i1, j1, k1 in boxes:
        inside[i0:i1, j0:j1, k0:k1] = True
    for key in ("t1", "two", "seg"):
        voxels = pending[key]._pending_voxels()
        assert voxels is not None
        partial = voxels.evaluate_boxes(boxes)
        expected = eager[key].data.numpy()
        assert _same_bits(partial[:, inside], expected[:, inside]), key
        # Still pending: the whole volume was not computed.
        assert pending[key]._pending_voxels() is voxels


READERS = {
    "data": lambda image: image.data,
    "tensor": lambda image: image.tensor,
    "item": lambda image: image["data"],
    "numpy": lambda image: torch.from_numpy(image.numpy()),
    "deepcopy": lambda image: copy.deepcopy(image).data,
    "pickle": lambda image: pickle.loads(pickle.dumps(image)).data,
}


@pytest.mark.parametrize("reader", READERS)
def test_every_way_of_reading_computes_the_voxels(reader) -> None:
    eager, pending = _eager_and_pending("affine and noise")
    assert _same_bits(READERS[reader](pending["t1"]), eager["t1"].data)


def test_new_data_replaces_pending_voxels() -> None:
    _, pending = _eager_and_pending("affine and noise")
    image = pending["t1"]
    image.set_data(torch.ones(1, 2, 3, 4))
    assert image._pending_voxels() is None
    assert torch.equal(image.data, torch.ones(1, 2, 3, 4))


def test_outside_the_context_transforms_compute_their_voxels() -> None:
    eager, _ = _eager_and_pending("affine and noise")
    for image in eager.get_images(intensity_only=False):
        assert image._pending_voxels() is None


@pytest.mark.parametrize(
    "make_sampler",
    [lambda: tio.UniformSampler((11, 13, 17)), lambda: tio.LabelSampler(12, "seg")],
    ids=["uniform", "label"],
)
def test_samplers_crop_pending_voxels_as_computed_ones(make_sampler, monkeypatch) -> None:
    evaluations: list[str] = []
    original = PendingVoxels.evaluate

    def counting(self):
        evaluations.append("whole")
        return original(self)

    monkeypatch.setattr(PendingVoxels, "evaluate", counting)
    eager, pending = _eager_and_pending("affine and noise", seed=3)
    sampler = make_sampler()
    assert sampler.crops_pending_voxels()
    results = []
    for subject in (eager, pending):
        torch.manual_seed(9)
        patches = list(sampler(subject, 6))
        # The same random numbers were drawn.
        results.append((patches, torch.rand(1)))
    (eager_patches, eager_next), (pending_patches, pending_next) = results
    assert torch.equal(eager_next, pending_next)
    for ours, theirs in zip(pending_patches, eager_patches, strict=True):
        assert torch.equal(ours["location"], theirs["location"])
        for key in ("t1", "two", "seg"):
            assert _same_bits(ours[key].data, theirs[key].data), key
            np.testing.assert_array_equal(ours[key].affine, theirs[key].affine)
            assert ours[key]._pending_voxels() is None
        assert ours.applied_transforms == theirs.applied_transforms
    # No volume was computed whole: the label sampler's map only where
    # patches can be centred, then every image inside the patches.
    assert evaluations == []


def _dataset(transform) -> tio.SubjectsDataset:
    return tio.SubjectsDataset([_subject(), _subject()], transform=transform)


def test_queue_patches_are_those_of_computed_volumes(monkeypatch) -> None:
    transform = TRANSFORMS["affine and noise"]()
    patches = SubjectPatches(_dataset(transform), tio.UniformSampler(10), 5)
    assert not isinstance(patches._voxels_on_demand(), nullcontext)
    boxes_evaluated = []
    original = PendingVoxels.evaluate_boxes

    def counting(self, boxes):
        boxes_evaluated.append(len(boxes))
        return original(self, boxes)

    monkeypatch.setattr(PendingVoxels, "evaluate_boxes", counting)
    pending = patches[(1, 77)]
    assert boxes_evaluated == [5, 5, 5]  # t1, two and seg, inside the 5 patches only
    monkeypatch.setattr(SubjectPatches, "_voxels_on_demand", lambda self: nullcontext())
    eager = patches[(1, 77)]
    for ours, theirs in zip(pending, eager, strict=True):
        assert torch.equal(ours["location"], theirs["location"])
        for key in ("t1", "two", "seg"):
            assert _same_bits(ours[key].data, theirs[key].data), key


def test_queue_gives_the_same_patches_with_workers() -> None:
    def locations_and_sums(num_workers):
        torch.manual_seed(4)
        queue = tio.Queue(
            _dataset(TRANSFORMS["affine and noise"]()),
            4,
            3,
            tio.UniformSampler(9),
            num_workers=num_workers,
        )
        return [
            (queue[n]["location"].tolist(), float(queue[n]["t1"].data.double().sum()))
            for n in range(len(queue))
        ]

    assert locations_and_sums(0) == locations_and_sums(2)


class _OwnTransform(tio.RandomNoise):
    """A user's transform: it might read image items directly."""


class _OwnCropSampler(tio.UniformSampler):
    def crop(self, subject, index_ini, patch_size):
        return super().crop(subject, index_ini, patch_size)


class _OwnMapSampler(tio.WeightedSampler):
    """Overrides the map only, which it reads through the Image API."""

    def get_probability_map(self, subject):
        return subject["seg"].data.float()


class _OwnDataset(tio.SubjectsDataset):
    def __getitem__(self, index):
        return super().__getitem__(index)


@pytest.mark.parametrize(
    ("dataset", "sampler", "defers"),
    [
        (lambda: _dataset(tio.RandomAffine()), tio.UniformSampler, True),
        (lambda: _dataset(None), tio.UniformSampler, True),
        (
            lambda: _dataset(tio.OneOf([tio.RandomAffine(), tio.RandomNoise()])),
            tio.UniformSampler,
            True,
        ),
        (
            lambda: _dataset(tio.Compose([tio.RandomAffine(), _OwnTransform()])),
            tio.UniformSampler,
            False,
        ),
        (
            lambda: _dataset(tio.Compose([tio.RandomAffine(), lambda s: s])),
            tio.UniformSampler,
            False,
        ),
        (lambda: _dataset(tio.RandomAffine()), _OwnCropSampler, False),
        (lambda: _dataset(tio.RandomAffine()), _OwnMapSampler, True),
        (
            lambda: _OwnDataset([_subject()], transform=tio.RandomAffine()),
            tio.UniformSampler,
            False,
        ),
    ],
)
def test_voxels_are_left_pending_only_where_torchvox_alone_reads_them(
    dataset, sampler, defers
) -> None:
    if sampler is _OwnMapSampler:
        instance = sampler(4, "seg")
    else:
        instance = sampler(4)
    context = SubjectPatches(dataset(), instance, 2)._voxels_on_demand()
    assert (not isinstance(context, nullcontext)) == defers


def test_native_kernels_reject_bad_boxes() -> None:
    volume = np.zeros((1, 5, 6, 7), dtype=np.float32)
    with pytest.raises(ValueError, match="outside the grid"):
        native().noise_in_boxes(volume, 0.0, 1.0, 1, False, np.array([[0, 0, 0, 6, 1, 1]]))
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        native().noise_in_boxes(volume, 0.0, 1.0, 1, False, np.zeros((1, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="float32 or float64"):
        native().noise_in_boxes(
            volume.astype(np.int16), 0.0, 1.0, 1, False, np.zeros((0, 6), np.int64)
        )
    with pytest.raises(ValueError, match="non-negative"):
        native().warp(
            volume,
            np.eye(4),
            (5, 6, 7),
            np.eye(4),
            [],
            "linear",
            [0.0],
            np.array([[-1, 0, 0, 1, 1, 1]]),
        )


def test_mni152_queue_patches_are_those_of_computed_volumes(mni152, monkeypatch) -> None:
    """Real data: the T1 (mostly background, so the warp skips taps) and the
    tissue labels, a rotation and noise, patches centred on tissue."""
    dataset = tio.SubjectsDataset(
        [mni152], transform=tio.Compose([tio.RandomAffine(degrees=20), tio.RandomNoise()])
    )
    patches = SubjectPatches(dataset, tio.LabelSampler(64, "tissues"), 4)
    assert not isinstance(patches._voxels_on_demand(), nullcontext)
    pending = patches[(0, 2024)]
    monkeypatch.setattr(SubjectPatches, "_voxels_on_demand", lambda self: nullcontext())
    eager = patches[(0, 2024)]
    for ours, theirs in zip(pending, eager, strict=True):
        assert torch.equal(ours["location"], theirs["location"])
        assert torch.any(theirs["tissues"].data > 0)
        for key in ("t1", "tissues"):
            assert _same_bits(ours[key].data, theirs[key].data), key
            np.testing.assert_array_equal(ours[key].affine, theirs[key].affine)
