"""Reading and writing images and transform matrices (``torchio.io``).

Tensors are ``(C, W, H, D)`` with 4x4 float64 affines mapping voxel indices to RAS+
world coordinates in mm (NiBabel's convention). SimpleITK works in LPS+, with arrays
ordered ``(D, H, W)``; the helpers here convert between both worlds. SimpleITK is tried
first for reading and writing, and NiBabel is the fallback.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk  # noqa: N813
import torch
from nibabel.filebasedimages import ImageFileError

from ..constants import REPO_URL
from ..types import (
    TypeData,
    TypeDataAffine,
    TypeDirection,
    TypePath,
    TypeQuartetInt,
    TypeTripletFloat,
)

__all__ = [
    "FLIPXY_33",
    "FLIPXY_44",
    "IMAGE_2D_FORMATS",
    "aff2axcodes",
    "check_uint_to_int",
    "ensure_4d",
    "get_ras_affine_from_sitk",
    "get_reader",
    "get_rotation_and_spacing_from_affine",
    "get_sitk_metadata_from_ras_affine",
    "io_orientation",
    "nib_to_sitk",
    "read_affine",
    "read_image",
    "read_matrix",
    "read_shape",
    "reorient_to_ras",
    "sitk_to_nib",
    "write_image",
    "write_matrix",
]

#: Multiplying by these switches between LPS (ITK) and RAS (NiBabel) coordinates.
FLIPXY_33 = np.diag([-1.0, -1.0, 1.0])
FLIPXY_44 = np.diag([-1.0, -1.0, 1.0, 1.0])

_2D_SUFFIXES = [".jpg", ".jpeg", ".bmp", ".png", ".tif", ".tiff"]
#: Suffixes of formats that hold 2D images: read as (C, W, H, 1), squeezed on save.
IMAGE_2D_FORMATS = _2D_SUFFIXES + [suffix.upper() for suffix in _2D_SUFFIXES]
# Formats whose writers only take 8-bit pixels.
_UINT8_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


# ---------------------------------------------------------------------------- reading


def _check_exists(path: TypePath) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'File not found: "{path}"')
    return path


def _file_not_understood_error(path: TypePath, reason: object = None) -> RuntimeError:
    message = (
        f'File "{path}" not understood. Check supported formats at'
        " https://simpleitk.readthedocs.io/en/master/IO.html#images"
        " and https://nipy.org/nibabel/api.html#file-formats"
    )
    if reason is not None:
        message += f" (NiBabel: {reason})"
    return RuntimeError(message)


def _warn_fallback(error: Exception) -> None:
    message = f"Error loading image with SimpleITK:\n{error}\n\nTrying NiBabel..."
    # stacklevel 3 points at the caller of the public reading function.
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _nib_load(path: TypePath) -> Any:
    """Load a NiBabel image, turning any parsing failure into "File not understood"."""
    try:
        return nib.load(str(path), mmap=False)
    except FileNotFoundError:
        raise
    except Exception as error:  # ImageFileError, truncated files, bad headers...
        raise _file_not_understood_error(path, error) from error


def read_image(path: TypePath) -> TypeDataAffine:
    """Read an image file, or a directory holding one DICOM series.

    SimpleITK is tried first; if it fails, a warning is issued and NiBabel is used.

    Args:
        path: File in any format SimpleITK or NiBabel can read, or a DICOM directory.

    Returns:
        A tensor ``(C, W, H, D)`` (or ``(C, W, H, 1)`` for 2D files; NIfTI files whose
        fourth dimension holds channels are returned channels-first) keeping the
        on-disk dtype except uint16 -> int32, uint32 -> int64, and the RAS+ affine.

    Raises:
        FileNotFoundError: If ``path`` does not exist (or is a directory without DICOM).
        RuntimeError: If neither SimpleITK nor NiBabel understands the file.
    """
    _check_exists(path)
    try:
        return _read_sitk(path)
    except _TruncatedFileError:
        raise
    except RuntimeError as error:
        if Path(path).is_dir():
            raise _file_not_understood_error(path, error) from error
        _warn_fallback(error)
        return _read_nibabel(path)


def _read_sitk(path: TypePath) -> TypeDataAffine:
    from .nifti import read_image_fast  # Rust NIfTI reader (h6); None -> other readers

    fast_nifti = read_image_fast(path)
    if fast_nifti is not None:
        return fast_nifti
    if str(path).lower().endswith(".nii"):
        fast = _read_raw_nifti(path)
        if fast is not None:
            return fast
    image = _read_dicom(path) if Path(path).is_dir() else sitk.ReadImage(str(path))
    data, affine = sitk_to_nib(image, keepdim=True)
    return torch.as_tensor(check_uint_to_int(data)), affine


class _TruncatedFileError(RuntimeError):
    """A file shorter than its header says; no other reader will do better."""


# SimpleITK pixel types whose NIfTI voxels ITK returns unchanged.
_SITK_TO_NUMPY = {
    sitk.sitkUInt8: np.uint8,
    sitk.sitkInt8: np.int8,
    sitk.sitkUInt16: np.uint16,
    sitk.sitkInt16: np.int16,
    sitk.sitkUInt32: np.uint32,
    sitk.sitkInt32: np.int32,
    sitk.sitkUInt64: np.uint64,
    sitk.sitkInt64: np.int64,
    sitk.sitkFloat32: np.float32,
    sitk.sitkFloat64: np.float64,
}


def _is_identity_scaling(slope: float, intercept: float) -> bool:
    slope_is_one = np.isnan(slope) or slope in (0.0, 1.0)
    return bool(slope_is_one and (np.isnan(intercept) or intercept == 0.0))


def _read_raw_nifti(path: TypePath) -> TypeDataAffine | None:
    """Read an uncompressed 3D scalar NIfTI-1 file without SimpleITK's data path.

    ITK reads such files several times slower than a plain ``numpy.fromfile``. The
    geometry still comes from SimpleITK's header reader, so the affine is exactly
    SimpleITK's; the voxels are the raw bytes, which is what ITK returns when there is
    no intensity scaling. Anything else (scaling, vectors, 4D, NIfTI-2, exotic types)
    returns ``None`` so that the caller uses SimpleITK.

    Raises:
        RuntimeError: If the file is shorter than its header says (ITK would pad it
            with zeros silently).
    """
    try:
        with open(path, "rb") as file:
            header = nib.Nifti1Header.from_fileobj(file)
    except Exception:
        return None
    if header["magic"].item() != b"n+1" or int(header["dim"][0]) != 3:
        return None
    if not _is_identity_scaling(float(header["scl_slope"]), float(header["scl_inter"])):
        return None
    try:
        reader = get_reader(path)
    except RuntimeError:
        return None
    dtype = header.get_data_dtype()
    shape = tuple(int(n) for n in header.get_data_shape())
    expected_type = _SITK_TO_NUMPY.get(reader.GetPixelID())
    if (
        reader.GetDimension() != 3
        or reader.GetNumberOfComponents() != 1
        or tuple(reader.GetSize()) != shape
        or expected_type is None
        or dtype.newbyteorder("=") != np.dtype(expected_type)
    ):
        return None
    offset = int(header["vox_offset"])
    count = int(np.prod(shape))
    needed = offset + count * dtype.itemsize
    size = Path(path).stat().st_size
    if size < needed:
        raise _TruncatedFileError(
            f'File "{path}" is truncated: {size} bytes, but its header needs {needed}'
        )
    flat = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    if not dtype.isnative:
        flat = flat.astype(dtype.newbyteorder("="))
    if flat.dtype.kind == "f":
        flat[~np.isfinite(flat)] = 0  # as niftilib, hence ITK, reads them
    # NIfTI stores the first index fastest: Fortran order, like ITK's transposed arrays.
    data = flat.reshape(shape, order="F")[np.newaxis]
    return torch.as_tensor(check_uint_to_int(data)), get_ras_affine_from_sitk(reader)


def _read_dicom(directory: TypePath) -> sitk.Image:
    directory = Path(directory)
    reader = sitk.ImageSeriesReader()
    file_names = reader.GetGDCMSeriesFileNames(str(directory))
    if not file_names:
        raise FileNotFoundError(f'The directory "{directory}" does not seem to contain DICOM files')
    reader.SetFileNames(file_names)
    return reader.Execute()


def _read_nibabel(path: TypePath) -> TypeDataAffine:
    image = _nib_load(path)
    try:
        data = image.get_fdata(dtype=np.float32)
    except Exception as error:  # e.g. truncated data after a valid header
        raise _file_not_understood_error(path, error) from error
    if data.ndim == 5:  # (W, H, D, 1, C): NIfTI stores vectors in the fifth dimension
        if data.shape[3] != 1:
            raise ValueError(f"5D images are supported only if shape[3] == 1, got {data.shape}")
        data = data[:, :, :, 0, :].transpose(3, 0, 1, 2)
    elif data.ndim == 4:  # (W, H, D, C)
        data = data.transpose(3, 0, 1, 2)
    elif data.ndim == 3:  # (W, H, D)
        data = data[np.newaxis]
    elif data.ndim == 2:  # (W, H)
        data = data[np.newaxis, ..., np.newaxis]
    return torch.as_tensor(data), np.asarray(image.affine, dtype=np.float64)


def get_reader(path: TypePath, read: bool = True) -> sitk.ImageFileReader:
    """Return a SimpleITK file reader for ``path``, with the header read if ``read``."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if read:
        reader.ReadImageInformation()
    return reader


def read_shape(path: TypePath) -> TypeQuartetInt:
    """Read the shape ``(C, W, H, D)`` of an image from its header only.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RuntimeError: If neither SimpleITK nor NiBabel understands the file.
    """
    _check_exists(path)
    try:
        reader = get_reader(path)
    except RuntimeError as error:
        _warn_fallback(error)
        return _read_shape_nibabel(path)
    channels = reader.GetNumberOfComponents()
    size = tuple(int(n) for n in reader.GetSize())
    if len(size) == 2:
        return channels, size[0], size[1], 1
    if len(size) == 3:
        return channels, size[0], size[1], size[2]
    if len(size) == 4:  # NIfTI with channels stored as a fourth spatial dimension
        return size[3], size[0], size[1], size[2]
    raise ValueError(f'Images with {len(size)} dimensions are not supported: "{path}"')


def _read_shape_nibabel(path: TypePath) -> TypeQuartetInt:
    shape = tuple(int(n) for n in _nib_load(path).header.get_data_shape())
    if len(shape) == 2:
        return 1, shape[0], shape[1], 1
    if len(shape) == 3:
        return 1, shape[0], shape[1], shape[2]
    if len(shape) == 4:
        return shape[3], shape[0], shape[1], shape[2]
    if len(shape) == 5:
        if shape[3] != 1:
            raise ValueError(f"5D images are supported only if shape[3] == 1, got {shape}")
        return shape[4], shape[0], shape[1], shape[2]
    raise ValueError(
        f"{len(shape)}D images not supported yet. Please create an issue in {REPO_URL}"
        " if you would like support for them"
    )


def read_affine(path: TypePath) -> np.ndarray:
    """Read the 4x4 RAS+ affine of an image from its header only.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RuntimeError: If neither SimpleITK nor NiBabel understands the file.
    """
    _check_exists(path)
    try:
        reader = get_reader(path)
    except RuntimeError as error:
        _warn_fallback(error)
        return np.asarray(_nib_load(path).affine, dtype=np.float64)
    return get_ras_affine_from_sitk(reader)


# ---------------------------------------------------------------------------- writing


def write_image(
    tensor: TypeData,
    affine: TypeData,
    path: TypePath,
    squeeze: bool | None = None,
) -> None:
    """Write a ``(C, W, H, D)`` tensor or array and its RAS+ affine to ``path``.

    SimpleITK writes (compressed where the format allows it); NiBabel is the fallback
    for ``.nii``, ``.nii.gz``, ``.hdr`` and ``.img``, storing several channels as a 5D
    vector NIfTI.

    Args:
        tensor: Data of shape ``(C, W, H, D)``.
        affine: 4x4 affine, RAS+.
        path: Output file; its suffix selects the format.
        squeeze: Drop a singleton last dimension (write a 2D image). If ``None``, only
            for 2D formats (PNG, JPEG, BMP, TIFF). PNG, JPEG and BMP data are cast to
            uint8 with a warning.
    """
    if tensor.ndim != 4:
        raise ValueError(f"Image data must be 4D (C, W, H, D), got shape {tuple(tensor.shape)}")
    affine = _as_affine(affine)
    try:
        _write_sitk(tensor, affine, path, squeeze=squeeze)
    except RuntimeError as error:
        try:
            _write_nibabel(tensor, affine, path)
        except ImageFileError:
            raise RuntimeError(f'Could not write "{path}": {error}') from error


def _as_affine(affine: TypeData) -> np.ndarray:
    if isinstance(affine, torch.Tensor):
        affine = affine.detach().cpu().numpy()
    array = np.asarray(affine, dtype=np.float64)
    if array.shape != (4, 4):
        raise ValueError(f"The affine must have shape (4, 4), got {array.shape}")
    return array


def _to_numpy(tensor: TypeData) -> np.ndarray:
    if isinstance(tensor, torch.Tensor):
        return tensor.detach().cpu().numpy()
    return np.asarray(tensor)


def _write_sitk(
    tensor: TypeData,
    affine: np.ndarray,
    path: TypePath,
    use_compression: bool = True,
    squeeze: bool | None = None,
) -> None:
    path = Path(path)
    array = _to_numpy(tensor)
    if path.suffix in _UINT8_SUFFIXES:
        warnings.warn(f"Casting to uint 8 before saving to {path}", RuntimeWarning, stacklevel=3)
        array = array.astype(np.uint8)
    force_3d = path.suffix not in IMAGE_2D_FORMATS if squeeze is None else not squeeze
    image = nib_to_sitk(array, affine, force_3d=force_3d)
    sitk.WriteImage(image, str(path), use_compression)


def _write_nibabel(tensor: TypeData, affine: np.ndarray, path: TypePath) -> None:
    array = _to_numpy(tensor)
    channels = array.shape[0]
    # NIfTI keeps vector components in the fifth dimension: (W, H, D, 1, C).
    array = array[0] if channels == 1 else array.transpose(1, 2, 3, 0)[:, :, :, np.newaxis]
    suffix = Path(str(path).replace(".gz", "")).suffix
    image: nib.nifti1.Nifti1Image | nib.nifti1.Nifti1Pair
    if suffix == ".nii":
        image = nib.nifti1.Nifti1Image(array, affine)
    elif suffix in (".hdr", ".img"):
        image = nib.nifti1.Nifti1Pair(array, affine)
    else:
        raise ImageFileError(f'NiBabel cannot write "{path}"')
    if channels > 1:
        image.header.set_intent("vector")
    image.header["qform_code"] = 1
    image.header["sform_code"] = 0
    nib.save(image, str(path))


# ------------------------------------------------------------------- transform matrices


def read_matrix(path: TypePath) -> torch.Tensor:
    """Read an affine transform file as a 4x4 float64 RAS tensor.

    ITK files (``.tfm``, ``.h5``) hold the LPS transform from the reference to the
    floating image; NiftyReg and blockmatching files (``.txt``, ``.trsf``) hold the RAS
    transform in the same direction. Both are inverted so the returned matrix maps the
    floating space to the reference space.

    Raises:
        ValueError: If the suffix is not one of the above.
    """
    path = Path(path)
    if path.suffix in (".tfm", ".h5"):
        _check_exists(path)
        transform = sitk.ReadTransform(str(path))
        parameters = np.asarray(transform.GetParameters(), dtype=np.float64)
        if parameters.size != 12:
            raise ValueError(
                f'Expected a 3D affine transform with 12 parameters in "{path}",'
                f" found {parameters.size}"
            )
        matrix_lps = np.eye(4)
        matrix_lps[:3, :3] = parameters[:9].reshape(3, 3)
        matrix_lps[:3, 3] = parameters[9:]
        return torch.as_tensor(_from_itk_convention(matrix_lps))
    if path.suffix in (".txt", ".trsf"):
        _check_exists(path)
        matrix = np.loadtxt(path, dtype=np.float64)
        if matrix.shape != (4, 4):
            raise ValueError(f'Expected a 4x4 matrix in "{path}", found shape {matrix.shape}')
        return torch.as_tensor(np.linalg.inv(matrix))
    raise ValueError(f'Unknown suffix for transform file: "{path.suffix}"')


def write_matrix(matrix: TypeData, path: TypePath) -> None:
    """Write a 4x4 RAS affine transform in the convention of :func:`read_matrix`.

    Raises:
        ValueError: If the suffix is not ``.tfm``, ``.h5``, ``.txt`` or ``.trsf``.
    """
    path = Path(path)
    array = _as_affine(matrix)
    if path.suffix in (".tfm", ".h5"):
        matrix_lps = _to_itk_convention(array)
        transform = sitk.AffineTransform(
            matrix_lps[:3, :3].ravel().tolist(), matrix_lps[:3, 3].tolist()
        )
        transform.WriteTransform(str(path))
    elif path.suffix in (".txt", ".trsf"):
        np.savetxt(path, np.linalg.inv(array), fmt="%.8f")
    else:
        raise ValueError(f'Unknown suffix for transform file: "{path.suffix}"')


def _to_itk_convention(matrix: np.ndarray) -> np.ndarray:
    """RAS floating->reference to LPS reference->floating."""
    return np.linalg.inv(FLIPXY_44 @ matrix @ FLIPXY_44)


def _from_itk_convention(matrix: np.ndarray) -> np.ndarray:
    """LPS reference->floating to RAS floating->reference."""
    return np.linalg.inv(FLIPXY_44 @ matrix @ FLIPXY_44)


# --------------------------------------------------------------- SimpleITK <-> NiBabel


def get_rotation_and_spacing_from_affine(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the 3x3 part of an affine into unit columns (rotation) and their norms (spacing)."""
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    return linear / spacing, spacing


def nib_to_sitk(
    data: TypeData,
    affine: TypeData,
    force_3d: bool = False,
    force_4d: bool = False,
) -> sitk.Image:
    """Build a SimpleITK image from ``(C, W, H, D)`` data and a RAS+ affine.

    Several channels become a vector image (unless ``force_4d``, which makes a 4D
    scalar image with the channels last); a singleton last dimension makes a 2D image
    unless ``force_3d``.
    """
    if data.ndim != 4:
        raise ValueError(f"Input must be 4D, but has shape {tuple(data.shape)}")
    array = _to_numpy(data)
    affine = _as_affine(affine)
    is_multichannel = array.shape[0] > 1 and not force_4d
    is_2d = array.shape[3] == 1 and not force_3d
    if is_2d:
        array = array[..., 0]
    if not is_multichannel and not force_4d:
        array = array[0]
    # ITK's NumPy views are (D, H, W[, C]): the reverse of ours.
    image = sitk.GetImageFromArray(array.transpose(), isVector=is_multichannel)
    origin, spacing, direction = get_sitk_metadata_from_ras_affine(affine, is_2d=is_2d)
    if is_2d:
        image.SetOrigin(origin[:2])
        image.SetSpacing(spacing[:2])
    else:
        image.SetOrigin(origin)
        image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def sitk_to_nib(image: sitk.Image, keepdim: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Convert a SimpleITK image into ``(C, W, H, D)`` data and a RAS+ affine.

    Args:
        image: A 2D, 3D or 4D (channels as the fourth dimension) SimpleITK image.
        keepdim: If ``False``, the data goes through :func:`ensure_4d`; otherwise 2D
            images are still returned as ``(C, W, H, 1)``.
    """
    data = sitk.GetArrayFromImage(image).transpose()
    data = check_uint_to_int(data)
    components = image.GetNumberOfComponentsPerPixel()
    if components == 1:
        data = data[np.newaxis]
    dimension = image.GetDimension()
    if dimension == 2:
        data = data[..., np.newaxis]
    elif dimension == 4:  # (1, W, H, D, C): channels stored as a spatial dimension
        data = data[0].transpose(3, 0, 1, 2)
        dimension = 3
    if not keepdim:
        data = ensure_4d(data, num_spatial_dims=dimension).numpy()
    return data, get_ras_affine_from_sitk(image)


def get_ras_affine_from_sitk(sitk_object: sitk.Image | sitk.ImageFileReader) -> np.ndarray:
    """Build the RAS+ 4x4 affine of a SimpleITK image or of a reader's header."""
    spacing = np.asarray(sitk_object.GetSpacing(), dtype=np.float64)
    direction = np.asarray(sitk_object.GetDirection(), dtype=np.float64)
    origin = np.asarray(sitk_object.GetOrigin(), dtype=np.float64)
    if direction.size == 9:
        rotation_lps = direction.reshape(3, 3)
    elif direction.size == 4:  # 2D: the third axis is the identity
        rotation_lps = np.eye(3)
        rotation_lps[:2, :2] = direction.reshape(2, 2)
        spacing = np.append(spacing, 1.0)
        origin = np.append(origin, 0.0)
    elif direction.size == 16:  # 4D NIfTI whose fourth dimension holds channels
        rotation_lps = direction.reshape(4, 4)[:3, :3]
        spacing = spacing[:3]
        origin = origin[:3]
    else:
        raise ValueError(f"Unsupported direction with {direction.size} elements")
    affine = np.eye(4)
    affine[:3, :3] = FLIPXY_33 @ rotation_lps * spacing
    affine[:3, 3] = FLIPXY_33 @ origin
    return affine


def get_sitk_metadata_from_ras_affine(
    affine: np.ndarray,
    is_2d: bool = False,
    lps: bool = True,
) -> tuple[TypeTripletFloat, TypeTripletFloat, TypeDirection]:
    """Convert a RAS+ affine into SimpleITK's origin, spacing and direction.

    Args:
        affine: 4x4 RAS+ affine.
        is_2d: Return a 2x2 identity-like direction (``(-1, 0, 0, -1)`` in LPS).
        lps: Express origin and direction in LPS (SimpleITK) rather than RAS.

    Returns:
        ``(origin, spacing, direction)`` as tuples of 3, 3 and 9 (or 4) floats.
    """
    affine = np.asarray(affine, dtype=np.float64)
    rotation_ras, spacing = get_rotation_and_spacing_from_affine(affine)
    origin_ras = affine[:3, 3]
    if is_2d:
        rotation_ras = np.eye(2)
        rotation_lps = -np.eye(2)
    else:
        rotation_lps = FLIPXY_33 @ rotation_ras
    origin = FLIPXY_33 @ origin_ras if lps else origin_ras
    direction = (rotation_lps if lps else rotation_ras).ravel()
    ox, oy, oz = (float(v) for v in origin)
    sx, sy, sz = (float(v) for v in spacing)
    return (ox, oy, oz), (sx, sy, sz), tuple(float(v) for v in direction)  # type: ignore[return-value]


# ------------------------------------------------------------------------- data shape


def ensure_4d(tensor: TypeData, num_spatial_dims: int | None = None) -> torch.Tensor:
    """Return data as a 4D tensor ``(C, W, H, D)``.

    ``(W, H)`` becomes ``(1, W, H, 1)``; 3D input is ``(C, W, H)`` if
    ``num_spatial_dims == 2``, ``(W, H, D)`` if 3, and otherwise guessed as RGB if its
    first or last size is 3; ``(W, H, D, 1, C)`` (NIfTI vectors) becomes ``(C, W, H, D)``.

    Raises:
        ValueError: For other 5D shapes and more than 5 dimensions.
    """
    tensor = torch.as_tensor(tensor)
    ndim = tensor.ndim
    if ndim == 4:
        return tensor
    if ndim == 5:
        if tensor.shape[3] != 1:
            raise ValueError(f"5D data must have shape (W, H, D, 1, C), got {tuple(tensor.shape)}")
        return tensor[:, :, :, 0, :].permute(3, 0, 1, 2)
    if ndim == 2:
        return tensor[np.newaxis, ..., np.newaxis]
    if ndim == 3:
        if num_spatial_dims == 2:
            return tensor[..., np.newaxis]
        if num_spatial_dims == 3:
            return tensor[np.newaxis]
        shape = tensor.shape
        if 3 in (shape[0], shape[-1]):  # probably RGB
            if shape[-1] == 3:
                tensor = tensor.permute(2, 0, 1)
            return tensor[..., np.newaxis]
        return tensor[np.newaxis]
    raise ValueError(
        f"{ndim}D images not supported yet. Please create an issue in {REPO_URL}"
        " if you would like support for them"
    )


def check_uint_to_int(array: np.ndarray) -> np.ndarray:
    """Cast uint16 to int32 and uint32 to int64 (types PyTorch cannot hold well)."""
    if array.dtype == np.uint16:
        return array.astype(np.int32)
    if array.dtype == np.uint32:
        return array.astype(np.int64)
    return array


# ------------------------------------------------------------------------ orientation


def io_orientation(affine: np.ndarray) -> np.ndarray:
    """Find, for each voxel axis, the closest world axis and its direction.

    The 3x3 part of the affine is normalised column-wise and replaced by its nearest
    orthogonal matrix (through the SVD), so shears and obliquity do not matter. Voxel
    axes are then assigned greedily, starting with the one most aligned with a world
    axis, each world axis being used once.

    Args:
        affine: 4x4 voxel-to-RAS affine.

    Returns:
        A (3, 2) float array: row ``i`` is ``(world_axis, sign)`` for voxel axis ``i``
        (NaNs for a degenerate axis), as NiBabel's ``io_orientation``.
    """
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    norms = np.linalg.norm(linear, axis=0)
    norms[norms == 0] = 1
    u, singular, vt = np.linalg.svd(linear / norms)
    tolerance = singular.max() * 3 * np.finfo(np.float64).eps
    kept = singular > tolerance
    rotation = u[:, kept] @ vt[kept]
    result = np.full((3, 2), np.nan)
    # Voxel axes whose weakest world component is smallest go first, as in NiBabel.
    order = np.argsort(np.min(-(rotation**2), axis=0), kind="stable")
    for voxel_axis in order:
        column = rotation[:, voxel_axis]
        if np.allclose(column, 0):
            continue
        world_axis = int(np.argmax(np.abs(column)))
        result[voxel_axis] = world_axis, 1.0 if column[world_axis] > 0 else -1.0
        rotation[world_axis, :] = 0
    return result


_AXIS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def aff2axcodes(affine: np.ndarray) -> tuple[str, str, str]:
    """Orientation codes of an affine, e.g. ``('R', 'A', 'S')`` (NiBabel's ``aff2axcodes``).

    Each code names the direction towards which the voxel index grows.
    """
    codes: list[str | None] = []
    for world_axis, sign in io_orientation(affine):
        if np.isnan(world_axis):
            codes.append(None)
        else:
            codes.append(_AXIS_LABELS[int(world_axis)][int(sign > 0)])
    return tuple(codes)  # type: ignore[return-value]


def reorient_to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permute and flip voxel axes so the data is closest to RAS+ orientation.

    No resampling happens: voxels are only reordered, and the affine is updated so
    every voxel keeps its world position.

    Args:
        array: Data of shape ``(C, W, H, D)``.
        affine: Its 4x4 RAS+ affine.

    Returns:
        The reordered array (a view where possible) and its new affine.

    Raises:
        ValueError: If the affine is degenerate (an axis has no orientation).
    """
    orientation = io_orientation(affine)
    if np.isnan(orientation).any():
        raise ValueError(f"Cannot reorient an image with a degenerate affine:\n{affine}")
    spatial_shape = np.asarray(array.shape[1:])
    # new_to_old maps new voxel indices (homogeneous) to old ones.
    new_to_old = np.zeros((4, 4))
    new_to_old[3, 3] = 1
    for old_axis, (world_axis, sign) in enumerate(orientation):
        new_axis = int(world_axis)
        if sign < 0:
            array = np.flip(array, axis=1 + old_axis)
            new_to_old[old_axis, new_axis] = -1
            new_to_old[old_axis, 3] = spatial_shape[old_axis] - 1
        else:
            new_to_old[old_axis, new_axis] = 1
    # New axis j is the old axis whose world axis is j.
    old_axes = np.argsort(orientation[:, 0]).astype(int)
    array = array.transpose(0, *(1 + old_axes))
    return array, np.asarray(affine, dtype=np.float64) @ new_to_old
