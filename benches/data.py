"""Benchmark inputs: the MNI152 2009a T1 (+ tissues) from nilearn and a 256^3 phantom.

Files are written once into ``benches/.cache`` as float32 NIfTI (.nii.gz and
.nii), the form the issue's loading targets refer to.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np

CACHE = Path(__file__).parent / ".cache"


@dataclass(frozen=True)
class Volume:
    """A benchmark volume: float32 intensities, uint8 labels, RAS affine, file paths."""

    name: str
    t1: np.ndarray  # (1, I, J, K) float32
    labels: np.ndarray  # (1, I, J, K) uint8
    affine: np.ndarray  # (4, 4) float64
    t1_nii_gz: Path
    t1_nii: Path
    labels_nii_gz: Path


def _write(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name("tmp-" + path.name)
        nib.save(nib.Nifti1Image(array[0], affine), temporary)
        temporary.replace(path)
    return path


def _volume(name: str, t1: np.ndarray, labels: np.ndarray, affine: np.ndarray) -> Volume:
    stem = name.lower().replace(" ", "_").replace("^", "")
    return Volume(
        name=name,
        t1=t1,
        labels=labels,
        affine=affine,
        t1_nii_gz=_write(t1, affine, CACHE / f"{stem}_t1_float32.nii.gz"),
        t1_nii=_write(t1, affine, CACHE / f"{stem}_t1_float32.nii"),
        labels_nii_gz=_write(labels, affine, CACHE / f"{stem}_labels.nii.gz"),
    )


@cache
def mni152() -> Volume:
    """The MNI152 T1 as float32 and its tissue label map, from torchvox.datasets."""
    import torchvox

    subject = torchvox.datasets.MNI152()
    t1 = subject["t1"].data.numpy().astype(np.float32)
    labels = subject["tissues"].data.numpy().astype(np.uint8)
    return _volume("MNI152", t1, labels, subject["t1"].affine.copy())


@cache
def phantom(size: int = 256) -> Volume:
    """A deterministic head-like phantom of ``size``^3 voxels."""
    import torchvox

    subject = torchvox.datasets.Phantom(size=size)
    t1 = subject["t1"].data.numpy().astype(np.float32)
    labels = subject["tissues"].data.numpy().astype(np.uint8)
    return _volume(f"phantom {size}^3", t1, labels, subject["t1"].affine.copy())


def as_las(volume: Volume) -> Volume:
    """The same anatomy stored left-to-right (LAS), for reorientation benchmarks."""
    from dataclasses import replace

    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = volume.t1.shape[1] - 1  # voxel i -> n - 1 - i
    return replace(
        volume,
        name=volume.name + " (LAS)",
        t1=np.ascontiguousarray(volume.t1[:, ::-1]),
        labels=np.ascontiguousarray(volume.labels[:, ::-1]),
        affine=volume.affine @ flip,
    )
