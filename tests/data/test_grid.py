"""GridSampler + GridAggregator against exact reconstruction and TorchIO 1.2.1's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchio

import torchvox as tio
from torchvox.data.inference import aggregator as aggregator_module


def _volume(shape: tuple[int, int, int], channels: int = 2, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(channels, *shape, generator=generator) * 100).round().to(dtype)


def _aggregate(module, tensor, patch, overlap, mode, padding_mode=None, batch_size=3, model=None):
    subject = module.Subject(image=module.ScalarImage(tensor=tensor.clone()))
    sampler = module.GridSampler(subject, patch, overlap, padding_mode=padding_mode)
    aggregator = module.GridAggregator(sampler, overlap_mode=mode)
    loader = torch.utils.data.DataLoader(
        sampler, batch_size=batch_size, collate_fn=lambda patches: patches
    )
    for patches in loader:
        batch = torch.stack([p["image"].data for p in patches])
        if model is not None:
            batch = model(batch)
        locations = torch.stack([p["location"] for p in patches])
        aggregator.add_batch(batch, locations)
    return aggregator.get_output_tensor(), sampler


CASES = [
    ((17, 13, 11), (6, 5, 4), (2, 2, 0), None),
    ((15, 15, 9), 7, 4, None),
    ((15, 15, 9), 7, 4, "edge"),
    ((12, 9, 10), (5, 9, 3), (2, 0, 2), "constant"),
    ((12, 9, 10), (5, 9, 3), (2, 0, 2), "reflect"),
]


@pytest.mark.parametrize("mode", ["crop", "average", "hann"])
@pytest.mark.parametrize(("shape", "patch", "overlap", "padding_mode"), CASES)
def test_grid_reconstructs_the_volume(mode, shape, patch, overlap, padding_mode) -> None:
    tensor = _volume(shape)
    output, _ = _aggregate(tio, tensor, patch, overlap, mode, padding_mode)
    assert output.shape == tensor.shape
    if mode == "hann":
        torch.testing.assert_close(output, tensor, rtol=1e-6, atol=1e-6 * 100)
    else:
        assert torch.equal(output, tensor)


@pytest.mark.parametrize("mode", ["crop", "average", "hann"])
@pytest.mark.parametrize(("shape", "patch", "overlap", "padding_mode"), CASES)
def test_grid_matches_torchio(mode, shape, patch, overlap, padding_mode) -> None:
    tensor = _volume(shape)

    # A non-identity "model" so that overlapping predictions differ.
    def model(batch: torch.Tensor) -> torch.Tensor:
        return batch * 0.5 + torch.arange(batch.shape[0]).view(-1, 1, 1, 1, 1)

    ours, sampler = _aggregate(tio, tensor, patch, overlap, mode, padding_mode, model=model)
    theirs, reference_sampler = _aggregate(
        torchio, tensor, patch, overlap, mode, padding_mode, model=model
    )
    np.testing.assert_array_equal(sampler.locations, reference_sampler.locations)
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-5)


def test_int64_output_is_cast_with_a_warning() -> None:
    tensor = _volume((9, 8, 7), 1, torch.int64)
    with pytest.warns(RuntimeWarning, match="int64"):
        output, _ = _aggregate(tio, tensor, 4, 2, "crop")
    assert output.dtype == torch.int32
    assert torch.equal(output, tensor.to(torch.int32))


@pytest.mark.parametrize("mode", ["crop", "average"])
def test_downsampling_factor_in_every_mode(mode) -> None:
    tensor = _volume((16, 16, 12), 1)
    subject = tio.Subject(image=tio.ScalarImage(tensor=tensor))
    sampler = tio.GridSampler(subject, (8, 8, 6), (4, 4, 2))
    aggregator = tio.GridAggregator(sampler, overlap_mode=mode, downsampling_factor=2)
    for index in range(len(sampler)):
        patch = sampler[index]
        aggregator.add_batch(patch["image"].data[None, :, ::2, ::2, ::2], patch["location"][None])
    assert torch.equal(aggregator.get_output_tensor(), tensor[:, ::2, ::2, ::2])


def test_grid_sampler_patches_locations_and_affines() -> None:
    affine = np.diag([2.0, 3.0, 1.5, 1.0])
    affine[:3, 3] = [10, -5, 7]
    subject = tio.Subject(image=tio.ScalarImage(tensor=_volume((11, 10, 9)), affine=affine))
    sampler = tio.GridSampler(subject, (5, 4, 3), (2, 2, 0))
    assert len(sampler) == len(sampler.locations)
    for index in range(len(sampler)):
        patch = sampler[index]
        i0, j0, k0, i1, j1, k1 = patch["location"].tolist()
        assert torch.equal(patch["image"].data, subject["image"].data[:, i0:i1, j0:j1, k0:k1])
        world = affine @ np.array([i0 + 1, j0 + 2, k0 + 1, 1.0])
        np.testing.assert_allclose(patch["image"].affine @ np.array([1, 2, 1, 1.0]), world)
    patches = list(sampler())
    assert len(patches) == len(sampler)
    with pytest.raises(ValueError, match="limiting"):
        list(sampler(num_patches=2))


def test_downsampling_factor_must_divide_the_padding() -> None:
    subject = tio.Subject(img=tio.ScalarImage(tensor=_volume((16, 16, 16), 1)))
    sampler = tio.GridSampler(subject, 8, 2, padding_mode="constant")
    with pytest.raises(ValueError, match="multiple of downsampling_factor"):
        tio.GridAggregator(sampler, downsampling_factor=2)
    # Without padding there is nothing to crop off; with a border of 2, factor 2 fits.
    tio.GridAggregator(tio.GridSampler(subject, 8, 2), downsampling_factor=2)
    tio.GridAggregator(
        tio.GridSampler(subject, 8, 4, padding_mode="constant"), downsampling_factor=2
    )


def test_grid_bad_input() -> None:
    subject = tio.Subject(image=tio.ScalarImage(tensor=_volume((8, 8, 8))))
    with pytest.raises(ValueError, match="larger than image size"):
        tio.GridSampler(subject, 9)
    with pytest.raises(ValueError, match="even"):
        tio.GridSampler(subject, 4, 3)
    with pytest.raises(ValueError, match="smaller than patch size"):
        tio.GridSampler(subject, 4, 4)
    with pytest.raises(ValueError, match="Patch dimensions"):
        tio.GridSampler(subject, 0)
    sampler = tio.GridSampler(subject, 4)
    with pytest.raises(ValueError, match="Overlap mode"):
        tio.GridAggregator(sampler, overlap_mode="max")
    with pytest.raises(ValueError, match="downsampling_factor"):
        tio.GridAggregator(sampler, downsampling_factor=0)
    aggregator = tio.GridAggregator(sampler)
    with pytest.raises(RuntimeError, match="does not match"):
        aggregator.add_batch(torch.zeros(1, 2, 3, 4, 4), torch.tensor([[0, 0, 0, 4, 4, 4]]))
    with pytest.raises(RuntimeError, match="No batch"):
        aggregator.get_output_tensor()


def test_grid_sampler_with_subjects_loader_like_torchio_docs() -> None:
    tensor = _volume((13, 12, 11), 1)
    subject = tio.Subject(image=tio.ScalarImage(tensor=tensor))
    sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 2), padding_mode="edge")
    aggregator = tio.GridAggregator(sampler, overlap_mode="average")
    loader = tio.SubjectsLoader(sampler, batch_size=4)
    seen = 0
    for batch in loader:
        seen += len(batch[tio.LOCATION])
        aggregator.add_batch(batch["image"][tio.DATA], batch[tio.LOCATION])
    assert seen == len(sampler)
    assert torch.equal(aggregator.get_output_tensor(), tensor)


def _add_patches(aggregator, sampler, indices, model) -> None:
    for index in indices:
        patch = sampler[index]
        aggregator.add_batch(model(patch["image"].data[None]), patch["location"][None])


def _full_grid(module, tensor, mode):
    """A grid of 6^3 patches (overlap 2) over ``tensor`` and an aggregator given all of them."""
    subject = module.Subject(image=module.ScalarImage(tensor=tensor.clone()))
    sampler = module.GridSampler(subject, 6, 2)
    aggregator = module.GridAggregator(sampler, overlap_mode=mode)
    _add_patches(aggregator, sampler, range(len(sampler)), lambda batch: batch)
    return sampler, aggregator


@pytest.mark.parametrize("mode", ["average", "hann"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32])
def test_weights_of_a_partial_grid_match_torchio(mode, dtype) -> None:
    # Dropping patches breaks the product structure the separable weights need,
    # so the aggregator must fall back to accumulating a weight volume.
    tensor = _volume((15, 13, 11), 2, dtype)
    outputs = []
    for module in (tio, torchio):
        subject = module.Subject(image=module.ScalarImage(tensor=tensor.clone()))
        sampler = module.GridSampler(subject, (7, 5, 5), (4, 2, 2))
        aggregator = module.GridAggregator(sampler, overlap_mode=mode)
        kept = [i for i in range(len(sampler)) if i % 5 != 2]
        _add_patches(aggregator, sampler, kept, lambda batch: batch * 3)
        outputs.append(aggregator.get_output_tensor())
    ours, theirs = outputs
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-5, equal_nan=True)
    assert torch.isnan(ours).any() == torch.isnan(theirs).any()


@pytest.mark.parametrize("mode", ["average", "hann"])
def test_repeated_patches_count_twice(mode) -> None:
    # Every patch once, then the first again with another prediction: the
    # locations repeat a row, so the weights cannot be separable.
    tensor = _volume((10, 10, 10), 1)
    outputs = []
    for module in (tio, torchio):
        sampler, aggregator = _full_grid(module, tensor, mode)
        _add_patches(aggregator, sampler, [0], lambda batch: batch + 10)
        outputs.append(aggregator.get_output_tensor())
    ours, theirs = outputs
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-5)
    assert not torch.allclose(ours, tensor)


def test_get_output_tensor_can_be_called_again_and_more_batches_added() -> None:
    tensor = _volume((12, 11, 10), 1)
    subject = tio.Subject(image=tio.ScalarImage(tensor=tensor))
    sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 2))
    aggregator = tio.GridAggregator(sampler, overlap_mode="average")
    half = len(sampler) // 2
    _add_patches(aggregator, sampler, range(half), lambda batch: batch)
    first = aggregator.get_output_tensor()
    torch.testing.assert_close(
        first, aggregator.get_output_tensor(), rtol=0, atol=0, equal_nan=True
    )
    _add_patches(aggregator, sampler, range(half, len(sampler)), lambda batch: batch)
    assert torch.equal(aggregator.get_output_tensor(), tensor)


def test_batched_grid_patches_equal_single_patches() -> None:
    affine = np.diag([2.0, 1.5, 1.0, 1.0])
    tensor = _volume((14, 12, 10), 2)
    labels = (tensor[:1] > 50).to(torch.uint8)
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=tensor, affine=affine),
        label=tio.LabelMap(tensor=labels, affine=affine),
    )
    sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 0))
    indices = [0, 3, 4, len(sampler) - 1]
    batched = sampler.__getitems__(indices)
    for index, patch in zip(indices, batched, strict=True):
        single = sampler[index]
        for name in ("image", "label"):
            assert torch.equal(patch[name].data, single[name].data)
            np.testing.assert_array_equal(patch[name].affine, single[name].affine)
        assert torch.equal(patch["location"], single["location"])
    loader = tio.SubjectsLoader(sampler, batch_size=4)
    batch = next(iter(loader))
    expected = torch.stack([sampler[i]["image"].data for i in range(4)])
    assert torch.equal(batch["image"][tio.DATA], expected)
    # The collated batch owns its memory: writing to it leaves the subject intact.
    batch["image"][tio.DATA].zero_()
    assert torch.equal(subject["image"].data, tensor)


def test_patches_of_an_image_read_from_its_path_take_the_fast_path(tmp_path: Path) -> None:
    from torchvox.data.sampler.sampler import _is_plain_image

    path = tmp_path / "t1.nii.gz"
    tio.ScalarImage(tensor=_volume((20, 18, 16), 1), affine=np.diag([0.9, 1.1, 1.3, 1])).save(path)
    subject = tio.Subject(t1=tio.ScalarImage(path))
    subject.load()
    # Read from disk, the image's items were written in another order.
    assert _is_plain_image(subject["t1"])
    sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 0))
    indices = [0, 5, len(sampler) - 1]
    for index, fast in zip(indices, sampler.__getitems__(indices), strict=True):
        slow = sampler[index]
        assert list(dict.keys(fast["t1"])) == list(dict.keys(slow["t1"]))
        assert torch.equal(fast["t1"].data, slow["t1"].data)
        np.testing.assert_array_equal(fast["t1"].affine, slow["t1"].affine)
        assert fast["t1"].path == slow["t1"].path == path
        assert type(fast["t1"]) is tio.ScalarImage
        assert fast["t1"][tio.TYPE] == tio.INTENSITY


def test_batches_held_by_the_caller_are_never_overwritten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tensor = _volume((20, 18, 16), 1)
    subject = tio.Subject(image=tio.ScalarImage(tensor=tensor))
    sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 0))
    loader = tio.SubjectsLoader(sampler, batch_size=4)
    kept = [batch["image"][tio.DATA] for batch in loader]
    expected = torch.stack([sampler[i]["image"].data for i in range(len(sampler))])
    assert torch.equal(torch.cat(kept), expected)
    # The kept batches fill the pool; dropped batches are still recycled, since
    # a loop holds at most two at once. Counted as allocations, not addresses,
    # which malloc may hand out again.
    allocations = []
    allocate = np.empty

    def counting_empty(*args: object, **kwargs: object) -> np.ndarray:
        array = allocate(*args, **kwargs)  # type: ignore[call-overload]
        allocations.append(array.shape)
        return array

    monkeypatch.setattr(np, "empty", counting_empty)
    batches = 0
    for batch in loader:
        batches += 1
        assert torch.equal(batch["image"][tio.DATA], expected[4 * (batches - 1) : 4 * batches])
    assert batches > 4
    assert len(allocations) <= 2
    assert torch.equal(torch.cat(kept), expected)


def test_batch_buffers_follow_dtype_and_size_changes() -> None:
    tensor = _volume((12, 11, 10), 2)
    subject = tio.Subject(image=tio.ScalarImage(tensor=tensor))
    sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 0))
    for indices in ([0, 1, 2], [3], [4, 5, 6, 7], [1, 0]):
        patches = sampler.__getitems__(indices)
        for index, patch in zip(indices, patches, strict=True):
            assert torch.equal(patch["image"].data, sampler[index]["image"].data)
    sampler.subject["image"].set_data(tensor.to(torch.float64))
    sampler._arrays = None
    (patch,) = sampler.__getitems__([2])
    assert patch["image"].data.dtype == torch.float64
    assert torch.equal(patch["image"].data, sampler[2]["image"].data)


def test_fast_patch_subjects_equal_cropped_subjects() -> None:
    affine = np.diag([2.0, 1.5, 1.0, 1.0])
    affine[:3, 3] = [3, -2, 5]
    tensor = _volume((14, 12, 10), 2)
    plain = tio.Subject(
        image=tio.ScalarImage(tensor=tensor, affine=affine),
        label=tio.LabelMap(tensor=(tensor[:1] > 50).to(torch.uint8), affine=affine),
        age=45,
        notes={"site": "a"},
    )
    plain = tio.Flip(axes=(0,))(plain)
    assert plain.applied_transforms
    # An image with metadata takes the general path; both must agree.
    general = tio.Subject(image=tio.ScalarImage(tensor=tensor, affine=affine, scanner="x"), age=45)
    for subject in (plain, general):
        sampler = tio.GridSampler(subject, (6, 5, 4), (2, 2, 0))
        indices = [0, 5, len(sampler) - 1]
        for index, patch in zip(indices, sampler.__getitems__(indices), strict=True):
            single = tio.data.sampler.sampler.crop_subject(
                subject, sampler.locations[index][:3], (6, 5, 4), consume_random=False
            )
            assert type(patch) is type(single)
            assert list(patch.keys()) == list(single.keys())
            assert patch.applied_transforms == single.applied_transforms
            assert torch.equal(patch["location"], single["location"])
            for key, value in single.items():
                if isinstance(value, tio.Image):
                    assert type(patch[key]) is type(value)
                    assert list(patch[key].keys()) == list(value.keys())
                    assert torch.equal(patch[key].data, value.data)
                    np.testing.assert_array_equal(patch[key].affine, value.affine)
                    assert patch[key].path == value.path
                    assert patch[key]["type"] == value["type"]
                elif key != "location":
                    assert patch[key] == value
            if "notes" in patch:
                assert patch["notes"] is not subject["notes"]
            assert patch.age == 45


@pytest.mark.parametrize("mode", ["average", "hann"])
def test_batches_added_after_the_output_was_read(mode) -> None:
    # The output of a full grid is divided in place and returned; adding more
    # afterwards must rebuild the sum and leave the returned tensor untouched.
    tensor = _volume((10, 10, 10), 1)
    outputs = []
    for module in (tio, torchio):
        sampler, aggregator = _full_grid(module, tensor, mode)
        first = aggregator.get_output_tensor()
        kept = first.clone()
        again = aggregator.get_output_tensor()
        torch.testing.assert_close(again, kept, rtol=0, atol=0)
        _add_patches(aggregator, sampler, [0], lambda batch: batch + 10)
        outputs.append(aggregator.get_output_tensor())
        assert torch.equal(first, kept)
    ours, theirs = outputs
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("mode", ["crop", "average", "hann"])
@pytest.mark.parametrize("padding_mode", [None, "constant"])
@pytest.mark.parametrize("batch_size", [2, 4, 7])
def test_output_read_during_the_pass_matches_torchio(mode, padding_mode, batch_size) -> None:
    # The first batches may form a small complete grid of their own: reading
    # the output then must neither divide the voxels no patch reached yet
    # (0 / 0) nor leave that division in the sum the later batches extend.
    tensor = _volume((10, 9, 8), 1)
    results = []
    for module in (tio, torchio):
        subject = module.Subject(img=module.ScalarImage(tensor=tensor.clone()))
        sampler = module.GridSampler(subject, 4, 2, padding_mode=padding_mode)
        aggregator = module.GridAggregator(sampler, overlap_mode=mode)
        batches = list(module.SubjectsLoader(sampler, batch_size=batch_size))
        early = []
        for batch in batches:
            aggregator.add_batch(batch["img"]["data"], batch["location"])
            early.append(aggregator.get_output_tensor().clone())
        results.append((early, aggregator.get_output_tensor()))
    (ours_early, ours), (theirs_early, theirs) = results
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours, tensor, rtol=1e-6, atol=1e-6)
    for mine, reference in zip(ours_early, theirs_early, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int8, torch.bool])
@pytest.mark.parametrize("mode", ["crop", "average", "hann"])
def test_narrow_batch_dtypes_are_aggregated_like_torchio(dtype, mode) -> None:
    # Mixed-precision inference gives float16 / bfloat16 predictions.
    tensor = _volume((10, 9, 8), 1)

    def aggregate(module, convert):
        sampler = module.GridSampler(module.Subject(img=module.ScalarImage(tensor=tensor)), 4, 2)
        aggregator = module.GridAggregator(sampler, overlap_mode=mode)
        for batch in module.SubjectsLoader(sampler, batch_size=4):
            aggregator.add_batch(convert(batch["img"]["data"]), batch["location"])
        return aggregator.get_output_tensor()

    def narrow(data):
        return data > 0 if dtype == torch.bool else (data * 10).to(dtype)

    ours = aggregate(tio, narrow)
    if dtype == torch.bool and mode == "average":
        with pytest.raises(RuntimeError):  # TorchIO cannot sum booleans
            aggregate(torchio, narrow)
        torch.testing.assert_close(ours, aggregate(tio, lambda data: narrow(data).float()))
        return
    theirs = aggregate(torchio, narrow)
    assert ours.dtype == theirs.dtype
    if mode == "crop":
        assert torch.equal(ours, theirs)
    elif dtype == torch.int8:
        # TorchIO sums int8 in int8, where it wraps around; the exact average:
        torch.testing.assert_close(ours, aggregate(tio, lambda data: narrow(data).float()))
    else:
        # Summed in float32 rather than in the batch dtype: a few roundings apart.
        tolerance = {torch.float16: 1e-2, torch.bfloat16: 4e-2}.get(dtype, 1e-6)
        torch.testing.assert_close(ours.float(), theirs.float(), rtol=tolerance, atol=1e-6)


def test_complex_batches_are_refused() -> None:
    sampler = tio.GridSampler(tio.Subject(img=tio.ScalarImage(tensor=_volume((8, 8, 8), 1))), 4)
    batch = next(iter(tio.SubjectsLoader(sampler, batch_size=2)))
    with pytest.raises(TypeError, match="Complex"):
        tio.GridAggregator(sampler).add_batch(
            batch["img"]["data"].to(torch.complex64), batch["location"]
        )


@pytest.mark.parametrize("mode", ["crop", "average", "hann"])
def test_grid_results_do_not_depend_on_the_thread_count(mode) -> None:
    tensor = _volume((23, 21, 19), 2)
    results = []
    try:
        for threads in (1, 2):
            tio.set_num_threads(threads)
            output, _ = _aggregate(tio, tensor, (8, 7, 6), (4, 2, 2), mode)
            results.append(output)
    finally:
        tio.set_num_threads(None)
    assert torch.equal(results[0], results[1])


def test_recycled_batches_through_worker_processes() -> None:
    tensor = _volume((20, 18, 16), 1)
    subject = tio.Subject(image=tio.ScalarImage(tensor=tensor))
    sampler = tio.GridSampler(subject, (8, 7, 6), (2, 2, 2))
    aggregator = tio.GridAggregator(sampler, overlap_mode="average")
    loader = tio.SubjectsLoader(sampler, batch_size=4, num_workers=2)
    kept = []
    for batch in loader:
        kept.append(batch["image"][tio.DATA])
        aggregator.add_batch(batch["image"][tio.DATA], batch[tio.LOCATION])
    expected = torch.stack([sampler[i]["image"].data for i in range(len(sampler))])
    assert torch.equal(torch.cat(kept), expected)
    assert torch.equal(aggregator.get_output_tensor(), tensor)


def _dirty_output_pool(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """Leaves dropped aggregator outputs of ``shape`` full of 77s in the pool."""
    for _ in range(2):
        tensor = torch.full((shape[0], *shape[1:]), 77, dtype=dtype)
        output, _ = _aggregate(tio, tensor, shape[1:], 0, "crop")
        assert torch.equal(output, tensor)
        del output


@pytest.mark.parametrize("mode", ["crop", "average", "hann"])
@pytest.mark.parametrize(("shape", "patch", "overlap", "padding_mode"), CASES)
def test_recycled_outputs_match_torchio(mode, shape, patch, overlap, padding_mode) -> None:
    tensor = _volume(shape)
    _dirty_output_pool(tensor.shape, tensor.dtype)
    ours, _ = _aggregate(tio, tensor, patch, overlap, mode, padding_mode, model=lambda b: b * 2)
    theirs, _ = _aggregate(
        torchio, tensor, patch, overlap, mode, padding_mode, model=lambda b: b * 2
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("downsampling_factor", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int16])
def test_recycled_crop_output_of_a_partial_grid_is_zero_where_no_patch_wrote(
    downsampling_factor, dtype
) -> None:
    # Some patches are never added: their voxels must read 0, as in a new
    # volume, not what the previous user of the memory left there. TorchIO is
    # the reference without downsampling; with it, TorchIO trims the overlap of
    # the input (not of the output) and torchvox deliberately differs, so the
    # reference is then torchvox's output in a new array.
    tensor = _volume((16, 14, 12), 2, dtype)
    shape = (2, *(n // downsampling_factor for n in (16, 14, 12)))

    def model(batch: torch.Tensor) -> torch.Tensor:
        return batch[..., ::downsampling_factor, ::downsampling_factor, ::downsampling_factor]

    def aggregate(module, recycled: bool) -> torch.Tensor:
        if recycled:
            _dirty_output_pool(shape, dtype)
        else:
            aggregator_module._OUTPUTS.clear()
        subject = module.Subject(image=module.ScalarImage(tensor=tensor.clone()))
        sampler = module.GridSampler(subject, (6, 6, 4), (2, 2, 2))
        aggregator = module.GridAggregator(
            sampler, overlap_mode="crop", downsampling_factor=downsampling_factor
        )
        if recycled:
            assert aggregator_module._OUTPUTS._arrays
        kept = [i for i in range(len(sampler)) if i % 4 != 1]
        _add_patches(aggregator, sampler, kept, model)
        return aggregator.get_output_tensor()

    expected = aggregate(torchio if downsampling_factor == 1 else tio, recycled=False)
    ours = aggregate(tio, recycled=True)
    assert (expected == 0).any()
    assert torch.equal(ours, expected)


@pytest.mark.parametrize("mode", ["average", "hann"])
def test_recycled_weighted_output_of_a_partial_grid_matches_torchio(mode) -> None:
    # The patches of the last row of I starts are never added: their planes
    # are reached by no patch (0 / 0, NaN in TorchIO), the others by some. A
    # recycled output full of 77s must give what a new one gives, added in two
    # calls so that planes zeroed by the first are not zeroed again.
    tensor = _volume((16, 14, 12), 2)
    outputs = []
    for module in (tio, torchio):
        if module is tio:
            _dirty_output_pool(tensor.shape, tensor.dtype)
        subject = module.Subject(image=module.ScalarImage(tensor=tensor.clone()))
        sampler = module.GridSampler(subject, (6, 6, 4), (2, 2, 2))
        aggregator = module.GridAggregator(sampler, overlap_mode=mode)
        if module is tio:
            assert aggregator_module._OUTPUTS._arrays
        last_start = int(sampler.locations[:, 0].max())
        kept = [i for i in range(len(sampler)) if sampler.locations[i][0] != last_start]
        half = len(kept) // 2
        for indices in (kept[:half], kept[half:]):
            patches = [sampler[i] for i in indices]
            batch = torch.stack([p["image"].data for p in patches]) * 2
            locations = torch.stack([p["location"] for p in patches])
            aggregator.add_batch(batch, locations)
        outputs.append(aggregator.get_output_tensor())
    ours, theirs = outputs
    assert theirs[:, -1].isnan().all() and not theirs[:, 0].isnan().any()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-4, equal_nan=True)


def test_recycled_crop_output_of_a_padded_grid_is_zero_on_the_unwritten_border() -> None:
    # With padding, crop mode trims half the overlap at the volume border too,
    # so a border slab of the padded output is never written. It is cropped
    # away, but the aggregator's own array must still hold what a new one
    # would: TorchIO's padded output tensor.
    tensor = _volume((13, 11, 9), 1)
    arrays = []
    for module in (tio, torchio):
        if module is tio:
            _dirty_output_pool((1, 17, 15, 13), tensor.dtype)
        subject = module.Subject(image=module.ScalarImage(tensor=tensor.clone()))
        sampler = module.GridSampler(subject, 6, 4, padding_mode="constant")
        aggregator = module.GridAggregator(sampler, overlap_mode="crop")
        _add_patches(aggregator, sampler, range(len(sampler)), lambda batch: batch + 1)
        assert torch.equal(aggregator.get_output_tensor(), tensor + 1)
        if module is tio:
            arrays.append(torch.from_numpy(aggregator._output_array))
        else:
            arrays.append(aggregator._output_tensor)
    ours, theirs = arrays
    assert ours.shape == (1, 17, 15, 13)
    assert torch.equal(ours, theirs)


def test_an_output_the_caller_keeps_is_never_recycled() -> None:
    first_input = _volume((12, 10, 8), 1)
    first, _ = _aggregate(tio, first_input, 6, 2, "crop")
    expected = first.clone()
    for mode in ("crop", "average", "hann"):
        output, _ = _aggregate(tio, first_input + 1, 6, 2, mode)
        assert not np.shares_memory(output.numpy(), first.numpy())
        del output
    assert torch.equal(first, expected)


def _aggregate_in_order(tensor, mode, order, batch_size, downsampling_factor=1, **grid_kwargs):
    """Our aggregation of ``tensor``'s grid patches, added in ``order`` (a "model"
    that halves, offsets and, with a downsampling factor, subsamples them)."""
    subject = tio.Subject(image=tio.ScalarImage(tensor=tensor.clone()))
    sampler = tio.GridSampler(subject, **grid_kwargs)
    aggregator = tio.GridAggregator(
        sampler, overlap_mode=mode, downsampling_factor=downsampling_factor
    )
    step = downsampling_factor
    indices = order(len(sampler))
    for first in range(0, len(indices), batch_size):
        patches = [sampler[i] for i in indices[first : first + batch_size]]
        batch = torch.stack([p["image"].data for p in patches])
        batch = batch[..., ::step, ::step, ::step] * 0.5 + 0.25
        aggregator.add_batch(batch, torch.stack([p["location"] for p in patches]))
    return aggregator.get_output_tensor()


@pytest.mark.parametrize("mode", ["average", "hann"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("shape", "grid_kwargs", "downsampling_factor"),
    [
        ((17, 13, 11), {"patch_size": (6, 5, 4), "patch_overlap": (2, 2, 0)}, 1),
        ((15, 15, 9), {"patch_size": 7, "patch_overlap": 4, "padding_mode": "edge"}, 1),
        ((20, 16, 12), {"patch_size": (8, 8, 4), "patch_overlap": (4, 4, 0)}, 2),
    ],
)
@pytest.mark.parametrize("recycled", [False, True])
def test_planes_divided_as_they_complete_equal_a_division_at_the_end(
    mode, dtype, shape, grid_kwargs, downsampling_factor, recycled, monkeypatch
) -> None:
    # The aggregator divides each plane as soon as its last patch is added;
    # without the sampler's grid it sums everything and divides at the end.
    # Same batches, same order: the two must agree bit for bit.
    from torchvox.data.inference._grid_progress import GridProgress

    tensor = _volume(shape, 2, dtype)

    def shuffled(count: int) -> list[int]:
        return torch.randperm(count, generator=torch.Generator().manual_seed(3)).tolist()

    # The aggregator's output: padded by the overlap (if the sampler pads),
    # then downsampled.
    padding = grid_kwargs["patch_overlap"] if "padding_mode" in grid_kwargs else 0
    output_shape = (2, *((n + padding) // downsampling_factor for n in shape))

    def run() -> torch.Tensor:
        if recycled:
            _dirty_output_pool(output_shape, dtype)
            assert aggregator_module._OUTPUTS._arrays
        return _aggregate_in_order(
            tensor, mode, shuffled, 5, downsampling_factor=downsampling_factor, **grid_kwargs
        )

    early = run()
    monkeypatch.setattr(GridProgress, "of_locations", classmethod(lambda cls, *args: None))
    at_end = run()
    # Hann-weighted patches are summed in float32, as in TorchIO.
    assert early.dtype == at_end.dtype == (torch.float32 if mode == "hann" else dtype)
    assert torch.equal(early, at_end)


def test_grid_progress_reports_each_plane_once_when_its_last_patch_arrives() -> None:
    from torchvox.data.inference._grid_progress import GridProgress

    shape, patch = (23, 9, 8), (8, 5, 4)
    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.zeros(1, *shape)))
    locations = tio.GridSampler(subject, patch, (2, 2, 0)).locations
    progress = GridProgress.of_locations(locations, 1, shape[0])
    assert progress is not None
    generator = torch.Generator().manual_seed(1)
    order = torch.randperm(len(locations), generator=generator).numpy()
    added = np.zeros(len(locations), dtype=bool)
    reported = np.zeros(shape[0], dtype=bool)
    # Off the grid, another shape, or repeated within a batch: nothing recorded.
    assert progress.add(locations[:1, :3] + 1, patch) is None
    assert progress.add(locations[:1, :3], (8, 5, 3)) is None
    assert progress.add(locations[[0, 0], :3], patch) is None
    for first in range(0, len(order), 4):
        batch = order[first : first + 4]
        newly = progress.add(locations[batch, :3], patch)
        assert newly is not None
        added[batch] = True
        # Brute force: a plane is complete once every patch reaching it is added.
        complete = np.array(
            [added[(locations[:, 0] <= i) & (i < locations[:, 3])].all() for i in range(shape[0])]
        )
        np.testing.assert_array_equal(newly, complete & ~reported)
        reported |= newly
    assert progress.complete and reported.all()
    # A patch added again breaks the grid.
    assert progress.add(locations[:1, :3], patch) is None
    # Not every combination of the per-axis starts, or patches of two shapes:
    # the weights are not known in advance.
    diagonal = np.array([[0, 0, 0, 8, 5, 4], [1, 1, 0, 9, 6, 4]])
    assert GridProgress.of_locations(diagonal, 1, 9) is None
    two_shapes = np.array([[0, 0, 0, 8, 5, 4], [1, 0, 0, 8, 5, 4]])
    assert GridProgress.of_locations(two_shapes, 1, 9) is None
    assert GridProgress.of_locations(two_shapes[:1], 1, 9) is not None


@pytest.mark.parametrize("mode", ["average", "hann"])
def test_a_patch_off_the_grid_after_planes_were_divided_matches_torchio(mode) -> None:
    # The first half of the grid completes some planes (divided at once); a
    # patch shifted off the grid then makes the weights non-separable, so the
    # divided planes must become sums again before it is added.
    tensor = _volume((16, 12, 10), 1)
    outputs = []
    for module in (tio, torchio):
        subject = module.Subject(image=module.ScalarImage(tensor=tensor.clone()))
        sampler = module.GridSampler(subject, (6, 6, 5), (2, 2, 0))
        aggregator = module.GridAggregator(sampler, overlap_mode=mode)
        half = len(sampler) // 2
        _add_patches(aggregator, sampler, range(half), lambda batch: batch * 3)
        shifted = sampler[0]
        location = shifted["location"].clone()
        location[[0, 3]] += 1
        aggregator.add_batch(shifted["image"].data[None] + 5, location[None])
        _add_patches(aggregator, sampler, range(half, len(sampler)), lambda batch: batch * 3)
        outputs.append(aggregator.get_output_tensor())
    ours, theirs = outputs
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-5)
