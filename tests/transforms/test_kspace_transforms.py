"""Motion, Ghosting and Spike (and their Random* variants) against TorchIO 1.2.1."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torchio

import torchvox as tio
from torchvox.transforms.intensity.motion import euler_matrix, segments_from_times

AFFINE = np.array(
    [[1.5, 0.0, 0.0, -10.0], [0.0, 1.2, 0.0, 5.0], [0.0, 0.0, 0.9, 3.0], [0.0, 0.0, 0.0, 1.0]]
)


def _pair(tensor: torch.Tensor, affine: np.ndarray = AFFINE):
    ours = tio.Subject(t1=tio.ScalarImage(tensor=tensor.clone(), affine=affine))
    theirs = torchio.Subject(t1=torchio.ScalarImage(tensor=tensor.clone(), affine=affine))
    return ours, theirs


def _compare(ours_transform, theirs_transform, tensor, atol=2e-5):
    ours, theirs = _pair(tensor)
    a = ours_transform(ours).t1.data
    b = theirs_transform(theirs).t1.data
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    scale = max(float(b.abs().max()), 1.0)
    torch.testing.assert_close(a, b, atol=atol * scale, rtol=0)
    return a


@pytest.fixture
def tensor() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 21, 18, 15, generator=generator) * 100


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize(("num_ghosts", "intensity", "restore"), [(4, 0.8, None), (2, 1.0, 0.2)])
def test_ghosting_matches_torchio(tensor, axis, num_ghosts, intensity, restore):
    args = (num_ghosts, axis, intensity, restore)
    _compare(tio.Ghosting(*args), torchio.Ghosting(*args), tensor)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_ghosting_prime_shape_matches_torchio(axis):
    # Prime lengths above 13 take the padded-convolution route of the kernel.
    generator = torch.Generator().manual_seed(1)
    tensor = torch.rand(1, 23, 19, 29, generator=generator) * 100
    args = (5, axis, 0.9, None)
    _compare(tio.Ghosting(*args), torchio.Ghosting(*args), tensor)


def test_ghosting_identity_cases_keep_dtype(tensor):
    data = tensor.to(torch.int16)
    ours, _ = _pair(data)
    assert tio.Ghosting(0, 1, 0.5, None)(ours).t1.data.dtype == torch.int16
    out = tio.Ghosting(3, 1, 0.0, None)(ours).t1.data
    assert torch.equal(out, data)


def test_ghosting_integer_and_float64_inputs(tensor):
    for dtype in (torch.int16, torch.float64):
        _compare(tio.Ghosting(3, 0, 0.6, None), torchio.Ghosting(3, 0, 0.6, None), tensor.to(dtype))


@pytest.mark.parametrize("shift", [0.0, -50.0])
def test_spike_matches_torchio(tensor, shift):
    positions = np.array([[0.1, 0.5, 0.9], [0.3, 0.3, 0.3], [0.5, 0.5, 0.5]], dtype=np.float32)
    data = tensor + shift
    _compare(tio.Spike(positions, 1.5), torchio.Spike(positions, 1.5), data, atol=5e-6)


def test_spike_inverse_matches_torchio(tensor):
    positions = np.array([[0.2, 0.7, 0.4]])
    ours_t = tio.Spike(positions, 2.0).inverse()
    theirs_t = torchio.Spike(positions, 2.0).inverse()
    _compare(ours_t, theirs_t, tensor, atol=5e-6)


def test_spike_zero_intensity_is_identity(tensor):
    ours, _ = _pair(tensor)
    assert torch.equal(tio.Spike(np.array([[0.1, 0.2, 0.3]]), 0)(ours).t1.data, tensor)


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_motion_matches_torchio(tensor, interpolation):
    degrees = np.array([[5.0, -3.0, 8.0], [2.0, 9.0, -4.0]])
    translation = np.array([[2.0, -3.0, 1.0], [-1.0, 2.0, 4.0]])
    times = np.array([0.3, 0.62])
    args = (degrees, translation, times, interpolation)
    _compare(tio.Motion(*args), torchio.Motion(*args), tensor, atol=5e-5)


def test_motion_late_times_and_integer_input(tensor):
    # No time > 0.5: the unmoved image fills the last segment.
    args = (np.array([[10.0, 0, 0]]), np.array([[0.0, 5.0, 0.0]]), np.array([0.4]), "linear")
    _compare(tio.Motion(*args), torchio.Motion(*args), tensor.to(torch.int16), atol=5e-5)


def test_euler_matrix_matches_simpleitk():
    transform = sitk.Euler3DTransform()
    transform.SetRotation(0.3, -0.7, 1.1)
    expected = np.array(transform.GetMatrix()).reshape(3, 3)
    np.testing.assert_allclose(euler_matrix(np.array([0.3, -0.7, 1.1])), expected, atol=1e-15)


def test_segments_follow_torchio_sorting():
    ends, sources = segments_from_times(np.array([0.2, 0.45, 0.7]), 10)
    assert ends == [2, 4, 7, 10]
    # First time > 0.5 is times[2]: segment 2 ([4, 7), holding the centre 5)
    # takes the unmoved image and segment 0 the copy moved by transform 2.
    assert sources == [2, 1, 0, 3]
    with pytest.raises(ValueError):
        segments_from_times(np.array([0.6, 0.2]), 10)
    with pytest.raises(ValueError):
        segments_from_times(np.array([1.2]), 10)


@pytest.mark.parametrize(
    ("ours_class", "theirs_class", "kwargs"),
    [
        (tio.RandomGhosting, torchio.RandomGhosting, {"restore": (0.1, 0.3)}),
        (tio.RandomSpike, torchio.RandomSpike, {"num_spikes": (1, 3)}),
        (tio.RandomMotion, torchio.RandomMotion, {}),
    ],
)
def test_random_transforms_draw_torchio_parameters(tensor, ours_class, theirs_class, kwargs):
    ours, theirs = _pair(tensor)
    torch.manual_seed(42)
    a = ours_class(**kwargs)(ours)
    torch.manual_seed(42)
    b = theirs_class(**kwargs)(theirs)
    scale = float(b.t1.data.abs().max())
    torch.testing.assert_close(a.t1.data, b.t1.data, atol=5e-5 * scale, rtol=0)
    # History holds the deterministic transform; replaying it is exact.
    record = a.history[-1]
    assert type(record).__name__ == ours_class.__name__.removeprefix("Random")
    replayed = record(tio.Subject(t1=tio.ScalarImage(tensor=tensor.clone(), affine=AFFINE)))
    assert torch.equal(replayed.t1.data, a.t1.data)


def test_label_maps_are_untouched(tensor):
    label = (tensor[:1] > 50).to(torch.int16)
    subject = tio.Subject(
        t1=tio.ScalarImage(tensor=tensor, affine=AFFINE),
        seg=tio.LabelMap(tensor=label, affine=AFFINE),
    )
    for transform in (tio.RandomGhosting(), tio.RandomSpike(), tio.RandomMotion()):
        out = transform(subject)
        assert torch.equal(out.seg.data, label)
        assert not torch.equal(out.t1.data, tensor)


def test_per_image_parameter_dicts(tensor):
    subject = tio.Subject(
        a=tio.ScalarImage(tensor=tensor.clone(), affine=AFFINE),
        b=tio.ScalarImage(tensor=tensor.clone(), affine=AFFINE),
    )
    out = tio.Ghosting(
        {"a": 2, "b": 5}, {"a": 0, "b": 2}, {"a": 0.5, "b": 0.9}, {"a": None, "b": 0.1}
    )(subject)
    single = tio.Ghosting(5, 2, 0.9, 0.1)(tio.ScalarImage(tensor=tensor.clone(), affine=AFFINE))
    assert torch.equal(out.b.data, single.data)
    assert not torch.equal(out.a.data, out.b.data)


def test_bad_arguments():
    with pytest.raises(ValueError):
        tio.RandomGhosting(num_ghosts=-1)
    with pytest.raises(ValueError):
        tio.RandomGhosting(axes=3)
    with pytest.raises(ValueError):
        tio.RandomGhosting(axes=None)
    with pytest.raises(ValueError):
        tio.RandomGhosting(restore=1.5)
    with pytest.raises(ValueError):
        tio.Ghosting(-2, 0, 0.5, None)
    with pytest.raises(ValueError):
        tio.Ghosting(2, 5, 0.5, None)
    with pytest.raises(ValueError):
        tio.Spike(np.array([[0.1, 1.0, 0.2]]), 1.0)
    with pytest.raises(ValueError):
        tio.Spike(np.array([[-0.1, 0.5, 0.2]]), 1.0)
    with pytest.raises(ValueError):
        tio.Spike(np.array([0.1, 0.5]), 1.0)
    with pytest.raises(ValueError):
        tio.RandomMotion(num_transforms=0)
    with pytest.raises(ValueError):
        tio.RandomMotion(image_interpolation="gaussian")
    with pytest.raises(ValueError):
        tio.Motion(np.zeros((1, 3)), np.zeros((1, 3)), np.array([0.5]), "welch")
    motion = tio.Motion(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0.7, 0.2]), "linear")
    with pytest.raises(ValueError):
        motion(tio.ScalarImage(tensor=torch.rand(1, 4, 4, 4)))
