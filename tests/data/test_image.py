"""Image, ScalarImage and LabelMap against TorchIO 1.2.1 and NiBabel."""

from __future__ import annotations

import copy
import pickle
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch

import torchvox as tio
from conftest import AFFINES

tio_ref = pytest.importorskip("torchio")


def both(cls_name: str, **kwargs):
    """The same image built with torchvox and TorchIO."""
    return getattr(tio, cls_name)(**kwargs), getattr(tio_ref, cls_name)(**kwargs)


# ------------------------------------------------------------------------ construction


def test_dict_items_and_key_order_match_torchio(rng):
    tensor = torch.from_numpy(rng.random((1, 3, 4, 5)))
    ours, theirs = both("ScalarImage", tensor=tensor, affine=AFFINES["oblique"], subject_id=7)
    assert list(ours.keys()) == list(theirs.keys())
    assert ours["subject_id"] == 7
    assert ours["path"] == "" and ours["stem"] == "" and ours["type"] == tio.INTENSITY
    assert ours["data"] is ours.data is ours.tensor
    assert isinstance(ours, dict)


def test_repr_identical_to_torchio(named_affine, rng):
    _, affine = named_affine
    for dtype in (torch.float64, torch.float32, torch.int16, torch.uint8, torch.int64):
        tensor = torch.from_numpy(rng.random((2, 10, 20, 30))).to(dtype)
        for cls in ("ScalarImage", "LabelMap"):
            ours, theirs = both(cls, tensor=tensor, affine=affine)
            assert repr(ours) == repr(theirs)


def test_repr_memory_sizes():
    image = tio.ScalarImage(tensor=torch.zeros(1, 10, 20, 30, dtype=torch.float64))
    assert repr(image).endswith("dtype: torch.DoubleTensor; memory: 46.9 KiB)")
    assert tio.utils.format_bytes(1) == "1 Byte"
    assert tio.utils.format_bytes(1023) == "1023 Bytes"
    assert tio.utils.format_bytes(1024**2 - 1) == "1.0 MiB"
    assert tio.utils.format_bytes(44 * 1024**2) == "44.0 MiB"


def test_lazy_file_repr_and_header_only(subject_files):
    path = subject_files["t1"]
    ours = tio.ScalarImage(path)
    theirs = tio_ref.ScalarImage(path)
    assert repr(ours) == repr(theirs)
    assert not ours._loaded
    assert "data" not in ours
    assert ours.shape == (1, 9, 11, 13) == theirs.shape
    np.testing.assert_array_equal(ours.affine, nib.load(str(path)).affine)
    assert not ours._loaded  # shape and affine came from the header
    assert ours["stem"] == "t1"
    assert ours["path"] == str(path)
    data = ours.data
    assert ours._loaded
    np.testing.assert_array_equal(data.numpy(), theirs.data.numpy())
    assert repr(ours) == repr(theirs)


def test_affine_is_live_array_when_loaded(rng):
    image = tio.ScalarImage(tensor=torch.zeros(1, 2, 3, 4))
    image.affine[0, 3] = 12.5
    assert image.origin == (12.5, 0.0, 0.0)
    assert image.affine is image["affine"]


def test_dtype_conversions():
    for array_dtype, expected in [
        (np.uint16, torch.int32),
        (np.uint32, torch.int64),
        (np.bool_, torch.uint8),
        (np.int8, torch.int8),
    ]:
        image = tio.LabelMap(tensor=np.zeros((1, 2, 2, 2), dtype=array_dtype))
        assert image.data.dtype == expected
    assert tio.LabelMap(tensor=torch.zeros(1, 2, 2, 2, dtype=torch.bool)).data.dtype == torch.uint8
    assert tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=torch.eye(4)).affine.dtype == (
        np.float64
    )


def test_constructor_errors(tmp_path):
    with pytest.raises(ValueError, match="path or tensor"):
        tio.ScalarImage()
    with pytest.raises(ValueError, match="4D"):
        tio.ScalarImage(tensor=torch.zeros(2, 3, 4))
    with pytest.raises(TypeError, match="tensor=your_tensor"):
        tio.ScalarImage(torch.zeros(1, 2, 2, 2))
    with pytest.raises(TypeError, match="dictionary"):
        tio.ScalarImage({"a": 1})
    with pytest.raises(TypeError, match="PyTorch tensor or NumPy array"):
        tio.ScalarImage(tensor=[[[[1]]]])
    with pytest.raises(TypeError, match="Affine must be a NumPy array"):
        tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=[[1]])
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2), affine=np.eye(3))
    for key in ("data", "stem"):  # the other reserved keys are named arguments
        with pytest.raises(ValueError, match="reserved"):
            tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2), **{key: 1})
    missing = tmp_path / "nope.nii.gz"
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        tio.ScalarImage(missing)
    tio.ScalarImage(missing, verify_path=False)  # no check
    with pytest.raises(ValueError, match="ScalarImage"):
        tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2), type=tio.LABEL)
    with pytest.raises(ValueError, match="LabelMap"):
        tio.LabelMap(tensor=torch.zeros(1, 2, 2, 2), type=tio.INTENSITY)
    with pytest.warns(FutureWarning):
        image = tio.Image(tensor=torch.zeros(1, 2, 2, 2))
    assert image.type == tio.INTENSITY
    with pytest.warns(FutureWarning, match="channels_last"):
        tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2), channels_last=True)


def test_check_nans_warns():
    tensor = torch.zeros(1, 2, 2, 2)
    tensor[0, 0, 0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="NaN"):
        tio.ScalarImage(tensor=tensor, check_nans=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tio.ScalarImage(tensor=tensor)


def test_data_setter_deprecated_and_set_data():
    image = tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
    with pytest.warns(DeprecationWarning):
        image.data = torch.ones(1, 3, 3, 3)
    assert image.shape == (1, 3, 3, 3)
    image.set_data(np.ones((2, 1, 1, 1), dtype=np.uint16))
    assert image.data.dtype == torch.int32
    with pytest.raises(ValueError, match="4D"):
        image.set_data(torch.zeros(3))


def test_multiple_paths_concatenated(subject_files, tmp_path):
    paths = [subject_files["t1"], subject_files["t1"]]
    image = tio.ScalarImage(paths)
    assert image.shape == (2, 9, 11, 13)
    assert image["stem"] == ["t1", "t1"]
    reference = tio_ref.ScalarImage(paths)
    np.testing.assert_array_equal(image.data.numpy(), reference.data.numpy())
    other = tmp_path / "other.nii.gz"
    nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)).to_filename(other)
    with (
        pytest.warns(RuntimeWarning, match="different affine"),
        pytest.raises(RuntimeError, match="shape"),
    ):
        tio.ScalarImage([subject_files["t1"], other]).load()


def test_custom_reader(tmp_path):
    path = tmp_path / "volume.npy"
    array = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    np.save(path, array)

    def numpy_reader(p):
        return np.load(p), None

    image = tio.ScalarImage(path, reader=numpy_reader)
    assert image.shape == (1, 2, 3, 4)  # 3D data gets a channel dimension
    assert image.data.dtype == torch.int32
    np.testing.assert_array_equal(image.affine, np.eye(4))


def test_load_unload(subject_files):
    image = tio.ScalarImage(subject_files["t1"])
    with pytest.raises(RuntimeError, match="not been loaded"):
        image.unload()
    image.load()
    first = image.data.clone()
    image.unload()
    assert not image._loaded and image["data"] is None
    assert torch.equal(image.data, first)
    with pytest.raises(RuntimeError, match="no path"):
        tio.ScalarImage(tensor=torch.zeros(1, 1, 1, 1)).unload()


# ------------------------------------------------------------------------- properties


@pytest.mark.parametrize("shape", [(1, 10, 12, 14), (3, 5, 6, 1)])
def test_properties_match_torchio(named_affine, shape, rng):
    _, affine = named_affine
    tensor = torch.from_numpy(rng.random(shape).astype(np.float32))
    ours, theirs = both("ScalarImage", tensor=tensor, affine=affine)
    assert ours.shape == theirs.shape
    assert ours.spatial_shape == theirs.spatial_shape
    assert ours.orientation == theirs.orientation == nib.aff2axcodes(affine)
    assert ours.orientation_str == theirs.orientation_str
    np.testing.assert_allclose(ours.direction, theirs.direction, atol=1e-12)
    np.testing.assert_allclose(ours.spacing, theirs.spacing)
    np.testing.assert_allclose(ours.spacing, nib.affines.voxel_sizes(affine))
    assert ours.origin == tuple(theirs.origin)
    assert ours.itemsize == theirs.itemsize == 4
    assert ours.memory == theirs.memory
    np.testing.assert_allclose(ours.bounds, theirs.bounds)
    np.testing.assert_allclose(ours.get_bounds(), theirs.get_bounds())
    assert ours.num_channels == theirs.num_channels
    np.testing.assert_allclose(ours.get_center(), theirs.get_center())
    np.testing.assert_allclose(ours.get_center(lps=True), theirs.get_center(lps=True))
    assert ours.get_spacing_string() == theirs.get_spacing_string()
    assert ours.is_2d() == theirs.is_2d() == (shape[-1] == 1)
    for axis in ("Left", "r", "Anterior", "p", "S", "inferior"):
        assert ours.axis_name_to_index(axis) == theirs.axis_name_to_index(axis)
    # get_center is the world position of the middle voxel (analytic).
    middle = (np.asarray(shape[1:]) - 1) / 2
    np.testing.assert_allclose(ours.get_center(), affine[:3, :3] @ middle + affine[:3, 3])


def test_2d_properties():
    image = tio.ScalarImage(tensor=torch.zeros(1, 7, 5, 1))
    assert image.width == 7 and image.height == 5
    assert image.axis_name_to_index("Top") == -2 == image.axis_name_to_index("bottom")
    volume = tio.ScalarImage(tensor=torch.zeros(1, 7, 5, 3))
    with pytest.raises(RuntimeError, match="not 2D"):
        _ = volume.height


def test_flip_axis():
    for a, b in ("LR", "PA", "IS", "TB", "DV"):
        assert tio.Image.flip_axis(a) == b and tio.Image.flip_axis(b.lower()) == a
    assert tio.Image.flip_axis("Left") == "R"
    with pytest.raises(ValueError, match="Axis not understood"):
        tio.Image.flip_axis("X")
    with pytest.raises(ValueError, match="string"):
        tio.ScalarImage(tensor=torch.zeros(1, 1, 1, 1)).axis_name_to_index(0)


def test_numpy_and_array():
    tensor = torch.arange(8.0).reshape(1, 2, 2, 2)
    image = tio.ScalarImage(tensor=tensor)
    array = image.numpy()
    assert isinstance(array, np.ndarray)
    np.testing.assert_array_equal(array, tensor.numpy())
    assert np.asarray(image, dtype=np.int64).dtype == np.int64


def test_label_map_counts(rng):
    values = rng.integers(0, 4, (1, 5, 6, 7))
    label = tio.LabelMap(tensor=torch.from_numpy(values))
    reference = tio_ref.LabelMap(tensor=torch.from_numpy(values))
    assert label.count_nonzero() == int(np.count_nonzero(values)) == reference.count_nonzero()
    assert label.count_labels() == reference.count_labels()
    assert list(label.count_labels()) == [0, 1, 2, 3]


# ------------------------------------------------------------------------ conversions


def test_save_and_reload(tmp_path, named_affine, rng):
    _, affine = named_affine
    tensor = torch.from_numpy(rng.random((2, 4, 5, 6)).astype(np.float32))
    image = tio.ScalarImage(tensor=tensor, affine=affine)
    path = tmp_path / "saved.nii.gz"
    image.save(path)
    loaded = tio.ScalarImage(path)
    assert torch.equal(loaded.data, tensor)
    np.testing.assert_allclose(loaded.affine, affine, atol=1e-5)
    assert loaded.orientation == image.orientation


def test_sitk_round_trip_matches_torchio(named_affine, rng):
    _, affine = named_affine
    tensor = torch.from_numpy(rng.random((1, 4, 5, 6)).astype(np.float32))
    ours, theirs = both("ScalarImage", tensor=tensor, affine=affine)
    sitk_ours = ours.as_sitk()
    assert sitk_ours.GetSize() == theirs.as_sitk().GetSize()
    np.testing.assert_allclose(sitk_ours.GetDirection(), theirs.as_sitk().GetDirection())
    back = tio.ScalarImage.from_sitk(sitk_ours)
    assert torch.equal(back.data, tensor)
    np.testing.assert_allclose(back.affine, affine, atol=1e-12)
    assert repr(back) == repr(tio_ref.ScalarImage.from_sitk(theirs.as_sitk()))


def test_as_pil(rng):
    data = torch.from_numpy(rng.integers(0, 300, (3, 8, 6, 1)).astype(np.float32))
    ours, theirs = both("ScalarImage", tensor=data)
    np.testing.assert_array_equal(np.asarray(ours.as_pil()), np.asarray(theirs.as_pil()))
    gray = tio.ScalarImage(tensor=data[:1])
    pil = gray.as_pil()
    assert pil.size == (8, 6)
    np.testing.assert_array_equal(
        np.asarray(pil)[..., 0], data[0, :, :, 0].clamp(0, 255).numpy().T.astype(np.uint8)
    )
    with pytest.raises(NotImplementedError):
        tio.ScalarImage(tensor=torch.zeros(2, 3, 3, 1)).as_pil()


def test_to_ras_matches_torchio_to_canonical(named_affine, rng):
    _, affine = named_affine
    tensor = torch.from_numpy(rng.random((2, 4, 5, 6)).astype(np.float32))
    ours = tio.ScalarImage(tensor=tensor, affine=affine, extra="kept")
    theirs = tio_ref.ToCanonical()(tio_ref.ScalarImage(tensor=tensor, affine=affine))
    ras = ours.to_ras()
    assert ras.orientation_str == "RAS"
    assert torch.equal(ras.data, theirs.data)
    np.testing.assert_allclose(ras.affine, theirs.affine, atol=1e-12)
    assert ras["extra"] == "kept"
    if ours.orientation_str == "RAS":
        assert ras is ours
    else:
        assert ras is not ours and torch.equal(ours.data, tensor)


# ---------------------------------------------------------------------------- slicing


@pytest.mark.parametrize(
    "index",
    [
        (slice(2, 7), slice(None), slice(1, -1)),
        slice(3, None),
        3,
        (slice(None), 4),
        (1, 2, 3),
        (slice(-4, -1), slice(0, 5), slice(None, 2)),
    ],
)
def test_slicing_matches_torchio(index, rng):
    affine = AFFINES["oblique"]
    tensor = torch.from_numpy(rng.random((2, 8, 9, 10)).astype(np.float32))
    ours, theirs = both("ScalarImage", tensor=tensor, affine=affine)
    sliced = ours[index]
    reference = theirs[index]
    assert type(sliced) is tio.ScalarImage
    assert torch.equal(sliced.data, reference.data)
    np.testing.assert_allclose(sliced.affine, reference.affine, atol=1e-12)
    # Each voxel keeps its world position.
    full = index if isinstance(index, tuple) else (index,)
    starts = []
    for dim, item in enumerate(full + (slice(None),) * (3 - len(full))):
        if isinstance(item, int):
            starts.append(item)
        else:
            starts.append(item.indices(tensor.shape[dim + 1])[0])
    np.testing.assert_allclose(sliced.origin, affine[:3, :3] @ starts + affine[:3, 3])


def test_slicing_keeps_path_and_metadata(subject_files):
    image = tio.LabelMap(subject_files["label"], meta={"a": 1})
    sliced = image[2:4]
    assert type(sliced) is tio.LabelMap
    assert sliced.path == image.path and sliced["meta"] == {"a": 1}
    assert sliced["meta"] is not image["meta"]
    assert sliced.shape == (1, 2, 11, 13)


def test_slicing_errors():
    image = tio.ScalarImage(tensor=torch.zeros(1, 4, 4, 4))
    with pytest.raises(ValueError, match="steps"):
        image[::2]
    with pytest.raises(NotImplementedError, match="Ellipsis"):
        image[..., 1]
    with pytest.raises(TypeError, match="Slice type"):
        image[(1.5,)]
    with pytest.raises(IndexError):
        image[4]
    with pytest.raises(IndexError):
        image[0, 0, 0, 0]


# ------------------------------------------------------------------- copies, pickling


def test_copy_and_deepcopy(subject_files, rng):
    tensor = torch.from_numpy(rng.random((1, 2, 3, 4)))
    image = tio.ScalarImage(tensor=tensor, affine=AFFINES["lps"], note="x")
    shallow = copy.copy(image)
    assert type(shallow) is tio.ScalarImage
    assert shallow.data is image.data and shallow["note"] == "x"
    deep = copy.deepcopy(image)
    assert torch.equal(deep.data, image.data) and deep.data is not image.data
    np.testing.assert_array_equal(deep.affine, image.affine)
    lazy = tio.LabelMap(subject_files["label"])
    lazy_copy = copy.copy(lazy)
    assert not lazy_copy._loaded and lazy_copy.path == lazy.path


def test_pickle_round_trip(subject_files):
    image = tio.ScalarImage(subject_files["t1"], note=3)
    restored = pickle.loads(pickle.dumps(image))
    assert restored["note"] == 3 and restored.path == image.path
    assert torch.equal(restored.data, image.data)
    image.load()
    restored = pickle.loads(pickle.dumps(image))
    assert restored._loaded and torch.equal(restored.data, image.data)


def test_non_contiguous_and_empty_tensors(tmp_path, rng):
    base = torch.from_numpy(rng.random((6, 5, 4, 1)).astype(np.float32))
    permuted = base.permute(3, 2, 1, 0)  # (1, 4, 5, 6), not contiguous
    assert not permuted.is_contiguous()
    image = tio.ScalarImage(tensor=permuted, affine=AFFINES["oblique"])
    assert image.shape == (1, 4, 5, 6)
    path = tmp_path / "permuted.nii.gz"
    image.save(path)
    assert torch.equal(tio.ScalarImage(path).data, permuted)
    assert torch.equal(image[1:3].data, permuted[:, 1:3])
    empty = tio.ScalarImage(tensor=torch.zeros(1, 0, 3, 3))
    assert empty.memory == 0 and "memory: 0 Bytes" in repr(empty)
