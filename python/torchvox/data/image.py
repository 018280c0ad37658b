"""Images: a 4D tensor ``(C, W, H, D)`` plus a 4x4 RAS+ affine, loaded lazily from disk."""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import SimpleITK as sitk  # noqa: N813
import torch

from .._backend import clone
from ..constants import AFFINE, DATA, INTENSITY, LABEL, PATH, STEM, TYPE
from ..types import (
    TypeAffineMatrix,
    TypeData,
    TypeDataAffine,
    TypeDirection3D,
    TypeImageDataAffine,
    TypeImageTensor,
    TypePath,
    TypeQuartetInt,
    TypeSlice,
    TypeTripletFloat,
    TypeTripletInt,
)
from ..utils import format_bytes, get_stem, is_iterable, to_tuple
from .io import (
    aff2axcodes,
    check_uint_to_int,
    ensure_4d,
    get_rotation_and_spacing_from_affine,
    get_sitk_metadata_from_ras_affine,
    nib_to_sitk,
    read_affine,
    read_image,
    read_shape,
    reorient_to_ras,
    sitk_to_nib,
    write_image,
)

if TYPE_CHECKING:
    from .pending import PendingVoxels

__all__ = ["PROTECTED_KEYS", "Image", "LabelMap", "ScalarImage"]

#: Keys an image manages itself; they cannot be passed as metadata keyword arguments.
PROTECTED_KEYS = (DATA, AFFINE, TYPE, PATH, STEM)
#: Attribute holding an image's pending voxels (see :mod:`torchvox.data.pending`).
_PENDING = "_pending_voxels_state"

TypeBound = tuple[float, float]
TypeBounds = tuple[TypeBound, TypeBound, TypeBound]


def _apply_affine(affine: np.ndarray, points: Any) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ affine[:3, :3].T + affine[:3, 3]


class Image(dict[str, object]):
    """A medical image: a ``(C, W, H, D)`` tensor and a 4x4 affine, in a dictionary.

    The image is a ``dict`` whose items are ``'data'`` (the tensor, once loaded),
    ``'affine'``, ``'type'``, ``'path'``, ``'stem'`` and any extra keyword arguments
    (metadata). Images built from a path are lazy: the data is read on the first access
    to :attr:`data`, while :attr:`shape` and :attr:`affine` come from the file header.

    Args:
        path: A file SimpleITK or NiBabel can read, a directory holding a DICOM series,
            or a sequence of files whose data are concatenated along the channels
            (their spatial shapes must match). Ignored for reading if ``tensor`` is given.
        type: ``'intensity'`` (:data:`torchvox.INTENSITY`), ``'label'`` or
            ``'sampling_map'``. ``None`` warns and means ``'intensity'``.
        tensor: 4D tensor or array ``(C, W, H, D)``. uint16 becomes int32, uint32
            int64 and bool uint8.
        affine: 4x4 matrix from voxel indices to RAS+ world coordinates (mm);
            identity if ``None``.
        check_nans: Warn if the data contain NaNs.
        reader: Callable ``reader(path) -> (data, affine)`` for custom formats; its
            data may have 2 to 5 dimensions and its affine may be ``None``.
        verify_path: Check that ``path`` exists.
        **kwargs: Metadata items added to the dictionary.

    Raises:
        ValueError: If neither ``path`` nor ``tensor`` is given, a reserved key is
            passed in ``kwargs``, or the tensor is not 4D.
        TypeError: For a path that is a tensor, a dictionary or another object, or data
            that is neither a tensor nor an array.
        FileNotFoundError: If ``verify_path`` and ``path`` does not exist.

    Examples:
        >>> import torch, torchvox as tio
        >>> image = tio.ScalarImage(tensor=torch.zeros(1, 10, 20, 30))
        >>> image.spatial_shape
        (10, 20, 30)
    """

    def __init__(
        self,
        path: TypePath | Sequence[TypePath] | None = None,
        type: str | None = None,
        tensor: TypeData | None = None,
        affine: TypeData | None = None,
        check_nans: bool = False,
        reader: Callable[[TypePath], TypeDataAffine] = read_image,
        verify_path: bool = True,
        **kwargs: object,
    ):
        self.check_nans = check_nans
        self.reader = reader
        if type is None:
            warnings.warn(
                "Not specifying the image type is deprecated and will be mandatory in the"
                " future. You can probably use tio.ScalarImage or tio.LabelMap instead",
                FutureWarning,
                stacklevel=2,
            )
            type = INTENSITY
        if path is None and tensor is None:
            raise ValueError("A value for path or tensor must be given")
        for key in PROTECTED_KEYS:
            if key in kwargs:
                raise ValueError(f'Key "{key}" is reserved. Use a different one')
        if "channels_last" in kwargs:
            warnings.warn(
                'The "channels_last" keyword argument is deprecated and will be removed'
                " in the future",
                FutureWarning,
                stacklevel=2,
            )
        self._loaded = False
        parsed_tensor = self._parse_tensor(tensor)
        parsed_affine = self._parse_affine(affine)
        # Same key order as TorchIO (data, affine, metadata, path, stem, type), which
        # batches made by SubjectsLoader inherit.
        if parsed_tensor is not None:
            self[DATA] = parsed_tensor
            self[AFFINE] = parsed_affine
            self._loaded = True
        super().__init__(**kwargs)
        self.path: Path | list[Path] | None = self._parse_path(path, verify=verify_path)
        self[PATH] = "" if self.path is None else str(self.path)
        self[STEM] = "" if self.path is None else get_stem(self.path)
        self[TYPE] = type

    # ------------------------------------------------------------------ dunder methods

    def __repr__(self) -> str:
        properties = [
            f"shape: {self.shape}",
            f"spacing: {self.get_spacing_string()}",
            f"orientation: {self.orientation_str}+",
        ]
        if self._loaded:
            properties.append(f"dtype: {self.data.type()}")
            properties.append(f"memory: {format_bytes(self.memory)}")
        else:
            properties.append(f'path: "{self.path}"')
        return f"{self.__class__.__name__}({'; '.join(properties)})"

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, slice | int | tuple):
            return self._crop_from_slices(item)
        if item == DATA:
            self._compute_pending_voxels()
        if item in (DATA, AFFINE) and item not in self:
            self.load()
        return super().__getitem__(item)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.data.numpy()
        if dtype is not None:
            array = array.astype(dtype, copy=False)
        if copy:
            array = array.copy()
        return array

    def __deepcopy__(self, memo: dict[int, Any]) -> Image:
        self._compute_pending_voxels()
        # Python's default deep copy, except that the voxel tensor is copied with
        # the fast native/NumPy copy instead of torch's (see _backend.clone). A
        # tensor already in ``memo`` (shared on purpose by the caller) is kept.
        data = dict.get(self, DATA)
        if type(data) is torch.Tensor and id(data) not in memo:
            memo[id(data)] = clone(data)
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        for key, value in dict.items(self):
            dict.__setitem__(new, key, copy.deepcopy(value, memo))
        return new

    def __copy__(self) -> Image:
        metadata = {key: value for key, value in self.items() if key not in PROTECTED_KEYS}
        return type(self)(
            path=self.path,
            type=self.type,
            tensor=self.data if self._loaded else None,
            affine=self.affine if self._loaded else None,
            check_nans=self.check_nans,
            reader=self.reader,
            verify_path=False,
            **metadata,
        )

    # -------------------------------------------------------------------- data access

    @property
    def data(self) -> TypeImageTensor:
        """The ``(C, W, H, D)`` tensor; reading it loads the image."""
        value = self[DATA]
        if not isinstance(value, torch.Tensor):
            self.load()
            value = self[DATA]
        return cast(torch.Tensor, value)

    @data.setter
    def data(self, tensor: TypeData) -> None:
        warnings.warn(
            "Setting the image data with the property setter is deprecated. Use the"
            " set_data() method instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self.set_data(tensor)

    def __getstate__(self) -> dict[str, Any]:
        # Pickled images carry their voxels, computed (the items are read after this).
        self._compute_pending_voxels()
        return self.__dict__

    # ------------------------------------------------------------- pending voxels

    def _defer_voxels(self, pending: PendingVoxels) -> None:
        """Hold ``pending`` instead of the data until the voxels are read.

        The data item becomes a placeholder of the right shape and dtype (see
        :mod:`torchvox.data.pending`).
        """
        dict.__setitem__(self, DATA, pending.placeholder())
        self._loaded = True
        self.__dict__[_PENDING] = pending

    def _pending_voxels(self) -> PendingVoxels | None:
        """The voxels not computed yet, if any."""
        return cast("PendingVoxels | None", self.__dict__.get(_PENDING))

    def _compute_pending_voxels(self) -> None:
        """Compute the pending voxels, if any, and hold them as the data."""
        pending = self.__dict__.pop(_PENDING, None)
        if pending is not None:
            dict.__setitem__(self, DATA, pending.evaluate())

    def _stored_tensor(self) -> torch.Tensor | None:
        """The data item as stored, without loading or computing anything."""
        value = dict.get(self, DATA)
        return value if isinstance(value, torch.Tensor) else None

    @property
    def tensor(self) -> TypeImageTensor:
        """Same as :attr:`data`."""
        return self.data

    def set_data(self, tensor: TypeData) -> None:
        """Store a new ``(C, W, H, D)`` tensor (or array) as the image data.

        Raises:
            ValueError: If the data is not 4D.
            TypeError: If it is neither a tensor nor an array.
        """
        self.__dict__.pop(_PENDING, None)
        self[DATA] = self._parse_tensor(tensor, none_ok=False)
        self._loaded = True

    def _needs_full_load(self) -> bool:
        # Directories (DICOM), several files and custom readers have no header that
        # SimpleITK could read on its own: their metadata comes from loading the data.
        return (
            self._loaded
            or self.path is None
            or self._is_dir()
            or self._is_multipath()
            or self.reader is not read_image
        )

    @property
    def affine(self) -> TypeAffineMatrix:
        """The 4x4 float64 voxel-to-RAS+ affine.

        For a loaded image this is the stored array itself, so in-place edits persist.
        For an image not loaded yet, it is read from the file header each time.
        """
        if self._needs_full_load():
            affine = self[AFFINE]
            if not isinstance(affine, np.ndarray):
                self.load()
                affine = self[AFFINE]
            return cast(np.ndarray, affine)
        return read_affine(cast(Path, self.path))

    @affine.setter
    def affine(self, matrix: TypeData | None) -> None:
        self[AFFINE] = self._parse_affine(matrix)

    @property
    def type(self) -> str:
        """Image type: ``'intensity'``, ``'label'``, ``'sampling_map'``..."""
        return cast(str, self[TYPE])

    @property
    def shape(self) -> TypeQuartetInt:
        """Shape ``(C, W, H, D)``, from the file header if the image is not loaded."""
        if self._needs_full_load():
            # The stored tensor, or the placeholder of pending voxels: no voxel computed.
            stored = self._stored_tensor()
            channels, si, sj, sk = (stored if stored is not None else self.data).shape
            return channels, si, sj, sk
        return read_shape(cast(Path, self.path))

    @property
    def spatial_shape(self) -> TypeTripletInt:
        """Spatial shape ``(W, H, D)``."""
        _, si, sj, sk = self.shape
        return si, sj, sk

    def check_is_2d(self) -> None:
        """Raise ``RuntimeError`` unless the last spatial dimension has size 1."""
        if not self.is_2d():
            raise RuntimeError(f"Image is not 2D. Spatial shape: {self.spatial_shape}")

    @property
    def height(self) -> int:
        """Image height (second spatial size), for 2D images only."""
        self.check_is_2d()
        return self.spatial_shape[1]

    @property
    def width(self) -> int:
        """Image width (first spatial size), for 2D images only."""
        self.check_is_2d()
        return self.spatial_shape[0]

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Orientation codes, e.g. ``('R', 'A', 'S')``: where each voxel axis points."""
        return aff2axcodes(self.affine)

    @property
    def orientation_str(self) -> str:
        """Orientation codes as a string, e.g. ``'RAS'``."""
        return "".join(str(code) for code in self.orientation)

    @property
    def direction(self) -> TypeDirection3D:
        """Unit voxel-axis directions in RAS, as 9 floats (the columns of the rotation)."""
        _, _, direction = get_sitk_metadata_from_ras_affine(self.affine, lps=False)
        return cast(TypeDirection3D, direction)

    @property
    def spacing(self) -> TypeTripletFloat:
        """Voxel size in mm along each voxel axis."""
        _, spacing = get_rotation_and_spacing_from_affine(self.affine)
        sx, sy, sz = (float(s) for s in spacing)
        return sx, sy, sz

    @property
    def origin(self) -> TypeTripletFloat:
        """World (RAS+) position in mm of the centre of the first voxel."""
        ox, oy, oz = (float(o) for o in self.affine[:3, 3])
        return ox, oy, oz

    @property
    def itemsize(self) -> int:
        """Bytes per element of the data type."""
        return self.data.element_size()

    @property
    def memory(self) -> int:
        """Bytes the data take in memory."""
        return int(np.prod(self.shape)) * self.itemsize

    @property
    def bounds(self) -> np.ndarray:
        """World positions (2, 3) of the centres of the first and last voxels."""
        last = np.asarray(self.spatial_shape) - 1
        return _apply_affine(self.affine, [(0, 0, 0), last])

    @property
    def num_channels(self) -> int:
        """Number of channels ``C``."""
        return len(self.data)

    # ------------------------------------------------------------------------- axes

    def axis_name_to_index(self, axis: str) -> int:
        """Return the (negative) index of the spatial dimension named by ``axis``.

        Args:
            axis: ``'Left'``, ``'Right'``, ``'Anterior'``, ``'Posterior'``,
                ``'Inferior'``, ``'Superior'`` (only the first letter counts, in any
                case), or ``'Top'``/``'Bottom'`` for the vertical axis of 2D images.

        Returns:
            -3, -2 or -1, valid for the spatial dimensions of 3D and 4D tensors.
        """
        if not isinstance(axis, str):
            raise ValueError("Axis must be a string")
        letter = axis[0].upper()
        if letter in "TB":
            return -2
        orientation = self.orientation
        if letter in orientation:
            index = orientation.index(letter)
        else:
            index = orientation.index(self.flip_axis(letter))
        return index - 3

    @staticmethod
    def flip_axis(axis: str) -> str:
        """Return the opposite axis label (``'L'`` <-> ``'R'``, ``P/A``, ``I/S``, ``T/B``, ``D/V``).

        Raises:
            ValueError: If the first letter is not one of those labels.
        """
        opposite = {
            "L": "R",
            "R": "L",
            "P": "A",
            "A": "P",
            "I": "S",
            "S": "I",
            "T": "B",
            "B": "T",
            "D": "V",
            "V": "D",
        }
        letter = axis[0].upper()
        if letter not in opposite:
            raise ValueError("Axis not understood. Please use one of: L, R, P, A, I, S, T, B, D, V")
        return opposite[letter]

    def get_spacing_string(self) -> str:
        """Spacing with two decimals, e.g. ``'(1.00, 1.00, 2.50)'``."""
        return "(" + ", ".join(f"{s:.2f}" for s in self.spacing) + ")"

    def get_bounds(self) -> TypeBounds:
        """World extent ``((x0, x1), (y0, y1), (z0, z1))``, including half voxels at the edges."""
        corners = _apply_affine(
            self.affine, [(-0.5, -0.5, -0.5), np.asarray(self.spatial_shape) - 0.5]
        )
        (x0, y0, z0), (x1, y1, z1) = corners.tolist()
        return (x0, x1), (y0, y1), (z0, z1)

    def get_center(self, lps: bool = False) -> TypeTripletFloat:
        """World position of the image centre, in RAS+ or, if ``lps``, LPS+."""
        center_index = (np.asarray(self.spatial_shape) - 1) / 2
        r, a, s = (float(v) for v in _apply_affine(self.affine, center_index))
        return (-r, -a, s) if lps else (r, a, s)

    # --------------------------------------------------------------------- parsing

    def _parse_single_path(self, path: Any, *, verify: bool = True) -> Path:
        if isinstance(path, torch.Tensor | np.ndarray):
            name = self.__class__.__name__
            raise TypeError(
                "Expected type str or Path but found a tensor/array. Instead of"
                f" {name}(your_tensor), use {name}(tensor=your_tensor)."
            )
        try:
            parsed = Path(path).expanduser()
        except TypeError as error:
            raise TypeError(
                f"Expected type str or Path but found an object with type {type(path)} instead"
            ) from error
        if verify and not (parsed.is_file() or parsed.is_dir()):
            raise FileNotFoundError(f'File not found: "{parsed}"')
        return parsed

    def _parse_path(self, path: Any, *, verify: bool = True) -> Path | list[Path] | None:
        if path is None:
            return None
        if isinstance(path, dict):
            raise TypeError("The path argument cannot be a dictionary")
        if isinstance(path, str | Path):
            return self._parse_single_path(path, verify=verify)
        if self._is_paths_sequence(path):
            return [self._parse_single_path(p, verify=verify) for p in path]
        raise TypeError(f"Input path must be a path or sequence of paths, not {type(path)}")

    def _parse_tensor(self, tensor: Any, none_ok: bool = True) -> torch.Tensor | None:
        if tensor is None:
            if none_ok:
                return None
            raise RuntimeError("Input tensor cannot be None")
        if isinstance(tensor, np.ndarray):
            tensor = torch.as_tensor(check_uint_to_int(tensor))
        elif not isinstance(tensor, torch.Tensor):
            raise TypeError(
                "Input tensor must be a PyTorch tensor or NumPy array,"
                f' but type "{type(tensor)}" was found'
            )
        if tensor.ndim != 4:
            raise ValueError(
                f"Input tensor must be 4D (C, W, H, D), but it is {tensor.ndim}D"
                f" with shape {tuple(tensor.shape)}"
            )
        if tensor.dtype == torch.bool:
            tensor = tensor.to(torch.uint8)
        elif tensor.dtype == torch.uint16:
            tensor = tensor.to(torch.int32)
        elif tensor.dtype == torch.uint32:
            tensor = tensor.to(torch.int64)
        if self.check_nans and tensor.is_floating_point() and torch.isnan(tensor).any():
            warnings.warn("NaNs found in tensor", RuntimeWarning, stacklevel=3)
        return tensor

    @staticmethod
    def _parse_tensor_shape(tensor: TypeData) -> TypeImageTensor:
        return ensure_4d(tensor)

    @staticmethod
    def _parse_affine(affine: Any) -> TypeAffineMatrix:
        if affine is None:
            return np.eye(4)
        if isinstance(affine, torch.Tensor):
            affine = affine.detach().cpu().numpy()
        if not isinstance(affine, np.ndarray):
            raise TypeError(f"Affine must be a NumPy array, not {type(affine)}")
        if affine.shape != (4, 4):
            raise ValueError(f"Affine shape must be (4, 4), not {affine.shape}")
        return affine.astype(np.float64)

    @staticmethod
    def _is_paths_sequence(path: Any) -> bool:
        return path is not None and not isinstance(path, str | Path) and is_iterable(path)

    def _is_multipath(self) -> bool:
        return self._is_paths_sequence(self.path)

    def _as_path_list(self) -> list[Path]:
        if self.path is None:
            raise RuntimeError("Image path is not available")
        if isinstance(self.path, list):
            return self.path
        return [self.path]

    def _is_dir(self) -> bool:
        return isinstance(self.path, Path) and self.path.is_dir()

    # --------------------------------------------------------------------- loading

    def load(self) -> None:
        """Read the data and affine from disk, if not loaded yet.

        Several paths are read one by one and concatenated along the channels; a
        different affine warns and a different spatial shape raises ``RuntimeError``.
        """
        if self._loaded:
            return
        paths = self._as_path_list()
        tensor, affine = self.read_and_check(paths[0])
        tensors = [tensor]
        for path in paths[1:]:
            new_tensor, new_affine = self.read_and_check(path)
            if not np.array_equal(affine, new_affine):
                warnings.warn(
                    "Files have different affine matrices."
                    f"\nMatrix of {paths[0]}:\n{affine}\nMatrix of {path}:\n{new_affine}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            if tensor.shape[1:] != new_tensor.shape[1:]:
                raise RuntimeError(
                    f"Files shape do not match, found {tuple(tensor.shape)} in {paths[0]}"
                    f" and {tuple(new_tensor.shape)} in {path}"
                )
            tensors.append(new_tensor)
        self.set_data(tensors[0] if len(tensors) == 1 else torch.cat(tensors))
        self.affine = affine
        self._loaded = True

    def unload(self) -> None:
        """Free the data; it will be read again from the path when needed.

        Raises:
            RuntimeError: If the image is not loaded or has no path.
        """
        if not self._loaded:
            raise RuntimeError("Image cannot be unloaded as it has not been loaded yet")
        if self.path is None:
            raise RuntimeError(
                "Cannot unload image as no path is available from where the image could"
                " be loaded again"
            )
        self.__dict__.pop(_PENDING, None)
        self[DATA] = None
        self[AFFINE] = None
        self._loaded = False

    def read_and_check(self, path: TypePath) -> TypeImageDataAffine:
        """Read one file with the image's reader and validate the result."""
        tensor, affine = self.reader(path)
        if self.reader is not read_image and isinstance(tensor, np.ndarray):
            tensor = check_uint_to_int(tensor)
        parsed = self._parse_tensor(self._parse_tensor_shape(tensor), none_ok=False)
        assert parsed is not None
        if self.check_nans and parsed.is_floating_point() and torch.isnan(parsed).any():
            warnings.warn(f'NaNs found in file "{path}"', RuntimeWarning, stacklevel=2)
        return parsed, self._parse_affine(affine)

    def set_check_nans(self, check_nans: bool) -> None:
        """Enable or disable the NaN warning."""
        self.check_nans = check_nans

    def save(self, path: TypePath, squeeze: bool | None = None) -> None:
        """Write the image to ``path`` (see :func:`torchvox.io.write_image`).

        Args:
            path: Output file; the suffix selects the format.
            squeeze: Drop singleton dimensions; if ``None``, only for 2D formats.
        """
        write_image(self.data, self.affine, path, squeeze=squeeze)

    # ------------------------------------------------------------------ conversions

    def is_2d(self) -> bool:
        """Whether the last spatial dimension has size 1."""
        return self.shape[-1] == 1

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (sharing memory with the tensor)."""
        return np.asarray(self)

    def as_sitk(self, **kwargs: Any) -> sitk.Image:
        """The image as a SimpleITK image (see :func:`torchvox.io.nib_to_sitk`)."""
        return nib_to_sitk(self.data, self.affine, **kwargs)

    @classmethod
    def from_sitk(cls, sitk_image: sitk.Image) -> Image:
        """Build an image of this class from a SimpleITK image."""
        tensor, affine = sitk_to_nib(sitk_image)
        return cls(tensor=tensor, affine=affine)

    def as_pil(self, transpose: bool = True) -> Any:
        """The 2D image as a PIL image, values clamped to [0, 255] and cast to uint8.

        Args:
            transpose: Put the first spatial axis horizontally (PIL's width).

        Raises:
            RuntimeError: If the image is not 2D or Pillow is not installed.
            NotImplementedError: Unless there are 1, 3 or 4 channels.
        """
        try:
            from PIL import Image as ImagePIL
        except ModuleNotFoundError as error:
            raise RuntimeError(
                "Please install Pillow to use Image.as_pil(): pip install Pillow"
            ) from error
        self.check_is_2d()
        tensor = self.data
        if len(tensor) not in (1, 3, 4):
            raise NotImplementedError(
                "Only 1, 3 or 4 channels are supported for conversion to Pillow image"
            )
        if len(tensor) == 1:
            tensor = tensor.repeat(3, 1, 1, 1)
        # PIL wants (rows, columns, channels).
        tensor = tensor.permute(3, 2, 1, 0) if transpose else tensor.permute(3, 1, 2, 0)
        array = tensor.clamp(0, 255).numpy()[0]
        return ImagePIL.fromarray(array.astype(np.uint8))

    def to_ras(self) -> Image:
        """A copy reordered (without resampling) to the closest RAS+ orientation.

        Returns ``self`` if the image is already RAS+.
        """
        if self.orientation_str == "RAS":
            return self
        array, affine = reorient_to_ras(self.numpy(), self.affine)
        reoriented = copy.deepcopy(self)
        reoriented.set_data(torch.from_numpy(np.ascontiguousarray(array)))
        reoriented.affine = affine
        return reoriented

    # --------------------------------------------------------------------- display

    def plot(self, return_fig: bool = False, **kwargs: Any) -> Any:
        """Plot the image: three orthogonal slices, or the picture itself if it is 2D.

        Args:
            return_fig: Return the matplotlib figure.
            **kwargs: Passed to :func:`torchvox.visualization.plot_volume` (3D) or
                :func:`torchvox.visualization.plot_image_2d` (2D), e.g. ``show=False``,
                ``output_path='slices.png'``.

        Returns:
            The figure if ``return_fig``, else ``None``.
        """
        from ..visualization import plot_image_2d, plot_volume

        figure = plot_image_2d(self, **kwargs) if self.is_2d() else plot_volume(self, **kwargs)
        return figure if return_fig else None

    def _repr_html_(self) -> str:
        """Notebook display: the plot as an inline base64 PNG (the repr without matplotlib)."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return repr(self)
        from ..visualization import figure_to_html

        return figure_to_html(self.plot(return_fig=True, show=False))

    def show(self, viewer_path: TypePath | None = None) -> None:
        """Open the image in an external viewer (ITK-SNAP, 3D Slicer...).

        Args:
            viewer_path: Viewer executable. If ``None``, the ``SITK_SHOW_COMMAND``
                environment variable, then an installed ITK-SNAP or 3D Slicer.

        Raises:
            RuntimeError: If no viewer is found or it cannot be started.
        """
        from ..visualization import show_in_viewer

        show_in_viewer(self, viewer_path)

    def to_gif(
        self,
        axis: int,
        duration: float,
        output_path: TypePath,
        loop: int = 0,
        rescale: bool = True,
        optimize: bool = True,
        reverse: bool = False,
    ) -> None:
        """Write an animated GIF of the slices along a spatial axis (needs Pillow).

        Args:
            axis: Spatial axis (0, 1 or 2) the animation moves along.
            duration: Duration of the whole animation in seconds (at most 100 fps).
            output_path: GIF file to write.
            loop: Times the animation repeats; 0 means forever.
            rescale: Map the intensity range to [0, 255] (else values are clamped).
            optimize: Let Pillow compress the palette.
            reverse: Play the frames in reverse order.
        """
        from ..visualization import make_gif

        make_gif(
            self.data,
            axis=axis,
            duration=duration,
            output_path=output_path,
            loop=loop,
            optimize=optimize,
            rescale=rescale,
            reverse=reverse,
        )

    # --------------------------------------------------------------------- slicing

    def _crop_from_slices(self, slices: TypeSlice | tuple[Any, ...]) -> Image:
        items = to_tuple(slices)
        if len(items) > 3:
            raise IndexError(f"Images have 3 spatial dimensions, got {len(items)} indices")
        spatial_shape = self.spatial_shape
        starts = [0, 0, 0]
        stops = list(spatial_shape)
        for dim, item in enumerate(items):
            if item is Ellipsis:
                raise NotImplementedError("Ellipsis slicing is not supported yet")
            if isinstance(item, bool) or not isinstance(item, slice | int | np.integer):
                raise TypeError(f'Slice type not understood: "{type(item)}"')
            if isinstance(item, slice):
                start, stop, step = item.indices(spatial_shape[dim])
                if step != 1:
                    raise ValueError(
                        "Slicing with steps different from 1 is not supported yet."
                        " Use the Crop transform instead"
                    )
            else:
                index = int(item)
                if not -spatial_shape[dim] <= index < spatial_shape[dim]:
                    raise IndexError(
                        f"Index {index} is out of bounds for spatial dimension {dim}"
                        f" of size {spatial_shape[dim]}"
                    )
                start = index % spatial_shape[dim]
                stop = start + 1
            starts[dim] = start
            stops[dim] = max(stop, start)
        (i0, j0, k0), (i1, j1, k1) = starts, stops
        data = clone(self.data[:, i0:i1, j0:j1, k0:k1])
        affine = self.affine.copy()
        affine[:3, 3] = _apply_affine(affine, starts)
        metadata = {key: value for key, value in self.items() if key not in PROTECTED_KEYS}
        return type(self)(
            tensor=data,
            affine=affine,
            type=self.type,
            path=self.path,
            check_nans=self.check_nans,
            reader=self.reader,
            verify_path=False,
            **copy.deepcopy(metadata),
        )


class ScalarImage(Image):
    """An image whose voxels hold intensities (type ``'intensity'``).

    Intensity transforms only modify scalar images. See :class:`Image` for arguments.

    Raises:
        ValueError: If another ``type`` is given.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        if "type" in kwargs and kwargs["type"] != INTENSITY:
            raise ValueError("Type of ScalarImage is always torchvox.INTENSITY")
        kwargs["type"] = INTENSITY
        super().__init__(*args, **kwargs)

    def hist(self, **kwargs: Any) -> Any:
        """Plot a histogram of all voxel values (Freedman-Diaconis bins).

        Args:
            **kwargs: Passed to :func:`torchvox.visualization.plot_histogram`
                (``show``, and ``plt.hist`` arguments such as ``bins``).

        Returns:
            The matplotlib figure.
        """
        from ..visualization import plot_histogram

        return plot_histogram(self.data.flatten().numpy(), **kwargs)

    def to_video(
        self,
        output_path: TypePath,
        frame_rate: float | None = 15,
        seconds: float | None = None,
        direction: str = "I",
        verbosity: str = "error",
    ) -> None:
        """Write the slices as an H.265 MP4 video (needs ffmpeg).

        Args:
            output_path: ``.mp4`` file to write.
            frame_rate: Frames per second; ignored if ``seconds`` is given.
            seconds: Duration of the whole video.
            direction: Direction of travel through the body: ``'I'`` (axial, top to
                bottom), ``'S'``, ``'A'``, ``'P'``, ``'R'`` or ``'L'``.
            verbosity: ffmpeg log level.

        Raises:
            RuntimeError: If no ffmpeg executable is available (install ffmpeg or
                ``pip install imageio-ffmpeg``) or the encoding fails.
        """
        from ..visualization import make_video

        make_video(
            self,
            output_path,
            seconds=seconds,
            frame_rate=None if seconds is not None else frame_rate,
            direction=direction,
            verbosity=verbosity,
        )


class LabelMap(Image):
    """An image whose voxels hold segmentation labels (type ``'label'``).

    Spatial transforms resample label maps with nearest-neighbour interpolation and
    intensity transforms leave them untouched. A sequence of paths builds a
    multi-channel map (e.g. tissue probability maps). See :class:`Image` for arguments.

    Raises:
        ValueError: If another ``type`` is given.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        if "type" in kwargs and kwargs["type"] != LABEL:
            raise ValueError("Type of LabelMap is always torchvox.LABEL")
        kwargs["type"] = LABEL
        super().__init__(*args, **kwargs)

    def count_nonzero(self) -> int:
        """Number of non-zero voxels."""
        return int(torch.count_nonzero(self.data).item())

    def count_labels(self) -> dict[int, int]:
        """Number of voxels of each value, sorted by value, e.g. ``{0: 900, 1: 100}``."""
        values, counts = torch.unique(self.data, return_counts=True)
        counter = Counter(dict(zip(values.tolist(), counts.tolist())))
        return {label: counter[label] for label in sorted(counter)}
