"""Swap, RandomSwap, HistogramStandardization (and training), PCA and To compared with
TorchIO 1.2.1 on identical inputs."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from transform_helpers import assert_same_subject, make_pair, run_both, torchio

import torchvox as tio

pytestmark = pytest.mark.reference


def disjoint(a: tuple[int, ...], b: tuple[int, ...], size: tuple[int, ...]) -> bool:
    return any(abs(x - y) >= s for x, y, s in zip(a, b, size, strict=True))


def swap_reference(array: np.ndarray, size: tuple[int, ...], locations: list[Any]) -> np.ndarray:
    """Each swap reads both patches, then writes b, then a."""
    out = array.copy()
    for a, b in locations:
        patch_a = (slice(None), *(slice(x, x + s) for x, s in zip(a, size, strict=True)))
        patch_b = (slice(None), *(slice(x, x + s) for x, s in zip(b, size, strict=True)))
        old_a, old_b = out[patch_a].copy(), out[patch_b].copy()
        out[patch_b] = old_a
        out[patch_a] = old_b
    return out


# --- Swap, RandomSwap ------------------------------------------------------------------

LOCATIONS = [((0, 0, 0), (3, 4, 5)), ((2, 1, 0), (5, 5, 6)), ((3, 4, 5), (0, 5, 1))]


@pytest.mark.parametrize("image_dtype", [np.float32, np.float64, np.int16, np.uint8])
def test_swap_matches_torchio_and_inverts(image_dtype: Any) -> None:
    ours, theirs = run_both(
        lambda: tio.Swap((2, 3, 3), LOCATIONS),
        lambda: torchio.Swap((2, 3, 3), LOCATIONS),
        image_dtype=image_dtype,
        shape=(2, 7, 8, 9),
    )
    assert_same_subject(ours, theirs)
    original, _ = make_pair(image_dtype=image_dtype, shape=(2, 7, 8, 9))
    assert not torch.equal(ours["image"].data, original["image"].data)
    assert torch.equal(ours["label"].data, original["label"].data)  # intensity only
    restored = ours.apply_inverse_transform()
    assert torch.equal(restored["image"].data, original["image"].data)
    replayed = ours.get_composed_history()(original)
    assert torch.equal(replayed["image"].data, ours["image"].data)


def test_swap_per_image_parameters_and_overlaps() -> None:
    subject, _ = make_pair(shape=(1, 7, 8, 9))
    subject.add_image(tio.ScalarImage(tensor=subject["image"].data * 2), "other")
    locations = {"image": LOCATIONS[:1], "other": [((0, 0, 0), (1, 1, 1))]}
    sizes = {"image": (2, 3, 3), "other": (3, 3, 3)}
    out = tio.Swap(sizes, locations)(subject)
    for name in ("image", "other"):
        expected = swap_reference(subject[name].data.numpy(), sizes[name], locations[name])
        assert torch.equal(out[name].data, torch.from_numpy(expected))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_swap_draws_torchio_locations(seed: int) -> None:
    ours, theirs = run_both(
        lambda: tio.RandomSwap(patch_size=(2, 3, 2), num_iterations=6),
        lambda: torchio.RandomSwap(patch_size=(2, 3, 2), num_iterations=6),
        seed=seed,
        shape=(1, 12, 13, 14),
    )
    ours_locations = ours.history[0].locations["image"]
    assert ours_locations == theirs.history[0].locations["image"]
    original, _ = make_pair(shape=(1, 12, 13, 14))
    expected = swap_reference(original["image"].data.numpy(), (2, 3, 2), ours_locations)
    assert torch.equal(ours["image"].data, torch.from_numpy(expected))
    # TorchIO's result is defined only when the patches of a pair do not overlap.
    if all(disjoint(a, b, (2, 3, 2)) for a, b in ours_locations):
        assert_same_subject(ours, theirs)


def test_swap_bad_arguments() -> None:
    with pytest.raises(TypeError, match="num_iterations"):
        tio.RandomSwap(num_iterations=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_iterations"):
        tio.RandomSwap(num_iterations=-1)
    with pytest.raises(ValueError, match="patch_size"):
        tio.RandomSwap(patch_size=(1, 2))
    with pytest.raises(ValueError, match="pair"):
        tio.Swap((1, 1, 1), [((0, 0, 0),)])
    subject, _ = make_pair(shape=(1, 7, 8, 9))
    with pytest.raises(ValueError, match="larger than image"):
        tio.RandomSwap(patch_size=8)(subject)
    with pytest.raises(ValueError, match="does not fit"):
        tio.Swap((3, 3, 3), [((5, 0, 0), (0, 0, 0))])(subject)
    # Corners are drawn below the room left: with at most 1 voxel on every
    # axis, both patches of a pair are always the same (TorchIO loops for ever).
    with pytest.raises(ValueError, match="no room for two different patches"):
        tio.RandomSwap(patch_size=(6, 7, 8), num_iterations=1)(subject)
    assert tio.RandomSwap(patch_size=(5, 7, 8), num_iterations=3)(subject).image.shape == (
        1,
        7,
        8,
        9,
    )


# --- HistogramStandardization ---------------------------------------------------------


@pytest.fixture
def training_paths(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(3):
        array = rng.gamma(2, 40 + 15 * index, (14, 15, 16)).astype(np.float32)
        array[:3] = 0  # background: repeated low percentiles
        path = tmp_path / f"image_{index}.nii.gz"
        nib.Nifti1Image(array, np.eye(4)).to_filename(path)
        paths.append(path)
    return paths


def _above_ten(tensor: torch.Tensor) -> torch.Tensor:
    return tensor > 10


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"cutoff": (0.05, 0.95)}, {"masking_function": _above_ten}, {"mask_path": "first"}],
)
def test_train_matches_torchio(training_paths: list[Path], kwargs: dict[str, Any]) -> None:
    if kwargs.get("mask_path") == "first":
        kwargs = {"mask_path": training_paths[0]}
    ours = tio.HistogramStandardization.train(training_paths, progress=False, **kwargs)
    theirs = torchio.HistogramStandardization.train(training_paths, progress=False, **kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_landmark_files_round_trip(training_paths: list[Path], tmp_path: Path) -> None:
    landmarks = tio.train_histogram(training_paths, output_path=tmp_path / "t1.npy", progress=False)
    tio.HistogramStandardization.train(
        training_paths, output_path=tmp_path / "t1.txt", progress=False
    )
    theirs_txt = tmp_path / "theirs.txt"
    torchio.HistogramStandardization.train(training_paths, output_path=theirs_txt, progress=False)
    assert (tmp_path / "t1.txt").read_text() == theirs_txt.read_text()
    torch.save({"t1": landmarks}, tmp_path / "landmarks.pt")
    for source in (
        {"t1": tmp_path / "t1.npy"},
        {"t1": str(tmp_path / "t1.txt")},
        {"t1": torch.from_numpy(landmarks)},
        tmp_path / "landmarks.pt",
    ):
        parsed = tio.HistogramStandardization(source).landmarks_dict["t1"]
        np.testing.assert_allclose(parsed, landmarks, rtol=1e-15)
    with pytest.raises(ValueError, match=".pt or .pth"):
        tio.HistogramStandardization(tmp_path / "t1.npy")
    with pytest.raises(ValueError, match="13 finite numbers"):
        tio.HistogramStandardization({"t1": landmarks[:-1]})
    with pytest.raises(ValueError, match="13 finite numbers"):
        tio.HistogramStandardization({"t1": np.full(13, np.nan)})
    with pytest.raises(FileNotFoundError):
        tio.HistogramStandardization({"t1": tmp_path / "missing.npy"})
    with pytest.raises(ValueError, match="output_path"):
        tio.train_histogram(training_paths, output_path=tmp_path / "t1.csv", progress=False)
    with pytest.raises(ValueError, match="Different number"):
        tio.train_histogram(training_paths, mask_path=training_paths[:1], progress=False)


@pytest.mark.parametrize("masking_method", [None, "label", "Left", (1, 1, 2), _above_ten])
@pytest.mark.parametrize("image_dtype", [np.float32, np.float64, np.int16, np.uint8])
def test_histogram_standardization_matches_torchio(
    training_paths: list[Path], masking_method: Any, image_dtype: Any
) -> None:
    landmarks = {"image": torchio.HistogramStandardization.train(training_paths, progress=False)}
    ours, theirs = run_both(
        lambda: tio.HistogramStandardization(landmarks, masking_method=masking_method),
        lambda: torchio.HistogramStandardization(landmarks, masking_method=masking_method),
        image_dtype=image_dtype,
        shape=(1, 9, 10, 11),
    )
    assert ours["image"].data.dtype == torch.float32
    assert_same_subject(ours, theirs, exact=False, rtol=1e-6)
    # The percentiles are NumPy's; with them the map is bit-identical in practice.
    assert torch.equal(ours["image"].data, theirs["image"].data)


def test_histogram_standardization_errors() -> None:
    landmarks = {"image": np.linspace(0, 100, 13)}
    subject, _ = make_pair(shape=(1, 5, 6, 7))
    with pytest.raises(KeyError, match="landmarks dictionary"):
        tio.HistogramStandardization({"t2": landmarks["image"]})(subject)
    subject["image"].data[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tio.HistogramStandardization(landmarks)(subject)
    empty = tio.HistogramStandardization(landmarks, masking_method=lambda t: t > 1e9)
    with pytest.raises(ValueError):
        empty(make_pair(shape=(1, 5, 6, 7))[0])


def test_histogram_standardization_of_a_constant_image_is_finite() -> None:
    image = tio.ScalarImage(tensor=torch.full((1, 4, 5, 6), 3.0))
    landmarks = {"default_image_name": np.linspace(0, 100, 13)}
    ours = tio.HistogramStandardization(landmarks)(image)
    theirs = torchio.HistogramStandardization(landmarks)(torchio.ScalarImage(tensor=image.data))
    assert torch.isfinite(ours.data).all()
    assert torch.equal(ours.data, theirs.data)


# --- PCA, To --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_components": 2, "whiten": False, "normalize": False, "values_range": None},
        {"make_skewness_positive": False, "clip": False},
        {"pca_kwargs": {"svd_solver": "full"}},
    ],
)
def test_pca_matches_torchio(kwargs: dict[str, Any]) -> None:
    embedding = np.random.default_rng(0).standard_normal((6, 5, 6, 7)).astype(np.float32)
    embedding[1] += 2 * embedding[0]  # correlated channels
    ours = tio.PCA(**kwargs)(tio.ScalarImage(tensor=embedding.copy()))
    theirs = torchio.PCA(**kwargs)(torchio.ScalarImage(tensor=embedding.copy()))
    assert ours.data.dtype == theirs.data.dtype
    torch.testing.assert_close(ours.data, theirs.data, rtol=1e-5, atol=1e-6)


def test_pca_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="num_components"):
        tio.PCA(0)
    with pytest.raises(ValueError, match="values_range"):
        tio.PCA(values_range=(1, -1))
    with pytest.raises(ValueError, match="channels"):
        tio.PCA(4)(tio.ScalarImage(tensor=torch.rand(3, 4, 4, 4)))
    real_import = builtins.__import__

    def without_sklearn(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_sklearn)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        tio.PCA()


@pytest.mark.parametrize("target", [torch.float64, torch.int16, "cpu", torch.device("cpu")])
def test_to_matches_torchio(target: Any) -> None:
    ours, theirs = run_both(lambda: tio.To(target), lambda: torchio.To(target))
    assert_same_subject(ours, theirs)
    assert ours["label"].data.dtype == torch.int16  # label maps untouched


def test_to_bad_target() -> None:
    with pytest.raises(TypeError, match="target"):
        tio.To(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="to_kwargs"):
        tio.To(torch.float32, to_kwargs=[1])  # type: ignore[arg-type]
