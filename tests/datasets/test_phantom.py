"""The synthetic Phantom subject."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchvox as tio
from torchvox.datasets.phantom import CSF, GREY_MATTER, SCALP, SKULL, WHITE_MATTER


@pytest.mark.parametrize("size", [32, (20, 28, 24), (9, 9, 9)])
def test_geometry(size):
    phantom = tio.datasets.Phantom(size=size)
    shape = (size,) * 3 if isinstance(size, int) else size
    assert isinstance(phantom, tio.Subject)
    assert phantom.spatial_shape == shape
    assert phantom.t1.data.dtype == torch.float32
    assert phantom.tissues.data.dtype == torch.uint8
    assert phantom.t1.orientation_str == "RAS"
    assert phantom.spacing == (1.0, 1.0, 1.0)
    # The world origin is at the centre of the volume.
    np.testing.assert_allclose(phantom.t1.get_center(), (0.0, 0.0, 0.0), atol=1e-12)
    phantom.check_consistent_space()


def test_deterministic_and_seeded():
    a = tio.datasets.Phantom(size=24, seed=3)
    b = tio.datasets.Phantom(size=24, seed=3)
    c = tio.datasets.Phantom(size=24, seed=4)
    assert torch.equal(a.t1.data, b.t1.data)
    assert torch.equal(a.tissues.data, b.tissues.data)
    assert not torch.equal(a.t1.data, c.t1.data)


def test_anatomy_is_nested_and_t1_like():
    phantom = tio.datasets.Phantom(size=(64, 72, 68))
    labels = phantom.tissues.data[0].numpy()
    t1 = phantom.t1.data[0].numpy()
    counts = phantom.tissues.count_labels()
    assert set(counts) == {0, CSF, GREY_MATTER, WHITE_MATTER, SKULL, SCALP}
    # Shells are nested: walking from the centre to a face along the first axis meets
    # white matter, grey matter, CSF, skull, scalp and background, in this order.
    centre = np.asarray(labels.shape) // 2
    profile = labels[centre[0] :, centre[1], centre[2]]
    order = [label for i, label in enumerate(profile) if i == 0 or label != profile[i - 1]]
    assert order[-5:] == [GREY_MATTER, CSF, SKULL, SCALP, 0]
    # T1 contrast: WM > GM > CSF > skull, background exactly zero.
    means = {label: t1[labels == label].mean() for label in counts}
    assert means[WHITE_MATTER] > means[GREY_MATTER] > means[CSF] > means[SKULL]
    assert (t1[labels == 0] == 0).all()
    assert (t1 >= 0).all()
    # The intensity inside a tissue varies smoothly (bias field + noise), not constant.
    assert t1[labels == WHITE_MATTER].std() > 0.01


def test_invalid_arguments():
    with pytest.raises(ValueError, match="positive integers"):
        tio.datasets.Phantom(size=0)
    with pytest.raises(ValueError, match="3 elements"):
        tio.datasets.Phantom(size=(4, 4))
    with pytest.raises(ValueError, match="seed"):
        tio.datasets.Phantom(size=8, seed=-1)


def test_works_in_a_loader():
    dataset = tio.SubjectsDataset([tio.datasets.Phantom(size=16, seed=i) for i in range(2)])
    batch = next(iter(tio.SubjectsLoader(dataset, batch_size=2)))
    assert batch["t1"]["data"].shape == (2, 1, 16, 16, 16)
    assert batch["tissues"]["data"].dtype == torch.uint8
