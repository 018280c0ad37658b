"""Shared fixtures: small synthetic images and subjects, files on disk, and MNI152."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import torchvox as tio


def make_affine(
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    angles_degrees: tuple[float, float, float] = (0.0, 0.0, 0.0),
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    flips: tuple[int, int, int] = (1, 1, 1),
) -> np.ndarray:
    """A 4x4 voxel-to-RAS affine: rotation (Euler XYZ, degrees) @ diag(flips * spacing)."""
    ax, ay, az = np.radians(angles_degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ ry @ rx @ np.diag(np.asarray(flips) * np.asarray(spacing))
    affine[:3, 3] = origin
    return affine


#: Named affines used across I/O and image tests.
AFFINES = {
    "ras_identity": np.eye(4),
    "ras_anisotropic": make_affine(spacing=(0.8, 1.25, 2.5), origin=(-10.0, 20.5, 3.0)),
    "lps": make_affine(spacing=(1.0, 1.0, 1.5), flips=(-1, -1, 1), origin=(30.0, 40.0, -5.0)),
    "oblique": make_affine(
        spacing=(0.9, 1.1, 2.0), angles_degrees=(12.0, -7.0, 25.0), origin=(1.5, -2.5, 7.0)
    ),
    "oblique_flipped": make_affine(
        spacing=(1.2, 0.7, 1.0), angles_degrees=(-20.0, 9.0, 4.0), flips=(-1, 1, -1)
    ),
}


@pytest.fixture(params=sorted(AFFINES))
def named_affine(request: pytest.FixtureRequest) -> tuple[str, np.ndarray]:
    return request.param, AFFINES[request.param]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def synthetic_subject() -> tio.Subject:
    """A loaded subject: float32 't1' (1, 10, 12, 14) and uint8 'label' on one grid."""
    generator = torch.Generator().manual_seed(0)
    t1 = torch.rand(1, 10, 12, 14, generator=generator)
    label = (t1 > 0.5).to(torch.uint8)
    affine = AFFINES["ras_anisotropic"]
    return tio.Subject(
        t1=tio.ScalarImage(tensor=t1, affine=affine),
        label=tio.LabelMap(tensor=label, affine=affine),
        age=45,
        name="synthetic",
    )


@pytest.fixture
def subject_files(tmp_path: Path) -> dict[str, Path]:
    """NIfTI files on disk: 't1' float32 (1, 9, 11, 13) and 'label' uint8, LPS affine."""
    import nibabel as nib

    rng = np.random.default_rng(7)
    affine = AFFINES["lps"]
    t1 = rng.random((9, 11, 13)).astype(np.float32)
    label = (t1 > 0.5).astype(np.uint8)
    paths = {"t1": tmp_path / "t1.nii.gz", "label": tmp_path / "label.nii.gz"}
    nib.Nifti1Image(t1, affine).to_filename(paths["t1"])
    nib.Nifti1Image(label, affine).to_filename(paths["label"])
    return paths


@pytest.fixture
def file_subject(subject_files: dict[str, Path]) -> tio.Subject:
    """A lazy subject (images not loaded) reading ``subject_files``."""
    return tio.Subject(
        t1=tio.ScalarImage(subject_files["t1"]),
        label=tio.LabelMap(subject_files["label"]),
        age=30,
    )


@pytest.fixture(scope="session")
def mni152() -> tio.Subject:
    """The MNI152 template subject; skipped cleanly if nilearn is not installed."""
    pytest.importorskip("nilearn")
    return tio.datasets.MNI152()


@pytest.fixture
def start_method(monkeypatch) -> Callable[[str], None]:
    """A function that makes every DataLoader created afterwards in the test start
    its workers with the given multiprocessing start method (skipping the test
    where that method does not exist)."""

    def use(method: str) -> None:
        if method not in multiprocessing.get_all_start_methods():
            pytest.skip(f"{method} not available")
        original = DataLoader.__init__

        def init(self, *args, **kwargs):
            kwargs.setdefault("multiprocessing_context", method)
            original(self, *args, **kwargs)

        monkeypatch.setattr(DataLoader, "__init__", init)

    return use
