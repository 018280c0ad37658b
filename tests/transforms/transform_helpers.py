"""Helpers for transform tests: identical subjects for torchvox and TorchIO 1.2.1."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import torchvox as tio
from conftest import AFFINES

torchio = pytest.importorskip("torchio")


def make_arrays(
    shape: tuple[int, int, int, int] = (2, 7, 8, 9), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A float32 image with a wide range of values and an int16 label map (0..3)."""
    rng = np.random.default_rng(seed)
    image = (rng.standard_normal(shape) * 50 + 100).astype(np.float32)
    labels = rng.integers(0, 4, size=(1, *shape[1:])).astype(np.int16)
    return image, labels


def make_pair(
    affine_name: str = "oblique",
    shape: tuple[int, int, int, int] = (2, 7, 8, 9),
    label_dtype: Any = np.int16,
    image_dtype: Any = np.float32,
    seed: int = 0,
) -> tuple[tio.Subject, Any]:
    """The same subject ('image', 'label', metadata 'age') in torchvox and in TorchIO."""
    image, labels = make_arrays(shape, seed)
    image = image.astype(image_dtype)
    labels = labels.astype(label_dtype)
    affine = AFFINES[affine_name]
    ours = tio.Subject(
        image=tio.ScalarImage(tensor=image.copy(), affine=affine.copy()),
        label=tio.LabelMap(tensor=labels.copy(), affine=affine.copy()),
        age=45,
    )
    theirs = torchio.Subject(
        image=torchio.ScalarImage(tensor=image.copy(), affine=affine.copy()),
        label=torchio.LabelMap(tensor=labels.copy(), affine=affine.copy()),
        age=45,
    )
    return ours, theirs


def assert_same_subject(ours: Any, theirs: Any, exact: bool = True, rtol: float = 1e-6) -> None:
    """Same image names, data (values, dtype, shape) and affines."""
    our_images = ours.get_images_dict(intensity_only=False)
    their_images = theirs.get_images_dict(intensity_only=False)
    assert sorted(our_images) == sorted(their_images)
    for name, image in our_images.items():
        reference = their_images[name]
        assert image.data.dtype == reference.data.dtype, name
        assert tuple(image.data.shape) == tuple(reference.data.shape), name
        if exact:
            assert torch.equal(image.data, reference.data), name
        else:
            torch.testing.assert_close(image.data, reference.data, rtol=rtol, atol=1e-5)
        np.testing.assert_allclose(image.affine, reference.affine, rtol=0, atol=1e-10)


def run_both(
    make_ours: Callable[[], Any],
    make_theirs: Callable[[], Any],
    seed: int = 0,
    **pair_kwargs: Any,
) -> tuple[Any, Any]:
    """Apply both transforms to identical subjects under the same torch seed."""
    ours_subject, theirs_subject = make_pair(**pair_kwargs)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = make_theirs()(theirs_subject)
        their_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    ours = make_ours()(ours_subject)
    # Same number of random draws as TorchIO.
    assert torch.equal(torch.random.get_rng_state(), their_state)
    return ours, theirs
