"""The Rust NIfTI-1/2 reader and writer against nibabel on every variant nibabel writes."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from torchvox._backend import native

AFFINE = np.array(
    [
        [0.0, -1.5, 0.1, 12.0],
        [2.0, 0.0, 0.0, -30.5],
        [0.0, 0.2, 3.0, 7.25],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
#: On-disk dtype -> dtype TorchIO (via SimpleITK) gives when no scaling applies.
DTYPES = {
    np.uint8: np.uint8,
    np.int8: np.int8,
    np.int16: np.int16,
    np.uint16: np.int32,
    np.int32: np.int32,
    np.uint32: np.int64,
    np.int64: np.int64,
    np.float32: np.float32,
    np.float64: np.float64,
}


def _nibabel_reference(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(C, I, J, K) data and affine as nibabel reads them (channels = dims past 3)."""
    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    spatial = data.shape[:3] + (1,) * (3 - min(data.ndim, 3))
    data = data.reshape(*spatial, -1, order="F")
    return np.moveaxis(data, -1, 0), image.affine


def _save(image: nib.Nifti1Image, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nib.save(image, str(path))
    return path


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_every_datatype_matches_nibabel(tmp_path: Path, dtype: type, suffix: str) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        data = rng.integers(max(info.min, -1000), min(info.max, 1000), (7, 6, 5)).astype(dtype)
    else:
        data = rng.normal(size=(7, 6, 5)).astype(dtype)
    path = _save(nib.Nifti1Image(data, AFFINE, dtype=dtype), tmp_path / f"a{suffix}")
    array, affine = native().nifti_read(path)
    expected, expected_affine = _nibabel_reference(path)
    assert array.dtype == DTYPES[dtype]
    assert array.shape == (1, 7, 6, 5) and array.flags.c_contiguous
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_array_equal(affine, expected_affine)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
@pytest.mark.parametrize(("slope", "inter"), [(2.0, 1.0), (0.5, 0.0), (1.0, -3.0)])
def test_scaling_matches_nibabel(tmp_path: Path, dtype: type, slope: float, inter: float) -> None:
    data = (np.arange(7 * 6 * 5) % 200).reshape(7, 6, 5).astype(dtype)
    image = nib.Nifti1Image(data, AFFINE, dtype=dtype)
    image.header.set_slope_inter(slope, inter)
    path = _save(image, tmp_path / "scaled.nii")
    array, _ = native().nifti_read(path)
    # SimpleITK (hence TorchIO) gives float32 for scaled data, float64 if stored as float64.
    assert array.dtype == (np.float64 if dtype == np.float64 else np.float32)
    np.testing.assert_allclose(array[0], nib.load(str(path)).get_fdata(), rtol=1e-6)


def test_qform_only_sform_and_fallback_affines(tmp_path: Path) -> None:
    data = np.zeros((4, 5, 6), np.float32)
    # qform only, with a rotation and a negative qfac (left-handed affine).
    rotation = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    qaffine = np.eye(4)
    qaffine[:3, :3] = rotation @ np.diag([1.2, 0.8, 2.5])
    qaffine[:3, 3] = [3, -4, 5]
    image = nib.Nifti1Image(data, None)
    image.header.set_qform(qaffine, code=1)
    image.header.set_sform(None, code=0)
    path = _save(image, tmp_path / "q.nii")
    _, affine = native().nifti_read(path)
    np.testing.assert_allclose(affine, nib.load(str(path)).affine, rtol=0, atol=1e-12)
    np.testing.assert_allclose(affine, qaffine, atol=1e-5)
    # sform and qform disagree: sform wins (nibabel's get_best_affine).
    image = nib.Nifti1Image(data, None)
    image.header.set_qform(qaffine, code=1)
    image.header.set_sform(AFFINE, code=2)
    path = _save(image, tmp_path / "s.nii")
    _, affine = native().nifti_read(path)
    np.testing.assert_array_equal(affine, nib.load(str(path)).affine)
    # Neither: nibabel's centred fallback.
    image = nib.Nifti1Image(data, None)
    image.header.set_qform(None, code=0)
    image.header.set_sform(None, code=0)
    image.header.set_zooms((2.0, 3.0, 4.0))
    path = _save(image, tmp_path / "none.nii")
    _, affine = native().nifti_read(path)
    np.testing.assert_array_equal(affine, nib.load(str(path)).affine)


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (4, 5, 6, 1, 2), (4, 5, 6, 2, 3), (4, 5)])
def test_4d_5d_and_2d_volumes(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    path = _save(nib.Nifti1Image(data, AFFINE), tmp_path / "multi.nii.gz")
    array, _ = native().nifti_read(path)
    expected, _ = _nibabel_reference(path)
    np.testing.assert_array_equal(array, expected)
    header = native().nifti_read_header(path)
    assert header["shape"] == array.shape


@pytest.mark.parametrize("nifti2", [False, True])
def test_big_endian_and_nifti2_files(tmp_path: Path, nifti2: bool) -> None:
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4) - 50
    image_class = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    header_class = nib.Nifti2Header if nifti2 else nib.Nifti1Header
    header = header_class(endianness=">")
    image = image_class(data.astype(">i2"), AFFINE, header=header)
    image.header.set_slope_inter(0.5, 2)
    path = _save(image, tmp_path / "big.nii")
    assert nib.load(str(path)).header.endianness == ">"
    array, affine = native().nifti_read(path)
    info = native().nifti_read_header(path)
    assert info["big_endian"] and info["version"] == (2 if nifti2 else 1)
    np.testing.assert_allclose(array[0], nib.load(str(path)).get_fdata(), rtol=1e-7)
    np.testing.assert_array_equal(affine, nib.load(str(path)).affine)


@pytest.mark.parametrize("nifti2", [False, True])
@pytest.mark.parametrize("compression", [None, 6])
def test_writer_is_read_back_by_nibabel(tmp_path: Path, nifti2: bool, compression) -> None:
    rng = np.random.default_rng(2)
    volume = rng.normal(size=(2, 7, 6, 5)).astype(np.float32)
    suffix = ".nii.gz" if compression else ".nii"
    path = tmp_path / f"written{suffix}"
    native().nifti_write(path, volume, AFFINE, compression, nifti2)
    image = nib.load(str(path))
    assert isinstance(image, nib.Nifti2Image if nifti2 else nib.Nifti1Image)
    expected, affine = _nibabel_reference(path)
    np.testing.assert_array_equal(expected, volume)
    np.testing.assert_allclose(affine, AFFINE, atol=1e-6)
    # The qform agrees with the sform up to its float32 storage and the shear.
    rigid = AFFINE.copy()
    np.testing.assert_allclose(image.header.get_qform()[:3, 3], rigid[:3, 3], atol=1e-5)
    array, _ = native().nifti_read(path)
    np.testing.assert_array_equal(array, volume)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_crop_first_read_equals_slicing(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(4)
    data = (rng.random((2, 23, 19, 17)) * 100).astype(dtype)
    path = tmp_path / "crop.nii"
    native().nifti_write(path, data, AFFINE)
    region = ((3, 20), (0, 7), (16, 17))
    part, affine = native().nifti_read(path, region)
    np.testing.assert_array_equal(part, data[:, 3:20, 0:7, 16:17])
    np.testing.assert_array_equal(affine, native().nifti_read(path)[1])
    with pytest.raises(ValueError, match="region"):
        native().nifti_read(path, ((0, 24), (0, 1), (0, 1)))
    with pytest.raises(ValueError, match="region"):
        native().nifti_read(path, ((5, 5), (0, 1), (0, 1)))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_region_of_a_compressed_multichannel_file_matches_nibabel(
    tmp_path: Path, dtype: type
) -> None:
    # Compressed files are decoded from memory by row-range tasks; odd extents
    # leave partial blocks of planes, and the region starts inside every axis.
    rng = np.random.default_rng(8)
    data = (rng.random((37, 29, 23, 3)) * 120 - 20).astype(dtype)
    path = tmp_path / "channels.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    reference = np.asarray(nib.load(path).dataobj)
    whole, _ = native().nifti_read(path)
    np.testing.assert_array_equal(whole, np.moveaxis(reference, -1, 0))
    region = ((3, 36), (5, 28), (1, 22))
    part, _ = native().nifti_read(path, region)
    expected = np.moveaxis(reference[3:36, 5:28, 1:22], -1, 0)
    np.testing.assert_array_equal(part, expected)


def test_consecutive_compressed_reads_see_only_their_own_bytes(tmp_path: Path) -> None:
    # Each thread reuses its inflate buffer: a large file, a smaller one (shorter
    # than the bytes left from the first) and the large one again.
    rng = np.random.default_rng(9)
    large = rng.normal(size=(30, 31, 32)).astype(np.float32)
    small = rng.integers(0, 200, size=(7, 9, 5)).astype(np.int16)
    paths = [tmp_path / "large.nii.gz", tmp_path / "small.nii.gz"]
    nib.save(nib.Nifti1Image(large, np.eye(4)), paths[0])
    nib.save(nib.Nifti1Image(small, np.eye(4)), paths[1])
    for path, expected in [(paths[0], large), (paths[1], small), (paths[0], large)] * 2:
        array, _ = native().nifti_read(path)
        np.testing.assert_array_equal(array[0], expected)


def test_consecutive_region_reads_match_nibabel(tmp_path: Path) -> None:
    # Direct reads reuse one slab buffer per thread: a large read, a small one and
    # a large one again must each see only their own bytes. The 32 x 32 planes
    # are 4 KiB apart, the layout whose transpose order was tuned.
    rng = np.random.default_rng(6)
    data = rng.normal(size=(45, 37, 40)).astype(np.float32)
    path = tmp_path / "regions.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    reference = np.asarray(nib.load(path).dataobj)
    regions = [
        ((5, 37), (2, 34), (3, 35)),
        ((1, 4), (30, 37), (0, 2)),
        ((13, 45), (0, 32), (8, 40)),
    ]
    for region in regions * 2:
        part, _ = native().nifti_read(path, region)
        (i0, i1), (j0, j1), (k0, k1) = region
        np.testing.assert_array_equal(part[0], reference[i0:i1, j0:j1, k0:k1])


def test_corrupt_and_truncated_files_name_the_path(tmp_path: Path) -> None:
    data = np.ones((5, 5, 5), np.float32)
    good = _save(nib.Nifti1Image(data, AFFINE), tmp_path / "good.nii")
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.nii"
    truncated.write_bytes(raw[:-7])
    with pytest.raises(ValueError, match="truncated.nii.*truncated data"):
        native().nifti_read(truncated)
    garbage = tmp_path / "garbage.nii"
    garbage.write_bytes(b"\x00" * 400)
    with pytest.raises(ValueError, match="garbage.nii"):
        native().nifti_read(garbage)
    with pytest.raises(ValueError, match="garbage.nii"):
        native().nifti_read_header(garbage)
    bad_gzip = tmp_path / "bad.nii.gz"
    bad_gzip.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(ValueError, match="bad.nii.gz"):
        native().nifti_read(bad_gzip)
    empty = tmp_path / "empty.nii"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.nii"):
        native().nifti_read(empty)
    with pytest.raises(ValueError, match="missing.nii"):
        native().nifti_read(tmp_path / "missing.nii")
    bad_type = nib.Nifti1Image(data.astype(np.complex64), AFFINE)
    complex_path = _save(bad_type, tmp_path / "complex.nii")
    with pytest.raises(ValueError, match="complex.nii.*datatype"):
        native().nifti_read(complex_path)


def test_mni_template_matches_nibabel() -> None:
    from nilearn import datasets

    path = (
        Path(datasets.__file__).parent / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )
    array, affine = native().nifti_read(path)
    image = nib.load(str(path))
    np.testing.assert_array_equal(array[0], np.asanyarray(image.dataobj))
    np.testing.assert_array_equal(affine, image.affine)


# ---------------------------------------------------------------- the Python fast path


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_read_image_fast_path_matches_torchio(tmp_path: Path, dtype: type, suffix: str) -> None:
    import torchio

    from torchvox.data import io
    from torchvox.data.nifti import read_image_fast

    rotation = np.eye(4)
    rotation[:3, :3] = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    rotation[:3, 3] = [4, -2, 9]
    data = (np.random.default_rng(5).random((7, 6, 5)) * 100).astype(dtype)
    path = _save(nib.Nifti1Image(data, rotation @ np.diag([1.5, 1, 2, 1])), tmp_path / f"f{suffix}")
    fast = read_image_fast(path)
    assert fast is not None
    tensor, affine = io.read_image(path)
    reference, reference_affine = torchio.io.read_image(path)
    assert tensor.dtype == reference.dtype and tensor.is_contiguous()
    np.testing.assert_array_equal(tensor.numpy(), reference.numpy())
    np.testing.assert_array_equal(affine, reference_affine)


def test_read_image_fast_path_defers_to_other_readers(tmp_path: Path) -> None:
    from torchvox.data.nifti import read_image_fast

    sheared = _save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), AFFINE), tmp_path / "s.nii")
    assert read_image_fast(sheared) is None  # SimpleITK refuses it: TorchIO uses NiBabel
    garbage = tmp_path / "garbage.nii"
    garbage.write_bytes(b"nonsense" * 100)
    assert read_image_fast(garbage) is None
    assert read_image_fast(tmp_path / "image.nrrd") is None


def test_sitk_header_is_remembered_by_its_fields(tmp_path: Path, monkeypatch) -> None:
    import torchio

    from torchvox.data import io, nifti

    def oblique(angle: float) -> np.ndarray:
        c, s = np.cos(angle), np.sin(angle)
        affine = np.diag([1.5, 1.0, 2.0, 1.0])
        affine[:2, :2] = [[1.5 * c, -s], [1.5 * s, c]]
        affine[:3, 3] = [3.0, -4.0, 5.0]
        return affine

    reads: list[str] = []
    real_reader = io.get_reader
    monkeypatch.setattr(io, "get_reader", lambda path: reads.append(str(path)) or real_reader(path))
    data = np.random.default_rng(9).random((6, 5, 4)).astype(np.float32)
    path = _save(nib.Nifti1Image(data, oblique(0.3)), tmp_path / "head.nii.gz")
    first = nifti.read_image_fast(path)
    assert first is not None and len(reads) == 1
    first[1][0, 0] = 99.0  # the caller's affine is its own
    again = nifti.read_image_fast(path)
    assert again is not None and len(reads) == 1
    np.testing.assert_array_equal(again[1], torchio.io.read_image(path)[1])
    # Rewritten with another orientation (and the same size): read again.
    _save(nib.Nifti1Image(data, oblique(-0.7)), path)
    changed = nifti.read_image_fast(path)
    assert changed is not None and len(reads) == 2
    np.testing.assert_array_equal(changed[1], torchio.io.read_image(path)[1])
    # Only the qform differs (the sform, which nibabel's affine shows, does not).
    image = nib.Nifti1Image(data, oblique(-0.7))
    image.set_qform(oblique(0.2), code=1)
    _save(image, path)
    assert nifti.read_image_fast(path) is not None and len(reads) == 3
    np.testing.assert_array_equal(nifti.read_image_fast(path)[1], torchio.io.read_image(path)[1])


def test_region_reader_and_writer(tmp_path: Path) -> None:
    from torchvox.data.nifti import read_nifti, read_nifti_region, write_nifti

    volume = np.random.default_rng(6).normal(size=(2, 12, 11, 10)).astype(np.float32)
    path = tmp_path / "volume.nii"
    write_nifti(volume, AFFINE, path)
    full, affine = read_nifti(path)
    np.testing.assert_array_equal(full.numpy(), volume)
    patch, patch_affine = read_nifti_region(path, (2, 3, 4), (5, 6, 3))
    np.testing.assert_array_equal(patch.numpy(), volume[:, 2:7, 3:9, 4:7])
    np.testing.assert_allclose(patch_affine @ [1, 1, 1, 1], affine @ [3, 4, 5, 1])
    write_nifti(volume, AFFINE, tmp_path / "volume.nii.gz")
    np.testing.assert_array_equal(read_nifti(tmp_path / "volume.nii.gz")[0].numpy(), volume)
    with pytest.raises(ValueError, match="nii"):
        write_nifti(volume, AFFINE, tmp_path / "volume.nrrd")
    with pytest.raises(ValueError, match="region"):
        read_nifti_region(path, (10, 0, 0), (5, 1, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", [".nii", ".nii.gz", "big-endian", "scaled"])
def test_non_finite_floats_are_read_as_torchio_reads_them(
    tmp_path: Path, dtype: type, variant: str
) -> None:
    # niftilib (under SimpleITK, hence TorchIO) stores 0 for NaN and +-Inf,
    # before scaling; nibabel keeps them.
    import torchio

    from torchvox.data import io
    from torchvox.data.nifti import read_nifti_region

    data = np.arange(9 * 8 * 7, dtype=dtype).reshape(9, 8, 7) / 10
    data[0, 0, :3] = [np.nan, np.inf, -np.inf]
    data[4:, 5, 6] = np.nan
    if variant == "big-endian":
        data = data.astype(np.dtype(dtype).newbyteorder(">"))
    # An affine SimpleITK accepts (TorchIO falls back to nibabel for sheared ones).
    image = nib.Nifti1Image(data, np.diag([1.5, 1.0, 2.0, 1.0]))
    if variant == "scaled":
        image.header.set_slope_inter(2.0, -1.5)
    path = _save(image, tmp_path / ("f.nii.gz" if variant == ".nii.gz" else "f.nii"))
    tensor, _ = io.read_image(path)
    reference, _ = torchio.io.read_image(path)
    assert np.isfinite(reference.numpy()).all()
    assert tensor.dtype == reference.dtype
    np.testing.assert_array_equal(tensor.numpy(), reference.numpy())
    region, _ = read_nifti_region(path, (0, 0, 0), (5, 6, 7))
    np.testing.assert_array_equal(region.numpy(), reference.numpy()[:, :5, :6, :7])
    np.testing.assert_array_equal(native().nifti_read(path)[0], reference.numpy())
