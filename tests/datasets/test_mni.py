"""The MNI152 subject against NiBabel's reading of nilearn's template files."""

from __future__ import annotations

import sys

import nibabel as nib
import numpy as np
import pytest
import torch

import torchvox as tio
from torchvox.datasets import mni


def test_t1_matches_nibabel(mni152):
    paths = mni.get_mni152_paths()
    nii = nib.load(str(paths["t1"]))
    t1 = mni152.t1
    assert isinstance(t1, tio.ScalarImage)
    assert t1.shape == (1, *nii.shape) == (1, 197, 233, 189)
    np.testing.assert_allclose(t1.affine, nii.affine, atol=1e-5)
    assert t1.orientation == nib.aff2axcodes(nii.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(t1.data[0].numpy(), np.asarray(nii.dataobj))


def test_tissues_derived_from_probability_maps(mni152):
    paths = mni.get_mni152_paths()
    gm = np.asarray(nib.load(str(paths["gm"])).dataobj, dtype=np.float64) / 255
    wm = np.asarray(nib.load(str(paths["wm"])).dataobj, dtype=np.float64) / 255
    tissues = mni152.tissues
    assert isinstance(tissues, tio.LabelMap)
    assert tissues.data.dtype == torch.uint8
    labels = tissues.data[0].numpy()
    # Independent derivation: tissue where GM + WM >= 0.5, the likelier of the two.
    expected = np.where(gm + wm >= 0.5, np.where(wm > gm, 2, 1), 0)
    np.testing.assert_array_equal(labels, expected)
    counts = tissues.count_labels()
    assert set(counts) == {0, 1, 2}
    # A brain has hundreds of cm^3 of each tissue (1 mm voxels).
    assert 500_000 < counts[1] < 1_300_000 and 300_000 < counts[2] < 800_000
    mni152.check_consistent_space()


def test_cached_tissues_reused(mni152):
    again = tio.datasets.MNI152()
    assert torch.equal(again.tissues.data, mni152.tissues.data)
    np.testing.assert_allclose(again.tissues.affine, mni152.tissues.affine, atol=1e-5)


def test_different_threshold(mni152):
    strict = tio.datasets.MNI152(tissue_threshold=0.9)
    assert strict.tissues.count_nonzero() < mni152.tissues.count_nonzero()
    with pytest.raises(ValueError, match="tissue_threshold"):
        tio.datasets.MNI152(tissue_threshold=0)


def test_resampling_onto_t1_grid(tmp_path):
    """Probability maps on another grid are resampled onto the T1 grid."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-4.0, -4.0, -4.0)
    t1 = np.zeros((5, 5, 5), np.uint8)
    gm = np.zeros((5, 5, 5), np.uint8)
    wm = np.zeros((5, 5, 5), np.uint8)
    gm[:2] = 255
    wm[3:] = 255
    paths = {name: tmp_path / f"{name}.nii.gz" for name in ("t1", "gm", "wm")}
    nib.Nifti1Image(t1, affine).to_filename(paths["t1"])
    # Same content at 1 mm, covering the same field of view.
    fine = np.diag([1.0, 1.0, 1.0, 1.0])
    fine[:3, 3] = (-4.0, -4.0, -4.0)
    nib.Nifti1Image(
        np.repeat(np.repeat(np.repeat(gm, 2, 0), 2, 1), 2, 2)[:9, :9, :9], fine
    ).to_filename(paths["gm"])
    nib.Nifti1Image(
        np.repeat(np.repeat(np.repeat(wm, 2, 0), 2, 1), 2, 2)[:9, :9, :9], fine
    ).to_filename(paths["wm"])
    labels, out_affine = mni._compute_tissues(paths, 0.5)
    assert labels.shape == (1, 5, 5, 5)
    np.testing.assert_allclose(out_affine, affine, atol=1e-6)
    assert (labels[0, :2] == 1).all() and (labels[0, 3:] == 2).all() and (labels[0, 2] == 0).all()


def test_missing_nilearn_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "nilearn", None)
    with pytest.raises(ImportError, match="pip install nilearn"):
        tio.datasets.MNI152()


def test_first_call_backs_tissues_with_the_cache_file(tmp_path, monkeypatch):
    """A cold cache gives the same file-backed Subject as a warm one."""
    monkeypatch.setattr(mni, "get_torchvox_cache_dir", lambda: tmp_path)
    cold = tio.datasets.MNI152(tissue_threshold=0.7)
    assert cold.tissues.path is not None and cold.tissues.path.is_relative_to(tmp_path)
    warm = tio.datasets.MNI152(tissue_threshold=0.7)
    assert warm.tissues.path == cold.tissues.path
    assert torch.equal(cold.tissues.data, warm.tissues.data)
