"""TorchIO's module paths and base classes: a script's deeper imports keep working.

Each test derives what to expect from TorchIO 1.2.1 itself, so a name TorchIO
exports from one of these paths and torchvox does not is a failure.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
import torch
import torchio

import torchvox as tio

#: TorchIO modules whose exported classes torchvox mirrors at the same path.
MODULES = [
    "transforms.augmentation",
    "transforms.augmentation.spatial",
    "transforms.augmentation.intensity",
    "transforms.preprocessing",
    "transforms.preprocessing.intensity",
    "download",
]


def _exported_classes_and_functions(module) -> list[str]:
    names = getattr(module, "__all__", None) or dir(module)
    return [
        name
        for name in names
        if not name.startswith("_")
        and (inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name)))
        # Defined elsewhere (tqdm), or a progress-bar hook of TorchIO's own downloads.
        and getattr(getattr(module, name), "__module__", "").startswith("torchio")
        and name != "gen_bar_updater"
    ]


@pytest.mark.parametrize("path", MODULES)
def test_torchio_import_paths_exist(path: str) -> None:
    theirs = importlib.import_module(f"torchio.{path}")
    ours = importlib.import_module(f"torchvox.{path}")
    names = _exported_classes_and_functions(theirs)
    assert names
    for name in names:
        value = getattr(ours, name)
        if inspect.isclass(value) and hasattr(tio.transforms, name):
            # The very class torchvox exports, not a copy.
            assert value is getattr(tio.transforms, name)


def test_composition_module_path() -> None:
    from torchvox.transforms.augmentation.composition import Compose, OneOf

    assert Compose is tio.Compose
    assert OneOf is tio.OneOf


def test_preprocessing_label_and_spatial_base_classes() -> None:
    from torchvox.transforms.preprocessing.label import LabelTransform
    from torchvox.transforms.preprocessing.spatial import BoundsTransform

    assert issubclass(tio.OneHot, LabelTransform)
    assert issubclass(tio.Crop, BoundsTransform)


@pytest.mark.parametrize(
    ("module", "base"),
    [
        ("transforms", "FourierTransform"),
        ("transforms.preprocessing.intensity", "NormalizationTransform"),
    ],
)
def test_base_classes_have_torchio_subclasses(module: str, base: str) -> None:
    theirs = getattr(importlib.import_module(f"torchio.{module}"), base)
    ours = getattr(importlib.import_module(f"torchvox.{module}"), base)
    expected = [
        name
        for name, value in vars(torchio.transforms).items()
        if inspect.isclass(value) and issubclass(value, theirs) and value is not theirs
    ]
    assert expected
    for name in expected:
        assert issubclass(getattr(tio.transforms, name), ours), name


@pytest.mark.parametrize("shape", [(6, 5, 4), (7, 8), (1, 9, 4, 3)])
def test_fourier_transform_is_the_centred_fft(shape: tuple[int, ...]) -> None:
    data = np.random.default_rng(0).normal(size=shape)
    spectrum = tio.FourierTransform.fourier_transform(torch.from_numpy(data))
    expected = np.fft.fftshift(np.fft.fftn(data))
    np.testing.assert_allclose(spectrum.numpy(), expected, rtol=1e-10, atol=1e-10)
    # Frequency 0 (the sum of the data) sits at index n // 2 of every axis.
    centre = tuple(n // 2 for n in shape)
    assert spectrum[centre].real.item() == pytest.approx(data.sum())
    back = tio.FourierTransform.inv_fourier_transform(spectrum)
    np.testing.assert_allclose(back.real.numpy(), data, atol=1e-12)
    np.testing.assert_allclose(back.imag.numpy(), 0, atol=1e-12)
    # NumPy input, as TorchIO's NumPy fallback takes.
    assert torch.allclose(tio.FourierTransform.fourier_transform(data), spectrum)


def test_fourier_helpers_match_torchio() -> None:
    tensor = torch.rand(1, 9, 8, 7, generator=torch.Generator().manual_seed(1))
    ours = tio.FourierTransform.fourier_transform(tensor)
    theirs = torchio.transforms.FourierTransform.fourier_transform(tensor)
    assert torch.equal(ours, theirs)
    assert torch.equal(
        tio.FourierTransform.inv_fourier_transform(ours),
        torchio.transforms.FourierTransform.inv_fourier_transform(theirs),
    )


def _max_normalisation(base: type) -> type:
    """The same user-written normalisation over either library's base class:
    divide by the maximum of the masked voxels, and record the masks it got."""

    class MaxNormalization(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.masks: list[torch.Tensor] = []

        def apply_normalization(self, subject, image_name, mask):
            self.masks.append(mask)
            image = subject[image_name]
            data = image.data.float()
            image.set_data(data / data[mask.expand_as(data)].max())

    return MaxNormalization


@pytest.mark.parametrize("masking_method", [None, "brain", lambda x: x > 50])
def test_user_normalisation_subclass_behaves_as_in_torchio(masking_method) -> None:
    generator = torch.Generator().manual_seed(2)
    t1 = (torch.rand(1, 8, 7, 6, generator=generator) * 100).round()
    brain = torch.zeros(1, 8, 7, 6, dtype=torch.uint8)
    brain[:, 2:6, 2:5, 1:5] = 1
    outputs = []
    transforms = []
    for module, base in (
        (tio, tio.transforms.preprocessing.intensity.NormalizationTransform),
        (torchio, torchio.transforms.preprocessing.intensity.NormalizationTransform),
    ):
        subject = module.Subject(
            t1=module.ScalarImage(tensor=t1.clone()), brain=module.LabelMap(tensor=brain.clone())
        )
        transform = _max_normalisation(base)(masking_method=masking_method)
        outputs.append(transform(subject).t1.data)
        transforms.append(transform)
    ours, theirs = outputs
    assert torch.equal(ours, theirs)
    (our_mask,), (their_mask,) = (t.masks for t in transforms)
    # A user's subclass gets a boolean tensor, also when every voxel counts.
    assert our_mask.dtype == torch.bool
    assert torch.equal(our_mask, their_mask)


def test_normalisation_subclass_must_implement_apply_normalization() -> None:
    base = tio.transforms.preprocessing.intensity.NormalizationTransform
    subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.rand(1, 4, 4, 4)))
    with pytest.raises(NotImplementedError):
        base()(subject)
    with pytest.raises(TypeError, match="masking_method"):
        base(masking_method=3.5)


def test_clamp_and_mask_helpers_match_torchio() -> None:
    generator = torch.Generator().manual_seed(4)
    data = torch.randn(2, 6, 5, 4, generator=generator) * 10
    brain = (torch.rand(1, 6, 5, 4, generator=generator) > 0.5).to(torch.uint8)
    outputs = []
    for module in (tio, torchio):
        clamped = module.ScalarImage(tensor=data.clone())
        module.Clamp(-3, 5).apply_clamp(clamped)
        masked = module.ScalarImage(tensor=data.clone())
        with pytest.warns(RuntimeWarning, match="Expanding mask"):
            module.Mask("brain", outside_value=-1).apply_masking(masked, brain.bool())
        outputs.append((clamped.data, masked.data))
    (our_clamp, our_mask), (their_clamp, their_mask) = outputs
    assert torch.equal(our_clamp, their_clamp)
    assert torch.equal(our_mask, their_mask)
