"""torchvox.io against SimpleITK, NiBabel and TorchIO 1.2.1 reading the same files."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

import torchvox as tio
from conftest import AFFINES
from torchvox.data import io

tio_ref = pytest.importorskip("torchio")

FLIP = np.diag([-1.0, -1.0, 1.0])
# Formats SimpleITK writes and reads with full 3D geometry.
SITK_FORMATS = [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".hdr", ".img", ".mnc"]
# Those NiBabel reads too (MINC2 would need h5py).
NIBABEL_FORMATS = {".nii", ".nii.gz", ".hdr", ".img"}


def sitk_geometry_to_ras(image: sitk.Image) -> np.ndarray:
    """Independent LPS -> RAS conversion of SimpleITK's geometry."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = FLIP @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = FLIP @ np.array(image.GetOrigin())
    return affine


def float_tolerance(suffix: str) -> float:
    # NIfTI and MINC store geometry as float32.
    return 1e-5 if suffix in (".nrrd", ".mha", ".mhd") else 1e-4


@pytest.mark.parametrize("suffix", SITK_FORMATS)
def test_round_trip_against_sitk_nibabel_and_torchio(tmp_path, suffix, named_affine, rng):
    name, affine = named_affine
    data = rng.random((1, 7, 8, 9)).astype(np.float32)
    path = tmp_path / f"image{suffix}"
    io.write_image(torch.from_numpy(data), affine, path)

    tensor, read_affine = io.read_image(path)
    assert tensor.dtype == torch.float32
    assert tuple(tensor.shape) == (1, 7, 8, 9)
    np.testing.assert_array_equal(tensor.numpy(), data)
    atol = float_tolerance(suffix)
    np.testing.assert_allclose(read_affine, affine, atol=atol)

    # SimpleITK's own reading of the file.
    sitk_image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk_image).T, data[0])
    np.testing.assert_allclose(read_affine, sitk_geometry_to_ras(sitk_image), atol=1e-9)

    # NiBabel's own reading of the file.
    if suffix in NIBABEL_FORMATS:
        nii = nib.load(str(path))
        np.testing.assert_allclose(nii.affine, read_affine, atol=atol)
        np.testing.assert_array_equal(np.asarray(nii.dataobj), data[0])
        image = tio.ScalarImage(path)
        assert image.orientation == nib.aff2axcodes(nii.affine)

    # TorchIO 1.2.1 reads the same tensor and affine.
    ref_tensor, ref_affine = tio_ref.io.read_image(path)
    assert ref_tensor.dtype == tensor.dtype
    np.testing.assert_array_equal(ref_tensor.numpy(), tensor.numpy())
    np.testing.assert_array_equal(ref_affine, read_affine)

    # Header-only reading agrees with the data.
    assert io.read_shape(path) == (1, 7, 8, 9) == tio_ref.io.read_shape(path)
    np.testing.assert_array_equal(io.read_affine(path), read_affine)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_torchio_written_files_read_identically(tmp_path, suffix, rng):
    affine = AFFINES["oblique"]
    data = torch.from_numpy(rng.integers(-100, 100, (2, 5, 6, 7)).astype(np.int16))
    path = tmp_path / f"ref{suffix}"
    tio_ref.io.write_image(data, affine, path)
    ours = io.read_image(path)
    theirs = tio_ref.io.read_image(path)
    assert ours[0].dtype == theirs[0].dtype == torch.int16
    np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert io.read_shape(path) == tio_ref.io.read_shape(path) == (2, 5, 6, 7)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.uint8, torch.uint8),
        (np.int16, torch.int16),
        (np.uint16, torch.int32),
        (np.int32, torch.int32),
        (np.uint32, torch.int64),
        (np.float32, torch.float32),
        (np.float64, torch.float64),
    ],
)
def test_dtypes_preserved_or_widened(tmp_path, dtype, expected):
    data = (np.arange(60).reshape(3, 4, 5) * 3).astype(dtype)
    path = tmp_path / "typed.nii.gz"
    nib.Nifti1Image(data, np.eye(4)).to_filename(path)
    tensor, _ = io.read_image(path)
    assert tensor.dtype == expected
    assert tensor.dtype == tio_ref.io.read_image(path)[0].dtype
    np.testing.assert_array_equal(tensor[0].numpy(), data.astype(np.int64))


def test_multichannel_nifti_written_as_vector(tmp_path, rng):
    data = rng.random((3, 4, 5, 6)).astype(np.float32)
    path = tmp_path / "vector.nii.gz"
    io.write_image(torch.from_numpy(data), AFFINES["lps"], path)
    tensor, affine = io.read_image(path)
    np.testing.assert_array_equal(tensor.numpy(), data)
    assert io.read_shape(path) == (3, 4, 5, 6)
    # NiBabel sees NIfTI's vector layout (W, H, D, 1, C).
    nii = nib.load(str(path))
    assert nii.shape == (4, 5, 6, 1, 3)
    np.testing.assert_array_equal(np.asarray(nii.dataobj)[:, :, :, 0].transpose(3, 0, 1, 2), data)
    np.testing.assert_allclose(affine, AFFINES["lps"], atol=1e-5)


def test_nibabel_writer_fallback_round_trip(tmp_path, rng):
    data = rng.random((2, 4, 5, 6)).astype(np.float32)
    path = tmp_path / "fallback.nii"
    io._write_nibabel(torch.from_numpy(data), AFFINES["oblique"], path)
    nii = nib.load(str(path))
    assert nii.header["qform_code"] == 1 and nii.header["sform_code"] == 0
    assert nii.header.get_intent()[0] == "vector"
    tensor, affine = io.read_image(path)
    np.testing.assert_array_equal(tensor.numpy(), data)
    np.testing.assert_allclose(affine, AFFINES["oblique"], atol=1e-5)
    ref = tio_ref.io.read_image(path)
    np.testing.assert_array_equal(ref[0].numpy(), tensor.numpy())


def test_nibabel_reader_fallback_for_mgh(tmp_path, rng):
    data = rng.random((5, 6, 7)).astype(np.float32)
    affine = AFFINES["ras_anisotropic"]
    path = tmp_path / "image.mgz"
    nib.MGHImage(data, affine).to_filename(path)
    with pytest.warns(RuntimeWarning, match="Trying NiBabel"):
        tensor, read_affine = io.read_image(path)
    np.testing.assert_array_equal(tensor[0].numpy(), data)
    np.testing.assert_allclose(read_affine, nib.load(str(path)).affine)
    with pytest.warns(RuntimeWarning):
        assert io.read_shape(path) == (1, 5, 6, 7)
    with pytest.warns(RuntimeWarning):
        np.testing.assert_allclose(io.read_affine(path), read_affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = tio.ScalarImage(path)
        assert image.shape == (1, 5, 6, 7)
        assert image.orientation == nib.aff2axcodes(affine)


def test_png_round_trip_grayscale_and_rgb(tmp_path, rng):
    from PIL import Image as PILImage

    gray = rng.integers(0, 256, (1, 12, 8, 1)).astype(np.uint8)
    path = tmp_path / "gray.png"
    with pytest.warns(RuntimeWarning, match="Casting to uint 8"):
        io.write_image(torch.from_numpy(gray), np.eye(4), path)
    tensor, affine = io.read_image(path)
    assert tuple(tensor.shape) == (1, 12, 8, 1)
    np.testing.assert_array_equal(tensor.numpy(), gray)
    # PIL reads (rows=H, columns=W).
    np.testing.assert_array_equal(np.asarray(PILImage.open(path)).T, gray[0, :, :, 0])
    # 2D files have an identity LPS direction, i.e. RAS diag(-1, -1, 1), as in TorchIO.
    np.testing.assert_array_equal(affine, np.diag([-1.0, -1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(affine, tio_ref.io.read_image(path)[1])

    rgb = rng.integers(0, 256, (3, 10, 6, 1)).astype(np.uint8)
    path = tmp_path / "rgb.png"
    with pytest.warns(RuntimeWarning):
        io.write_image(torch.from_numpy(rgb), np.eye(4), path)
    tensor, _ = io.read_image(path)
    assert tuple(tensor.shape) == (3, 10, 6, 1)
    np.testing.assert_array_equal(tensor.numpy(), rgb)
    np.testing.assert_array_equal(np.asarray(PILImage.open(path)).transpose(2, 1, 0), rgb[..., 0])
    image = tio.ScalarImage(path)
    assert image.is_2d() and image.width == 10 and image.height == 6
    assert image.shape == (3, 10, 6, 1)
    np.testing.assert_array_equal(tio_ref.ScalarImage(path).data.numpy(), image.data.numpy())


def test_png_float_data_cast_to_uint8(tmp_path):
    data = torch.full((1, 4, 4, 1), 200.7)
    path = tmp_path / "float.png"
    with pytest.warns(RuntimeWarning, match="uint 8"):
        tio.ScalarImage(tensor=data).save(path)
    tensor, _ = io.read_image(path)
    assert tensor.dtype == torch.uint8
    assert (tensor == 200).all()


def test_tiff_3d_kept_3d(tmp_path, rng):
    data = rng.random((1, 5, 6, 4)).astype(np.float32)
    path = tmp_path / "stack.tif"
    io.write_image(torch.from_numpy(data), np.eye(4), path, squeeze=False)
    tensor, _ = io.read_image(path)
    np.testing.assert_array_equal(tensor.numpy(), data)


def write_dicom_series(directory: Path, array: np.ndarray, spacing, origin) -> None:
    """Write an int16 (W, H, D) volume as one DICOM file per slice with SimpleITK."""
    directory.mkdir()
    volume = sitk.GetImageFromArray(array.T.copy())
    volume.SetSpacing(spacing)
    volume.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.123456789"
    for k in range(volume.GetDepth()):
        slice_image = volume[:, :, k]
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "MR",
            "0020|000e": series_uid,
            "0020|000d": series_uid + ".1",
            "0008|0018": f"{series_uid}.{k + 2}",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": f"{spacing[2]:.6f}",
        }
        for tag, value in tags.items():
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(directory / f"slice_{k:03d}.dcm"))
        writer.Execute(slice_image)


def test_dicom_series_directory(tmp_path, rng):
    array = rng.integers(-500, 1500, (6, 7, 5)).astype(np.int16)
    spacing = (0.75, 0.8, 2.5)
    origin = (10.0, -20.0, 30.0)
    directory = tmp_path / "dicom"
    write_dicom_series(directory, array, spacing, origin)

    tensor, affine = io.read_image(directory)
    assert tuple(tensor.shape) == (1, 6, 7, 5)
    np.testing.assert_array_equal(tensor[0].numpy(), array)
    expected = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    expected[:3, 3] = (-origin[0], -origin[1], origin[2])
    np.testing.assert_allclose(affine, expected, atol=1e-4)

    image = tio.ScalarImage(directory)
    assert image.shape == (1, 6, 7, 5)
    assert image.orientation == ("L", "P", "S")
    np.testing.assert_allclose(image.spacing, spacing, atol=1e-4)
    reference = tio_ref.ScalarImage(directory)
    np.testing.assert_array_equal(reference.data.numpy(), image.data.numpy())
    np.testing.assert_array_equal(reference.affine, image.affine)


def test_directory_without_dicom_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="DICOM"):
        io.read_image(tmp_path / "empty")


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "missing.nii.gz"
    for function in (io.read_image, io.read_shape, io.read_affine):
        with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
            function(path)


@pytest.mark.parametrize(
    "content",
    [b"this is not an image at all" * 10, gzip.compress(b"\x00" * 348)[:40]],
    ids=["garbage", "truncated_gzip"],
)
def test_corrupt_file_names_path(tmp_path, content):
    path = tmp_path / "corrupt.nii.gz"
    path.write_bytes(content)
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="corrupt.nii.gz"):
        io.read_image(path)
    image = tio.ScalarImage(path)  # the path exists, so this is fine until loading
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="not understood"):
        image.load()


def test_truncated_data_after_valid_header(tmp_path, rng):
    path = tmp_path / "cut.nii"
    nib.Nifti1Image(rng.random((8, 8, 8)).astype(np.float32), np.eye(4)).to_filename(path)
    path.write_bytes(path.read_bytes()[:600])
    # SimpleITK alone would silently pad the missing voxels with zeros.
    with pytest.raises(RuntimeError, match=r"cut.nii\" is truncated"):
        io.read_image(path)


@pytest.mark.parametrize(
    "dtype", ["u1", "i1", "<i2", ">i2", "<u2", ">f4", "<f4", "<f8", ">i4", "<u4", "<i8"]
)
def test_raw_nifti_reader_identical_to_simpleitk(tmp_path, dtype, named_affine, rng):
    _, affine = named_affine
    data = (rng.random((6, 7, 8)) * 100).astype(dtype)
    header = nib.Nifti1Header(endianness=np.dtype(dtype).byteorder.replace("|", "="))
    header.set_data_dtype(dtype)
    path = tmp_path / "raw.nii"
    nib.Nifti1Image(data, affine, header=header).to_filename(path)
    assert nib.load(str(path)).header.get_data_dtype() == np.dtype(dtype)
    fast = io._read_raw_nifti(path)
    assert fast is not None
    tensor, read_affine = fast
    sitk_image = sitk.ReadImage(str(path))
    expected = io.check_uint_to_int(sitk.GetArrayFromImage(sitk_image).T)
    assert tensor.numpy().dtype == expected.dtype
    np.testing.assert_array_equal(tensor[0].numpy(), expected)
    np.testing.assert_array_equal(read_affine, sitk_geometry_to_ras(sitk_image))
    np.testing.assert_array_equal(read_affine, tio_ref.io.read_image(path)[1])
    np.testing.assert_allclose(read_affine, affine, atol=1e-5)


def test_raw_nifti_reader_defers_to_simpleitk_for_scaling(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_slope_inter(2.0, 10.0)
    path = tmp_path / "scaled.nii"
    image.to_filename(path)
    assert io._read_raw_nifti(path) is None
    tensor, _ = io.read_image(path)
    np.testing.assert_allclose(tensor[0].numpy(), data * 2.0 + 10.0)
    np.testing.assert_array_equal(tensor.numpy(), tio_ref.io.read_image(path)[0].numpy())


def test_write_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="4D"):
        io.write_image(torch.zeros(4, 4, 4), np.eye(4), tmp_path / "x.nii")
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        io.write_image(torch.zeros(1, 4, 4, 4), np.eye(3), tmp_path / "x.nii")


@pytest.mark.parametrize("suffix", [".tfm", ".h5", ".txt", ".trsf"])
def test_matrix_round_trip_and_torchio_convention(tmp_path, suffix):
    from conftest import make_affine

    matrix = make_affine(spacing=(1.1, 0.9, 1.0), angles_degrees=(10, 20, -15), origin=(3, -4, 5))
    path = tmp_path / f"transform{suffix}"
    io.write_matrix(torch.as_tensor(matrix), path)
    read = io.read_matrix(path)
    assert read.dtype == torch.float64
    np.testing.assert_allclose(read.numpy(), matrix, atol=1e-7)
    # TorchIO reads our file into the same matrix, and we read TorchIO's.
    np.testing.assert_allclose(tio_ref.io.read_matrix(path).numpy(), matrix, atol=1e-7)
    other = tmp_path / f"torchio{suffix}"
    tio_ref.io.write_matrix(torch.as_tensor(matrix), other)
    np.testing.assert_allclose(io.read_matrix(other).numpy(), matrix, atol=1e-7)


def test_itk_matrix_file_is_lps_inverse(tmp_path):
    """The .tfm holds inv(F @ M @ F) with F = diag(-1, -1, 1): check with SimpleITK."""
    matrix = np.eye(4)
    matrix[:3, 3] = (5.0, 6.0, 7.0)
    path = tmp_path / "shift.tfm"
    io.write_matrix(matrix, path)
    parameters = sitk.ReadTransform(str(path)).GetParameters()
    np.testing.assert_allclose(parameters[9:], (5.0, 6.0, -7.0))
    niftyreg = tmp_path / "shift.txt"
    io.write_matrix(matrix, niftyreg)
    np.testing.assert_allclose(np.loadtxt(niftyreg)[:3, 3], (-5.0, -6.0, -7.0))


def test_matrix_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        io.read_matrix(tmp_path / "m.mat")
    with pytest.raises(ValueError, match="suffix"):
        io.write_matrix(np.eye(4), tmp_path / "m.mat")


def test_nib_to_sitk_and_back_match_torchio(named_affine, rng):
    _, affine = named_affine
    data = rng.random((1, 4, 5, 6)).astype(np.float32)
    ours = io.nib_to_sitk(data, affine)
    theirs = tio_ref.io.nib_to_sitk(data, affine)
    assert ours.GetSize() == theirs.GetSize() == (4, 5, 6)
    np.testing.assert_allclose(ours.GetOrigin(), theirs.GetOrigin())
    np.testing.assert_allclose(ours.GetSpacing(), theirs.GetSpacing())
    np.testing.assert_allclose(ours.GetDirection(), theirs.GetDirection(), atol=1e-12)
    np.testing.assert_allclose(sitk_geometry_to_ras(ours), affine, atol=1e-12)
    back, back_affine = io.sitk_to_nib(ours)
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(back_affine, affine, atol=1e-12)


def test_sitk_to_nib_vector_and_2d():
    vector = sitk.Image([6, 7, 8], sitk.sitkVectorFloat32, 3)
    data, affine = io.sitk_to_nib(vector)
    assert data.shape == (3, 6, 7, 8)
    np.testing.assert_array_equal(affine, np.diag([-1.0, -1.0, 1.0, 1.0]))
    planar = sitk.Image([224, 100], sitk.sitkUInt16)
    data, affine = io.sitk_to_nib(planar)
    assert data.shape == (1, 224, 100, 1)
    assert data.dtype == np.int32
    image = tio.LabelMap.from_sitk(sitk.Image(20, 30, 40, sitk.sitkUInt16))
    assert repr(image) == repr(tio_ref.LabelMap.from_sitk(sitk.Image(20, 30, 40, sitk.sitkUInt16)))


def test_metadata_from_affine_matches_torchio(named_affine):
    _, affine = named_affine
    for lps in (True, False):
        ours = io.get_sitk_metadata_from_ras_affine(affine, lps=lps)
        theirs = tio_ref.io.get_sitk_metadata_from_ras_affine(affine, lps=lps)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "spatial_dims", "expected"),
    [
        ((5, 6), None, (1, 5, 6, 1)),
        ((3, 5, 6), None, (3, 5, 6, 1)),
        ((5, 6, 3), None, (3, 5, 6, 1)),
        ((5, 6, 7), None, (1, 5, 6, 7)),
        ((5, 6, 7), 2, (5, 6, 7, 1)),
        ((3, 6, 7), 3, (1, 3, 6, 7)),
        ((2, 5, 6, 7), None, (2, 5, 6, 7)),
        ((5, 6, 7, 1, 4), None, (4, 5, 6, 7)),
    ],
)
def test_ensure_4d_matches_torchio(shape, spatial_dims, expected):
    data = torch.arange(int(np.prod(shape))).reshape(shape)
    ours = io.ensure_4d(data, num_spatial_dims=spatial_dims)
    theirs = tio_ref.io.ensure_4d(data, num_spatial_dims=spatial_dims)
    assert tuple(ours.shape) == expected
    assert torch.equal(ours, theirs)


def test_ensure_4d_rejects():
    with pytest.raises(ValueError, match="5D"):
        io.ensure_4d(torch.zeros(2, 3, 4, 2, 5))
    with pytest.raises(ValueError, match="6D"):
        io.ensure_4d(torch.zeros(1, 1, 1, 1, 1, 1))


def test_check_uint_to_int():
    assert io.check_uint_to_int(np.zeros(2, np.uint16)).dtype == np.int32
    assert io.check_uint_to_int(np.zeros(2, np.uint32)).dtype == np.int64
    array = np.zeros(2, np.uint8)
    assert io.check_uint_to_int(array) is array


def test_orientation_matches_nibabel_on_random_affines():
    generator = np.random.default_rng(99)
    for _ in range(300):
        affine = np.eye(4)
        affine[:3, :3] = generator.normal(size=(3, 3))
        np.testing.assert_array_equal(io.io_orientation(affine), nib.io_orientation(affine))
        assert io.aff2axcodes(affine) == nib.aff2axcodes(affine)


def test_reorient_to_ras_matches_nibabel(named_affine, rng):
    _, affine = named_affine
    data = rng.random((2, 4, 5, 6)).astype(np.float32)
    array, new_affine = io.reorient_to_ras(data, affine)
    nii = nib.Nifti1Image(data.transpose(1, 2, 3, 0), affine)
    canonical = nib.as_closest_canonical(nii)
    np.testing.assert_array_equal(array, np.asarray(canonical.dataobj).transpose(3, 0, 1, 2))
    np.testing.assert_allclose(new_affine, canonical.affine, atol=1e-12)


@pytest.mark.parametrize("suffix", [".bmp", ".jpg", ".jpeg", ".tif", ".tiff"])
def test_other_2d_formats(tmp_path, suffix, rng):
    data = rng.integers(0, 256, (1, 16, 12, 1)).astype(np.uint8)
    path = tmp_path / f"image{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # uint8 cast notice
        io.write_image(torch.from_numpy(data), np.eye(4), path)
    tensor, _ = io.read_image(path)
    reference, _ = tio_ref.io.read_image(path)
    np.testing.assert_array_equal(tensor.numpy(), reference.numpy())
    # ITK reads its grayscale BMPs back as RGB with three equal channels.
    assert tuple(tensor.shape) == ((3,) if suffix == ".bmp" else (1,)) + (16, 12, 1)
    assert (tensor == tensor[:1]).all()
    tensor = tensor[:1]
    if suffix not in (".jpg", ".jpeg"):  # lossless formats
        np.testing.assert_array_equal(tensor.numpy(), data)
    else:
        assert np.abs(tensor.numpy().astype(int) - data.astype(int)).mean() < 60
