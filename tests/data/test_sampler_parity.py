"""Patch samplers against TorchIO: image dtypes, overridden crops, Subject
subclasses and the grid sampler inside a queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torchio

import torchvox as tio

SHAPE = (10, 9, 8)


def _tensor(dtype: torch.dtype, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Distinct small values (a label map's, too) that every dtype holds exactly."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 4, (channels, *SHAPE), generator=generator)
    if dtype.is_complex:
        return (values + 1j * values.flip(1)).to(dtype)
    return values.to(dtype)


def _subject(module: Any, dtype: torch.dtype, subject_class: type | None = None) -> Any:
    """A subject with an image of ``dtype``, a float32 image and a label map of
    ``dtype`` (int64 if torch cannot compare it, as the label sampler does)."""
    comparable = not dtype.is_complex and dtype != torch.uint64
    label = _tensor(dtype if comparable else torch.int64, seed=2)
    label[0, 4:6, 4:6, 3:5] = 1  # a labelled centre whatever the seed drew
    images = {
        "narrow": module.ScalarImage(tensor=_tensor(dtype, channels=2)),
        "wide": module.ScalarImage(tensor=_tensor(torch.float32, seed=1)),
        "label": module.LabelMap(tensor=label),
    }
    return (subject_class or module.Subject)(**images, age=42)


def _samplers(module: Any) -> dict[str, Callable[[Any], list[Any]]]:
    """Functions taking some patches of a subject, by the sampler they use."""

    def grid_items(subject: Any) -> list[Any]:
        sampler = module.GridSampler(subject, 4, 2)
        return [sampler[index] for index in range(len(sampler))]

    def grid_loader(subject: Any) -> list[Any]:
        sampler = module.GridSampler(subject, 4, 2)
        batches = module.SubjectsLoader(sampler, batch_size=5)
        names = ("narrow", "wide", "label")
        return [
            tensor
            for batch in batches
            for tensor in (batch[module.LOCATION], *(batch[n][module.DATA] for n in names))
        ]

    return {
        "uniform": lambda subject: list(module.UniformSampler((4, 3, 5))(subject, 6)),
        "weighted": lambda subject: list(module.WeightedSampler(3, "wide")(subject, 6)),
        "label": lambda subject: list(module.LabelSampler(3, "label")(subject, 6)),
        "grid": lambda subject: list(module.GridSampler(subject, 4, 2)()),
        "grid_items": grid_items,
        "grid_loader": grid_loader,
    }


def _same_patches(ours: list[Any], theirs: list[Any]) -> None:
    assert len(ours) == len(theirs)
    for mine, reference in zip(ours, theirs, strict=True):
        if isinstance(mine, torch.Tensor):  # a batch of locations or data
            assert mine.dtype == reference.dtype
            assert torch.equal(mine, reference)
            continue
        assert torch.equal(mine[tio.LOCATION], reference[torchio.LOCATION])
        for name in ("narrow", "wide", "label"):
            assert mine[name].data.dtype == reference[name].data.dtype
            assert torch.equal(mine[name].data, reference[name].data)
            np.testing.assert_allclose(mine[name].affine, reference[name].affine)


def _both(name: str, dtype: torch.dtype) -> tuple[list[Any], list[Any]]:
    """The patches of sampler ``name`` from torchvox and TorchIO, under one seed."""
    patches = []
    for module in (tio, torchio):
        torch.manual_seed(5)
        patches.append(_samplers(module)[name](_subject(module, dtype)))
    return patches[0], patches[1]


NARROW_DTYPES = [torch.float16, torch.bfloat16, torch.int8, torch.complex64, torch.uint64]


@pytest.mark.parametrize("dtype", NARROW_DTYPES)
@pytest.mark.parametrize(
    "name", ["uniform", "weighted", "label", "grid", "grid_items", "grid_loader"]
)
def test_patches_of_dtypes_the_native_copy_does_not_take(name, dtype) -> None:
    _same_patches(*_both(name, dtype))


@pytest.mark.parametrize("dtype", NARROW_DTYPES)
def test_batches_of_grid_patches_of_those_dtypes(dtype) -> None:
    subject = _subject(tio, dtype)
    sampler = tio.GridSampler(subject, 4, 2)
    indices = [0, 3, 7, 2]
    batched = sampler.__getitems__(indices)
    for index, patch in zip(indices, batched, strict=True):
        single = sampler[index]
        for name in ("narrow", "wide", "label"):
            assert patch[name].data.dtype == single[name].data.dtype
            assert torch.equal(patch[name].data, single[name].data)
    batch = next(iter(tio.SubjectsLoader(sampler, batch_size=4)))
    expected = torch.stack([sampler[index]["narrow"].data for index in range(4)])
    assert torch.equal(batch["narrow"][tio.DATA], expected)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_queue_patches_keep_the_image_dtype(num_workers) -> None:
    subjects = [_subject(tio, dtype) for dtype in (torch.float16, torch.bfloat16, torch.int8)]
    dataset = tio.SubjectsDataset(subjects)
    queue = tio.Queue(dataset, 6, 2, tio.UniformSampler(3), num_workers=num_workers)
    dtypes = {queue[index]["narrow"].data.dtype for index in range(len(queue))}
    assert dtypes == {torch.float16, torch.bfloat16, torch.int8}


# Overridden extract_patch and crop -------------------------------------------


def _marking(base: type, method: str) -> type:
    """A subclass of sampler ``base`` whose ``method`` marks the patches it returns."""

    def extract_patch(self, subject, index_ini, *args):
        patch = base.extract_patch(self, subject, index_ini, *args)
        patch["custom"] = "extract_patch"
        return patch

    def crop(self, subject, index_ini, patch_size):
        patch = base.crop(self, subject, index_ini, patch_size)
        patch["custom"] = "crop"
        return patch

    function = extract_patch if method == "extract_patch" else crop
    return type(f"Marking{base.__name__}", (base,), {method: function})


def _marks(module: Any, sampler_name: str, method: str) -> list[tuple[Any, list[int]]]:
    """The mark and location of each patch of a marking subclass of ``sampler_name``."""
    subject = _subject(module, torch.float32)
    sampler_class = _marking(getattr(module, sampler_name), method)
    torch.manual_seed(3)
    if sampler_name == "UniformSampler":
        patches = list(sampler_class(3)(subject, 4))
    elif sampler_name in ("WeightedSampler", "LabelSampler"):
        patches = list(sampler_class(3, "label")(subject, 4))
    else:
        patches = list(sampler_class(subject, 4, 2)())
    patches.append(torch.rand(1))  # the random numbers drawn by the patches
    return [
        (p.get("custom"), p[module.LOCATION].tolist()) if isinstance(p, dict) else p.item()
        for p in patches
    ]


@pytest.mark.parametrize("method", ["extract_patch", "crop"])
@pytest.mark.parametrize(
    "sampler_name", ["UniformSampler", "WeightedSampler", "LabelSampler", "GridSampler"]
)
def test_overridden_patch_methods_are_called(sampler_name, method) -> None:
    ours = _marks(tio, sampler_name, method)
    assert ours == _marks(torchio, sampler_name, method)
    assert {mark for mark, _ in ours[:-1]} == {method}


@pytest.mark.parametrize("method", ["extract_patch", "crop"])
def test_grid_items_are_taken_by_crop_as_in_torchio(method) -> None:
    results = []
    for module in (tio, torchio):
        sampler = _marking(module.GridSampler, method)(_subject(module, torch.float32), 4, 2)
        items = [sampler[index].get("custom") for index in range(len(sampler))]
        loaded = [
            patch.get("custom")
            for batch in torch.utils.data.DataLoader(
                sampler, batch_size=3, collate_fn=lambda batch: batch
            )
            for patch in batch
        ]
        results.append((items, loaded))
    assert results[0] == results[1]
    # TorchIO indexes through crop only.
    expected = "crop" if method == "crop" else None
    assert set(results[0][0]) == set(results[0][1]) == {expected}


def test_an_overridden_getitem_is_not_bypassed_by_batches() -> None:
    class Marked(tio.GridSampler):
        def __getitem__(self, index):
            patch = super().__getitem__(index)
            patch["custom"] = index
            return patch

    sampler = Marked(_subject(tio, torch.float32), 4, 2)
    assert [p["custom"] for p in sampler.__getitems__([4, 1, 2])] == [4, 1, 2]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_queue_calls_overridden_patch_methods(num_workers) -> None:
    sampler = _marking(tio.UniformSampler, "extract_patch")(3)
    subjects = [_subject(tio, torch.float32) for _ in range(2)]
    queue = tio.Queue(tio.SubjectsDataset(subjects), 4, 2, sampler, num_workers=num_workers)
    assert [queue[index].get("custom") for index in range(len(queue))] == ["extract_patch"] * 4


def test_unmodified_samplers_crop_directly() -> None:
    for sampler in (tio.UniformSampler(3), tio.LabelSampler(3), tio.WeightedSampler(3, "map")):
        assert sampler._crops_directly()
        assert sampler.crops_pending_voxels()
    grid = tio.GridSampler(_subject(tio, torch.float32), 4)
    assert grid._crops_directly()
    assert not _marking(tio.UniformSampler, "crop")(3).crops_pending_voxels()
    assert not _marking(tio.LabelSampler, "crop")(3).crops_pending_voxels()


# Subject subclasses ------------------------------------------------------------


class _TaggedSubject(tio.Subject):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tag = ["kept"]


class _TaggedTorchioSubject(torchio.Subject):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tag = ["kept"]


@pytest.mark.parametrize("name", ["uniform", "weighted", "label", "grid", "grid_items"])
def test_patches_keep_the_subject_class(name) -> None:
    patches = []
    for module, subject_class in ((tio, _TaggedSubject), (torchio, _TaggedTorchioSubject)):
        torch.manual_seed(5)
        subject = _subject(module, torch.float32, subject_class)
        patches.append(_samplers(module)[name](subject))
        for patch in patches[-1]:
            assert type(patch) is subject_class
            assert patch.tag == ["kept"] and patch.tag is not subject.tag
            assert patch.age == 42 and patch["narrow"] is patch.narrow
            assert [type(t).__name__ for t in patch.history] == ["Crop"]
            assert patch.get_inverse_transform()(patch).spatial_shape == SHAPE
    _same_patches(*patches)


def test_batched_grid_patches_keep_the_subject_class() -> None:
    subject = _subject(tio, torch.float32, _TaggedSubject)
    sampler = tio.GridSampler(subject, 4, 2)
    for index, patch in zip([1, 5], sampler.__getitems__([1, 5]), strict=True):
        assert type(patch) is _TaggedSubject and patch.tag == ["kept"]
        assert torch.equal(patch["narrow"].data, sampler[index]["narrow"].data)
    # The original subject still holds its whole images.
    assert subject["narrow"].spatial_shape == SHAPE and subject.narrow is subject["narrow"]


# The grid sampler in a queue -----------------------------------------------------


def _grid_queue_patches(module: Any, samples_per_volume: int, **kwargs: Any) -> list[Any]:
    subjects = [
        module.Subject(
            img=module.ScalarImage(tensor=torch.arange(512.0).reshape(1, 8, 8, 8) + 1000 * n),
            index=n,
        )
        for n in range(2)
    ]
    sampler = module.GridSampler(subjects[0], 4)
    queue = module.Queue(
        module.SubjectsDataset(subjects),
        8,
        samples_per_volume,
        sampler,
        shuffle_subjects=False,
        shuffle_patches=False,
        **kwargs,
    )
    patches = [queue[index] for index in range(len(queue))]
    return [(p["index"], p[module.LOCATION].tolist(), float(p["img"].data.sum())) for p in patches]


@pytest.mark.parametrize("samples_per_volume", [3, 8])
@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_grid_sampler_can_feed_a_queue(samples_per_volume, num_workers) -> None:
    ours = _grid_queue_patches(tio, samples_per_volume, num_workers=num_workers)
    theirs = _grid_queue_patches(torchio, samples_per_volume)
    assert ours == theirs
    # Each subject gives the first patches of its own grid.
    assert [index for index, _, _ in ours] == [0] * samples_per_volume + [1] * samples_per_volume


def test_samplers_taking_a_count_are_still_given_one() -> None:
    calls = []

    class Counting(tio.UniformSampler):
        def __call__(self, subject, num_patches=None):
            calls.append(num_patches)
            return super().__call__(subject, num_patches)

    subjects = [_subject(tio, torch.float32) for _ in range(2)]
    queue = tio.Queue(tio.SubjectsDataset(subjects), 4, 2, Counting(3), num_workers=0)
    assert len([queue[index] for index in range(len(queue))]) == 4
    assert calls == [2, 2]
