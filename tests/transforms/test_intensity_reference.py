"""Intensity transforms compared with TorchIO 1.2.1 on identical inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transform_helpers import assert_same_subject, make_pair, run_both, torchio

import torchvox as tio

pytestmark = [
    pytest.mark.reference,
    pytest.mark.filterwarnings("ignore:Expanding mask with shape:RuntimeWarning"),
]

MASKING_METHODS = [
    None,
    "label",
    "Left",
    "right",
    "Anterior",
    "Posterior",
    "Inferior",
    "superior",
    1,
    (1, 2, 0),
    (0, 1, 2, 0, 1, 3),
]


def _mean_mask(tensor):
    return tensor > tensor.float().mean()


@pytest.mark.parametrize("masking_method", [*MASKING_METHODS, _mean_mask])
@pytest.mark.parametrize("image_dtype", [np.float32, np.float64, np.int16])
def test_z_normalization(masking_method, image_dtype):
    ours, theirs = run_both(
        lambda: tio.ZNormalization(masking_method=masking_method),
        lambda: torchio.ZNormalization(masking_method=masking_method),
        image_dtype=image_dtype,
        shape=(1, 7, 8, 9),
    )
    assert ours["image"].data.dtype == torch.float32
    assert_same_subject(ours, theirs, exact=False)


def test_z_normalization_constant_image_raises():
    subject, _ = make_pair()
    subject["image"].set_data(torch.ones_like(subject["image"].data))
    with pytest.raises(RuntimeError, match="Standard deviation is 0"):
        tio.ZNormalization()(subject)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"out_min_max": (-1, 1)},
        {"out_min_max": 3},
        {"percentiles": (0.5, 99.5)},
        {"percentiles": 90},
        {"in_min_max": (-100, 300)},
        {"out_min_max": (2, 5), "percentiles": (10, 80), "in_min_max": (0, 150)},
    ],
)
@pytest.mark.parametrize("masking_method", [None, "label", "Left", (1, 2, 0), _mean_mask])
@pytest.mark.parametrize("image_dtype", [np.float32, np.float64, np.int16, np.uint8])
def test_rescale_intensity(kwargs, masking_method, image_dtype):
    ours, theirs = run_both(
        lambda: tio.RescaleIntensity(masking_method=masking_method, **kwargs),
        lambda: torchio.RescaleIntensity(masking_method=masking_method, **kwargs),
        image_dtype=image_dtype,
        shape=(1, 7, 8, 9),
    )
    assert ours["image"].data.dtype == torch.float32
    # The kernels reproduce TorchIO's float32 arithmetic bit for bit.
    assert_same_subject(ours, theirs, exact=True)


def test_rescale_constant_image_and_empty_mask_warn_and_keep_input():
    subject, _ = make_pair(image_dtype=np.int16)
    subject["image"].set_data(torch.full_like(subject["image"].data, 4))
    with pytest.warns(RuntimeWarning, match="all the intensity values are the same"):
        out = tio.RescaleIntensity()(subject)
    assert torch.equal(out["image"].data, subject["image"].data)
    assert out["image"].data.dtype == torch.int16
    subject["label"].set_data(torch.zeros_like(subject["label"].data))
    with pytest.warns(RuntimeWarning, match="mask to compute the statistics is empty"):
        out = tio.RescaleIntensity(masking_method="label")(subject)
    assert torch.equal(out["image"].data, subject["image"].data)


@pytest.mark.parametrize(
    ("out_min", "out_max"), [(90, None), (None, 110), (80, 120), (80.5, 120.25)]
)
@pytest.mark.parametrize("image_dtype", [np.float32, np.float64, np.int16, np.int64])
def test_clamp(out_min, out_max, image_dtype):
    ours, theirs = run_both(
        lambda: tio.Clamp(out_min, out_max),
        lambda: torchio.Clamp(out_min, out_max),
        image_dtype=image_dtype,
    )
    assert_same_subject(ours, theirs)


def test_clamp_without_bounds_is_identity():
    # TorchIO raises inside torch.clamp here; torchvox returns the data unchanged.
    subject, _ = make_pair()
    out = tio.Clamp()(subject)
    assert torch.equal(out["image"].data, subject["image"].data)


@pytest.mark.parametrize("masking_method", MASKING_METHODS[1:] + [_mean_mask])
@pytest.mark.parametrize("outside_value", [0, -5, 2.5])
@pytest.mark.parametrize("labels", [None, [1], [2, 3]])
@pytest.mark.parametrize("image_dtype", [np.float32, np.int16])
def test_mask(masking_method, outside_value, labels, image_dtype):
    ours, theirs = run_both(
        lambda: tio.Mask(masking_method, outside_value=outside_value, labels=labels),
        lambda: torchio.Mask(masking_method, outside_value=outside_value, labels=labels),
        image_dtype=image_dtype,
    )
    assert_same_subject(ours, theirs)


def test_mask_expands_single_channel_label_with_warning():
    subject, _ = make_pair(shape=(2, 5, 6, 7))
    with pytest.warns(RuntimeWarning, match="Expanding mask"):
        out = tio.Mask("label")(subject)
    inside = subject["label"].data.bool().expand(2, -1, -1, -1)
    assert torch.equal(out["image"].data[inside], subject["image"].data[inside])
    assert torch.all(out["image"].data[~inside] == 0)


def test_statistics_errors():
    subject, _ = make_pair()
    data = subject["image"].data.clone()
    data[0, 1, 2, 3] = float("nan")
    subject["image"].set_data(data)
    with pytest.raises(ValueError, match="NaN"):
        tio.RescaleIntensity()(subject)
    with pytest.raises(ValueError, match="NaN"):
        tio.ZNormalization()(subject)
    subject, _ = make_pair(shape=(1, 7, 8, 9))
    one_voxel = torch.zeros_like(subject["label"].data)
    one_voxel[0, 1, 1, 1] = 1
    subject["label"].set_data(one_voxel)
    with pytest.raises(RuntimeError, match="two voxels"):
        tio.ZNormalization(masking_method="label")(subject)
    subject["label"].set_data(torch.zeros_like(one_voxel))
    with pytest.raises(RuntimeError, match="empty"):
        tio.ZNormalization(masking_method="label")(subject)


def test_kernel_and_torch_paths_agree_for_unusual_dtypes():
    # float16 and int8 images have no native kernel: results must match float32 ones.
    subject, _ = make_pair(image_dtype=np.int16)
    reference = {
        "rescale": tio.RescaleIntensity(percentiles=(1, 99))(subject)["image"].data,
        "znorm": tio.ZNormalization()(subject)["image"].data,
        "clamp": tio.Clamp(90, 110)(subject)["image"].data,
    }
    small = subject["image"].data.clamp(-128, 127).to(torch.int8)
    subject["image"].set_data(small)
    assert torch.equal(
        tio.Clamp(90, 110)(subject)["image"].data,
        reference["clamp"].clamp(-128, 127).to(torch.int8),
    )
    subject["image"].set_data(small.to(torch.int16))
    expected = tio.RescaleIntensity(percentiles=(1, 99))(subject)["image"].data
    subject["image"].set_data(small)
    assert torch.equal(tio.RescaleIntensity(percentiles=(1, 99))(subject)["image"].data, expected)
