"""WeightedSampler's TorchIO sampling steps: each one as TorchIO computes it, and a
subclass that overrides one is sampled through it (TorchIO 1.2.1 as reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio

import torchvox as tio


def _probability_map(shape=(14, 12, 10), seed=3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(1, *shape, generator=generator)
    # Zeros inside too, so that sampling must skip them.
    return torch.where(values < 0.3, torch.zeros_like(values), values)


def _subject(module, probability_map: torch.Tensor):
    t1 = torch.arange(probability_map.numel(), dtype=torch.float32).reshape(probability_map.shape)
    return module.Subject(
        t1=module.ScalarImage(tensor=t1),
        sampling=module.Image(tensor=probability_map.clone(), type=module.SAMPLING_MAP),
    )


@pytest.mark.parametrize("patch_size", [(5, 4, 1), (6, 7, 2), 1, 9])
def test_steps_equal_torchio(patch_size) -> None:
    probability_map = _probability_map()
    ours = tio.WeightedSampler(patch_size, "sampling")
    theirs = torchio.WeightedSampler(patch_size, "sampling")
    their_subject = _subject(torchio, probability_map)
    our_subject = _subject(tio, probability_map)

    cleared = probability_map[0].numpy().astype(np.float64)
    expected = cleared.copy()
    tio.WeightedSampler.clear_probability_borders(cleared, ours.patch_size)
    torchio.WeightedSampler.clear_probability_borders(expected, theirs.patch_size)
    assert np.array_equal(cleared, expected)

    processed = ours.process_probability_map(probability_map, our_subject)
    expected = theirs.process_probability_map(probability_map, their_subject)
    np.testing.assert_array_equal(processed, expected)
    assert processed.sum() == pytest.approx(1)

    cdf = ours.get_cumulative_distribution_function(processed)
    np.testing.assert_array_equal(cdf, theirs.get_cumulative_distribution_function(processed))

    torch.manual_seed(5)
    corners = [ours.get_random_index_ini(processed, cdf) for _ in range(50)]
    torch.manual_seed(5)
    expected_corners = [theirs.get_random_index_ini(processed, cdf) for _ in range(50)]
    np.testing.assert_array_equal(corners, expected_corners)
    assert len({tuple(c) for c in corners}) > 1


def test_an_empty_map_and_a_foreign_cdf_are_errors() -> None:
    sampler = tio.WeightedSampler(5, "sampling")
    border_only = torch.zeros(1, 10, 10, 10)
    border_only[0, 0] = 1  # only where no patch can be centred
    with pytest.raises(RuntimeError, match="Empty probability map"):
        sampler.process_probability_map(border_only, _subject(tio, border_only))
    probability_map = _probability_map()
    processed = sampler.process_probability_map(probability_map, _subject(tio, probability_map))
    foreign = np.linspace(0, 1, processed.size)
    with pytest.raises(RuntimeError, match="CDF does not belong"):
        for _ in range(200):
            tio.WeightedSampler.sample_probability_map(processed, foreign)
    with pytest.raises(TypeError, match="NumPy array"):
        sampler.extract_patch(_subject(tio, _probability_map()), (0, 0, 0), foreign)


def _only_the_upper_half(base):
    """The same user-written sampler over either library: centres only in the upper
    half of axis 0 (a hook TorchIO's generator calls)."""

    class UpperHalfSampler(base):  # type: ignore[misc, valid-type]
        def process_probability_map(self, probability_map, subject):
            data = super().process_probability_map(probability_map, subject)
            data[: data.shape[0] // 2] = 0
            return data / data.sum()

    return UpperHalfSampler


def test_a_subclass_overriding_a_step_is_sampled_through_it() -> None:
    probability_map = _probability_map()
    locations = []
    for module in (tio, torchio):
        sampler = _only_the_upper_half(module.WeightedSampler)(4, "sampling")
        torch.manual_seed(11)
        patches = list(sampler(_subject(module, probability_map), num_patches=40))
        locations.append(torch.stack([patch["location"] for patch in patches]))
    ours, theirs = locations
    assert torch.equal(ours, theirs)
    # Centres (corner + 2) all in the upper half of axis 0.
    assert (ours[:, 0] + 2 >= 7).all()


def test_the_native_path_draws_what_the_steps_draw() -> None:
    # A subclass whose hook only calls its parent takes the step-by-step path;
    # the plain sampler the native one. Same seed, same patches.
    class Stepwise(tio.WeightedSampler):
        def sample_probability_map(self, probability_map, cdf):  # type: ignore[override]
            return super().sample_probability_map(probability_map, cdf)

    probability_map = _probability_map()
    results = []
    for sampler in (tio.WeightedSampler(3, "sampling"), Stepwise(3, "sampling")):
        assert sampler._uses_own_sampling_steps() is (type(sampler) is Stepwise)
        torch.manual_seed(2)
        patches = list(sampler(_subject(tio, probability_map), num_patches=30))
        after = torch.rand(1)
        results.append((torch.stack([p["location"] for p in patches]), after))
    (native, native_after), (steps, steps_after) = results
    assert torch.equal(native, steps)
    # Both consumed the same random numbers.
    assert torch.equal(native_after, steps_after)
