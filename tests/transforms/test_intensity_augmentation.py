"""BiasField, Blur, Gamma, Noise (and Random* variants) against TorchIO 1.2.1, plus
every k-space and intensity augmentation on the MNI152 template."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio

import torchvox as tio

AFFINE = np.array(
    [[1.5, 0.0, 0.0, -10.0], [0.0, 0.8, 0.0, 5.0], [0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]]
)


@pytest.fixture
def tensor() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 17, 20, 13, generator=generator) * 50


def _run(transform, tensor, module=tio):
    image = module.ScalarImage(tensor=tensor.clone(), affine=AFFINE)
    return transform(module.Subject(t1=image)).t1.data


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int16])
@pytest.mark.parametrize("order", [0, 1, 3])
def test_bias_field_matches_torchio(tensor, dtype, order):
    n = (order + 1) * (order + 2) * (order + 3) // 6
    coefficients = np.linspace(-0.4, 0.45, n).tolist()
    data = tensor.to(dtype)
    a = _run(tio.BiasField(coefficients, order), data)
    b = _run(torchio.BiasField(coefficients, order), data, torchio)
    assert a.dtype == b.dtype
    torch.testing.assert_close(a, b, rtol=2e-6, atol=0)


def test_bias_field_inverse_and_zero_coefficients(tensor):
    transform = tio.BiasField(np.linspace(-0.3, 0.3, 20).tolist(), 3)
    ours = _run(transform.inverse(), tensor)
    theirs = _run(
        torchio.BiasField(np.linspace(-0.3, 0.3, 20).tolist(), 3).inverse(), tensor, torchio
    )
    torch.testing.assert_close(ours, theirs, rtol=2e-6, atol=0)
    assert torch.equal(_run(tio.BiasField([0.0] * 10, 2), tensor), tensor)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int16, torch.uint8])
@pytest.mark.parametrize("std", [(1.0, 2.0, 0.5), (0.0, 3.0, 0.0)])
def test_blur_matches_torchio(tensor, dtype, std):
    data = tensor.to(dtype)
    a = _run(tio.Blur(std), data)
    b = _run(torchio.Blur(std), data, torchio)
    assert a.dtype == b.dtype == dtype
    if dtype.is_floating_point:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * 50)
    else:
        # Integer passes truncate: identical up to rare off-by-one at exact integers.
        assert (a.to(torch.int64) - b.to(torch.int64)).abs().max() <= 1
        assert (a != b).float().mean() < 0.01


def test_blur_of_constant_image_keeps_the_mean():
    data = torch.full((1, 9, 8, 7), 4.5)
    out = _run(tio.Blur((3.0, 2.0, 5.0)), data)
    assert float(out.mean()) == pytest.approx(4.5, rel=1e-6)


@pytest.mark.parametrize("shift", [0.0, -25.0])
def test_gamma_matches_torchio_per_channel(tensor, shift):
    data = (tensor + shift).to(torch.float64)
    a = _run(tio.Gamma([0.7, 1.4]), data)
    b = _run(torchio.Gamma([0.7, 1.4]), data, torchio)
    assert a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-6)
    a = _run(tio.Gamma([0.7, 1.4]).inverse(), data)
    b = _run(torchio.Gamma([0.7, 1.4]).inverse(), data, torchio)
    torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-6)


def test_noise_seed_semantics_and_exact_inverse(tensor):
    noisy = _run(tio.Noise(0.5, 2.0, 123), tensor)
    assert torch.equal(noisy, _run(tio.Noise(0.5, 2.0, 123), tensor))
    difference = noisy.double() - tensor.double()
    assert float(difference.mean()) == pytest.approx(0.5, abs=0.05)
    assert float(difference.std()) == pytest.approx(2.0, rel=0.03)
    back = _run(tio.Noise(0.5, 2.0, 123).inverse(), noisy)
    torch.testing.assert_close(back, tensor, atol=1e-5, rtol=0)
    # TorchIO's dtype rules: ints become float32, float64 stays float64.
    assert _run(tio.Noise(0, 1, 1), tensor.to(torch.int16)).dtype == torch.float32
    assert _run(tio.Noise(0, 1, 1), tensor.double()).dtype == torch.float64


@pytest.mark.parametrize(
    ("ours_class", "theirs_class"),
    [
        (tio.RandomBiasField, torchio.RandomBiasField),
        (tio.RandomBlur, torchio.RandomBlur),
        (tio.RandomGamma, torchio.RandomGamma),
    ],
)
def test_random_variants_reproduce_torchio(tensor, ours_class, theirs_class):
    torch.manual_seed(3)
    a = _run(ours_class(), tensor)
    torch.manual_seed(3)
    b = _run(theirs_class(), tensor, torchio)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * 50)


def test_random_noise_draws_torchio_parameters_and_replays(tensor):
    torch.manual_seed(5)
    subject = tio.Subject(t1=tio.ScalarImage(tensor=tensor.clone(), affine=AFFINE))
    out = tio.RandomNoise()(subject)
    torch.manual_seed(5)
    reference = torchio.RandomNoise()
    torch.rand(1)  # the probability draw every call makes first
    mean, std, seed = reference.get_params(reference.mean_range, reference.std_range)
    record = out.history[-1]
    assert record.noise_mean == {"t1": mean}
    assert record.noise_std == {"t1": std}
    assert record.seed == {"t1": seed}
    restored = out.apply_inverse_transform()
    torch.testing.assert_close(restored.t1.data, tensor, atol=1e-5, rtol=0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        tio.RandomBlur(std=-1)
    with pytest.raises(ValueError):
        tio.Blur((1.0, -1.0, 1.0))
    with pytest.raises(ValueError):
        tio.RandomNoise(std=-0.5)
    with pytest.raises(ValueError):
        tio.Noise(0, -1, 1)
    with pytest.raises(TypeError):
        tio.Noise(0, 1, 1.5)
    with pytest.raises(TypeError):
        tio.RandomBiasField(order=2.0)
    with pytest.raises(ValueError):
        tio.RandomBiasField(order=-1)
    with pytest.raises(ValueError):
        tio.BiasField([0.1] * 19, 3)
    with pytest.raises(ValueError):
        tio.BiasField([0.1] * 20, {"t1": 3})
    with pytest.raises(ValueError):
        tio.Gamma(float("nan"))
    with pytest.raises(ValueError):
        tio.Gamma([1.0, 2.0, 3.0])(tio.ScalarImage(tensor=torch.rand(2, 3, 3, 3)))


ALL_RANDOM = [
    tio.RandomBiasField,
    tio.RandomBlur,
    tio.RandomGamma,
    tio.RandomNoise,
    tio.RandomGhosting,
    tio.RandomSpike,
    tio.RandomMotion,
]


@pytest.mark.parametrize("transform_class", ALL_RANDOM)
def test_mni152_through_every_random_transform(mni152, transform_class):
    torch.manual_seed(0)
    t1 = mni152.t1.data
    out = transform_class()(mni152)
    data = out.t1.data
    assert data.shape == t1.shape
    assert torch.isfinite(data).all()
    original = t1.double()
    result = data.double()
    # Plausible statistics: same order of magnitude, strongly correlated with the input.
    assert 0.2 < float(result.std()) / float(original.std()) < 5
    assert abs(float(result.mean()) - float(original.mean())) < 2 * float(original.std())
    correlation = torch.corrcoef(torch.stack([original.flatten(), result.flatten()]))[0, 1]
    assert float(correlation) > 0.5
    for name, image in mni152.get_images_dict(intensity_only=False).items():
        if not isinstance(image, tio.ScalarImage):
            assert torch.equal(out[name].data, image.data)
