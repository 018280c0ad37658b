"""GridSampler + GridAggregator against exact reconstruction and TorchIO 1.2.1's output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio

import torchvox as tio


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
