"""torchvox.utils against TorchIO 1.2.1 and analytic expectations."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import torchvox as tio
from torchvox import utils

tio_ref = pytest.importorskip("torchio")


@pytest.mark.parametrize(
    ("value", "length"),
    [(1, 1), (1, 3), ((1,), 1), ((1, 2), 1), ([1, 2], 3), ("ab", 2), (2.5, 2), (range(3), 1)],
)
def test_to_tuple_matches_torchio(value, length):
    assert utils.to_tuple(value, length) == tio_ref.utils.to_tuple(value, length)


def test_get_stem():
    assert utils.get_stem("/home/user/my_image.nii.gz") == "my_image"
    assert utils.get_stem(Path("a/b.c.d")) == "b"
    assert utils.get_stem(["x/a.nii", "y/b.nrrd"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("string", "expected"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("(1, 2)", (1, 2)),
        ("[1,2.5]", [1, 2.5]),
        ("linear", "linear"),
        ("None", None),
        ("(-5,15)", (-5, 15)),
        ("False", False),
        ("a-b", "a-b"),
    ],
)
def test_guess_type(string, expected):
    result = utils.guess_type(string)
    assert result == expected and type(result) is type(expected)


def test_cache_dirs():
    assert utils.get_torchvox_cache_dir() == Path.home() / ".cache" / "torchvox"
    assert utils.get_torchio_cache_dir() == utils.get_torchvox_cache_dir()


def test_compress(tmp_path):
    source = tmp_path / "image.nii"
    nib.Nifti1Image(np.arange(8, dtype=np.float32).reshape(2, 2, 2), np.eye(4)).to_filename(source)
    output = utils.compress(source)
    assert output == tmp_path / "image.nii.gz"
    with gzip.open(output, "rb") as file:
        assert file.read() == source.read_bytes()
    np.testing.assert_array_equal(nib.load(output).get_fdata(), nib.load(source).get_fdata())


def test_check_sequence_and_iterables():
    utils.check_sequence([1], "x")
    with pytest.raises(TypeError, match='"x" must be a sequence'):
        utils.check_sequence(3, "x")
    assert utils.is_iterable([]) and utils.is_iterable("a") and not utils.is_iterable(3)


def test_get_subclasses():
    class A:
        pass

    class B(A):
        pass

    class C(B):
        pass

    class D(A):
        pass

    assert set(utils.get_subclasses(A)) == {B, C, D}


@pytest.mark.parametrize("shape", [3, (2, 3, 4), [1, 1, 1], 4.0])
def test_parse_spatial_shape_valid(shape):
    assert utils.parse_spatial_shape(shape) == tio_ref.utils.parse_spatial_shape(shape)


@pytest.mark.parametrize("shape", [0, (1, 2), (1, 2.5, 3), (-1, 2, 3), (1, 2, 3, 4)])
def test_parse_spatial_shape_invalid(shape):
    with pytest.raises(ValueError):
        utils.parse_spatial_shape(shape)


def test_normalize_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert utils.normalize_path("a/../b") == tmp_path.resolve() / "b"
    assert utils.normalize_path("~") == Path.home().resolve()


def test_format_bytes_matches_humanize():
    humanize = pytest.importorskip("humanize")
    values = [0, 1, 2, 1000, 1023, 1024, 1025, 48000, 1024**2 - 1, 1024**2, 3.3 * 1024**3]
    values += [1024**5 * 7, 1024**8 * 3, 1024**10 * 5, 1024**11 * 2, -4096]
    for value in values:
        assert utils.format_bytes(value) == humanize.naturalsize(value, binary=True), value


def test_create_dummy_dataset(tmp_path):
    np.random.seed(0)
    subjects = utils.create_dummy_dataset(3, (5, 8), directory=tmp_path)
    assert len(subjects) == 3
    for i, subject in enumerate(subjects):
        assert subject.one_modality.path == tmp_path / "dummy_images" / f"image_{i}.nii.gz"
        image = subject.one_modality.data
        label = subject.segmentation.data
        assert image.dtype == torch.uint8 and label.dtype == torch.uint8
        assert all(5 <= n < 8 for n in image.shape[1:])
        assert set(torch.unique(label).tolist()) <= {0, 1, 2}
        # The label thresholds the values at 1/3 and 2/3 of [0, 255).
        assert (image[label == 0] <= 84).all() and (image[label == 2] >= 168).all()
    before = subjects[0].one_modality.data.clone()
    again = utils.create_dummy_dataset(3, (5, 8), directory=tmp_path)  # files are reused
    assert torch.equal(again[0].one_modality.data, before)
    rewritten = utils.create_dummy_dataset(2, (9, 10), directory=tmp_path, force=True)
    assert rewritten[0].one_modality.shape == (1, 9, 9, 9)
    other_format = utils.create_dummy_dataset(1, (4, 5), directory=tmp_path / "n", suffix=".nrrd")
    assert other_format[0].segmentation.shape == (1, 4, 4, 4)


def test_apply_transform_to_file(tmp_path, capsys):
    source = tmp_path / "in.nii.gz"
    tio.ScalarImage(tensor=torch.arange(24.0).reshape(1, 2, 3, 4)).save(source)
    output = tmp_path / "out.nii.gz"

    def negate(subject):
        subject.image.set_data(-subject.image.data)
        return subject

    utils.apply_transform_to_file(source, negate, output)
    assert torch.equal(tio.ScalarImage(output).data, -torch.arange(24.0).reshape(1, 2, 3, 4))
    with pytest.raises(ValueError, match="Image class"):
        utils.apply_transform_to_file(source, negate, output, class_="Nope")


def test_sitk_version_and_viewer(monkeypatch):
    import SimpleITK as sitk

    assert utils.get_major_sitk_version() == int(sitk.__version__.split(".")[0])
    monkeypatch.setenv("SITK_SHOW_COMMAND", "/opt/viewer")
    assert utils.guess_external_viewer() == Path("/opt/viewer")


def test_top_level_names_match_torchio():
    names = [
        "Image",
        "ScalarImage",
        "LabelMap",
        "Subject",
        "SubjectsDataset",
        "SubjectsLoader",
        "io",
        "utils",
        "datasets",
        "INTENSITY",
        "LABEL",
        "SAMPLING_MAP",
        "PATH",
        "TYPE",
        "STEM",
        "DATA",
        "AFFINE",
        "TENSOR",
        "IMAGE",
        "LOCATION",
        "HISTORY",
        "NUM_SAMPLES",
        "CHANNELS_DIMENSION",
        "REPO_URL",
        "DATA_REPO",
        "MIN_FLOAT_32",
    ]
    for name in names:
        assert hasattr(tio, name), name
        if name.isupper():
            assert getattr(tio, name) == getattr(tio_ref, name)
    for name in ("read_image", "write_image", "read_matrix", "write_matrix", "ensure_4d"):
        assert callable(getattr(tio.io, name))
    ref_utils = {n for n in dir(tio_ref.utils) if not n.startswith("_") and n.islower()}
    ref_utils -= {"ast", "gzip", "os", "shutil", "sys", "tempfile", "np", "sitk", "torch"}
    ref_utils -= {"constants", "trange", "default_collate", "annotations", "cast", "overload"}
    missing = {n for n in ref_utils if callable(getattr(tio_ref.utils, n))} - set(dir(utils))
    assert not missing
