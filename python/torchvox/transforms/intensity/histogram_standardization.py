"""HistogramStandardization: Nyúl and Udupa's piecewise-linear intensity standardization.

See "New variants of a method of MRI scale standardization" (IEEE TMI 2000).
Training averages, over a set of images, the intensities at fixed percentiles
mapped to a standard range (0-100); applying maps the same percentiles of each
image onto those landmarks with one line per interval (the outer lines
extrapolate). Percentiles and the per-voxel map run in Rust; the small tables in
between follow TorchIO 1.2.1 exactly.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch

from ..._backend import native, to_numpy, to_tensor
from ..label._native_arrays import to_native
from ..masking import TypeMaskingMethod
from .normalization_transform import NormalizationTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["HistogramStandardization", "train", "train_histogram"]

TypePath = Union[str, Path]
TypeLandmarks = Union[TypePath, Mapping[str, Union[TypePath, np.ndarray, torch.Tensor]]]

DEFAULT_CUTOFF = 0.01, 0.99
STANDARD_RANGE = 0, 100
#: Landmarks used by the map: every percentile but the quartiles 25 and 75.
RANGE_TO_USE = [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12]
#: Landmarks per image with the default cutoff: 1, 10, 20, 25, ..., 75, 80, 90, 99.
NUM_LANDMARKS = 13


def _get_percentiles(percentiles_cutoff: tuple[float, float]) -> np.ndarray:
    """The cutoff percentiles, the quartiles and the deciles, sorted, without repeats."""
    quartiles = np.arange(25, 100, 25).tolist()
    deciles = np.arange(10, 100, 10).tolist()
    return np.array(sorted(set([*percentiles_cutoff, *quartiles, *deciles])))


def _standardize_cutoff(cutoff: Sequence[float]) -> np.ndarray:
    """Clip the cutoff quantiles to ``[0, 0.09]`` and ``[0.91, 1]``."""
    cutoff_array = np.asarray(cutoff, dtype=float).copy()
    cutoff_array[0] = min(max(0, cutoff_array[0]), 0.09)
    cutoff_array[1] = max(min(1, cutoff_array[1]), 0.91)
    return cutoff_array


def _get_average_mapping(percentiles_database: np.ndarray) -> np.ndarray:
    """Map every image's percentiles linearly to the standard range and average them.

    Args:
        percentiles_database: ``(num_images, num_percentiles)``.
    """
    pc1 = percentiles_database[:, 0]
    pc2 = percentiles_database[:, -1]
    s1, s2 = STANDARD_RANGE
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.nan_to_num((s2 - s1) / (pc2 - pc1))
    intercepts = np.mean(s1 - slopes * pc1)
    return slopes.dot(percentiles_database) / len(percentiles_database) + intercepts


def _masked_percentiles(
    array: np.ndarray, mask: np.ndarray | None, percentiles: Sequence[float] | np.ndarray, name: str
) -> np.ndarray:
    """NumPy-``linear`` percentiles of the masked voxels of all channels together.

    Raises:
        ValueError: If the mask selects no voxel or the values contain NaN.
    """
    wanted = [float(q) for q in percentiles]
    if mask is None:
        # No moments needed: the radix kernel counts the values in two passes.
        total = native().range_percentiles(array, wanted)
    else:
        total = native().statistics(array, mask, percentiles=wanted)["total"]
    if total["has_nan"]:
        raise ValueError(f'The intensities of "{name}" contain NaN')
    return np.asarray(total["percentiles"], dtype=np.float64)


def _as_float32(tensor: torch.Tensor) -> np.ndarray:
    """The data as TorchIO standardizes it: float32 (exact for small integers too)."""
    if tensor.dtype in (torch.float32, torch.uint8, torch.int16):
        return to_native(tensor)
    return to_numpy(tensor.to(torch.float32))


def _normalize(
    tensor: torch.Tensor,
    landmarks: np.ndarray,
    mask: np.ndarray | None,
    cutoff: tuple[float, float] | None = None,
    epsilon: float = 1e-5,
    name: str = "image",
) -> torch.Tensor:
    """Map ``tensor`` onto ``landmarks`` (float32 output of the same shape).

    Args:
        tensor: ``(C, I, J, K)`` intensities.
        landmarks: The 13 trained landmarks.
        mask: ``(1 or C, I, J, K)`` uint8 mask of the voxels whose percentiles are
            used, or ``None`` for all; every voxel is mapped.
        cutoff: Quantiles of the outer landmarks (clipped as TorchIO does).
        epsilon: Intervals narrower than this get a zero slope.
        name: Image name for error messages.
    """
    quantiles_cutoff = _standardize_cutoff(DEFAULT_CUTOFF if cutoff is None else cutoff)
    low, high = 100 * quantiles_cutoff
    percentiles = _get_percentiles((low, high))
    array = _as_float32(tensor)
    percentile_values = _masked_percentiles(array, mask, percentiles, name)

    range_mapping = np.asarray(landmarks, dtype=np.float64)[RANGE_TO_USE]
    range_perc = percentile_values[RANGE_TO_USE]
    diff_mapping = np.diff(range_mapping)
    diff_perc = np.diff(range_perc)
    # Repeated percentiles (e.g. a large background) would give infinite slopes.
    diff_perc[diff_perc < epsilon] = np.inf
    slopes = diff_mapping / diff_perc
    intercepts = range_mapping[:-1] - slopes * range_perc[:-1]
    mapped = native().piecewise_linear(
        array, range_perc[1:-1].tolist(), slopes.tolist(), intercepts.tolist()
    )
    return to_tensor(mapped)


def _resolve_global(qualified_name: str) -> Any:
    module_name, _, attribute = qualified_name.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _load_landmarks_file(path: Path) -> Any:
    """``torch.load`` a dict of landmarks, allowing NumPy arrays but no other pickles."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        if not all(name.split(".")[0] == "numpy" for name in names):
            raise ValueError(
                f"The landmarks file {path} holds objects other than arrays: {names}"
            ) from None
        allowed = [_resolve_global(name) for name in names]
        # Arrays also reference their dtype classes, which the scan does not list.
        allowed += [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, weights_only=True)


def _read_landmarks_path(path: Path) -> np.ndarray:
    """Landmarks saved by :meth:`HistogramStandardization.train` (.npy or .txt)."""
    if path.suffix == ".txt":
        # "<modality> v1 v2 ...", as train() writes it.
        fields = path.read_text().split()
        try:
            return np.array([float(field) for field in fields[1:]])
        except ValueError:
            raise ValueError(f"Landmarks file {path} is not '<name> v1 v2 ...'") from None
    return np.load(path)


class HistogramStandardization(NormalizationTransform):
    """Standardize intensity histograms with landmarks learnt by :meth:`train`.

    For each image, the percentiles 1, 10, 20, 30, 40, 50, 60, 70, 80, 90 and 99
    of its masked voxels are mapped to the image's landmarks, linearly in between
    and beyond them; the output is float32.

    Args:
        landmarks: ``{image_name: landmarks}`` where landmarks are 13 numbers (array,
            tensor or path to a ``.npy`` or ``.txt`` file written by :meth:`train`), or
            the path to a ``.pt``/``.pth`` file holding such a dict (saved with
            :func:`torch.save`).
        masking_method: Voxels whose percentiles are used; see
            :mod:`torchvox.transforms.masking`. Every voxel is mapped.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For a landmarks file of another extension, landmarks that are not
            13 finite numbers; when called, for an empty mask or NaN intensities.
        FileNotFoundError: For missing landmark files.
        KeyError: When called, for an image without landmarks.

    Example:
        >>> import torchvox as tio
        >>> landmarks = {'t1': tio.HistogramStandardization.train(t1_paths)}
        >>> transform = tio.HistogramStandardization(landmarks)
    """

    _replaces_data = True
    _accepts_no_mask = True

    def __init__(
        self,
        landmarks: TypeLandmarks,
        masking_method: TypeMaskingMethod = None,
        **kwargs: Any,
    ):
        super().__init__(masking_method, **kwargs)
        self.landmarks = landmarks
        self.landmarks_dict = self._parse_landmarks(landmarks)
        self.args_names = ["landmarks", "masking_method"]

    @staticmethod
    def _parse_landmarks(landmarks: TypeLandmarks) -> dict[str, np.ndarray]:
        if isinstance(landmarks, str | Path):
            path = Path(landmarks)
            if path.suffix not in (".pt", ".pth"):
                raise ValueError(
                    f'The landmarks file must have extension .pt or .pth, not "{path.suffix}"'
                )
            if not path.is_file():
                raise FileNotFoundError(f"Landmarks file not found: {path}")
            landmarks_dict = _load_landmarks_file(path)
        else:
            landmarks_dict = landmarks
        if not isinstance(landmarks_dict, Mapping):
            raise TypeError(
                f"Landmarks must be a dict of image names to landmarks, got {landmarks_dict!r}"
            )
        parsed: dict[str, np.ndarray] = {}
        for key, value in landmarks_dict.items():
            if isinstance(value, str | Path):
                path = Path(value)
                if not path.is_file():
                    raise FileNotFoundError(f'Landmarks file of "{key}" not found: {path}')
                value = _read_landmarks_path(path)
            elif isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            array = np.asarray(value, dtype=np.float64)
            if array.shape != (NUM_LANDMARKS,) or not np.isfinite(array).all():
                raise ValueError(
                    f'Landmarks of "{key}" must be {NUM_LANDMARKS} finite numbers, got {value!r}'
                )
            parsed[key] = array
        return parsed

    def apply_transform(self, subject: Subject) -> Subject:
        # Every image's landmarks are checked before anything is computed.
        for name in self.get_images_dict(subject):
            if name not in self.landmarks_dict:
                keys = tuple(self.landmarks_dict.keys())
                raise KeyError(
                    f'Image name "{name}" should be a key in the landmarks dictionary,'
                    f" whose keys are {keys}"
                )
        return super().apply_transform(subject)

    def apply_normalization(
        self, subject: Subject, image_name: str, mask: torch.Tensor | None
    ) -> None:
        image = subject[image_name]
        mask_array = None if mask is None else to_numpy(mask.to(torch.uint8))
        landmarks = self.landmarks_dict[image_name]
        image.set_data(_normalize(image.data, landmarks, mask_array, name=image_name))

    @classmethod
    def train(
        cls,
        images_paths: Sequence[TypePath],
        cutoff: tuple[float, float] | None = None,
        mask_path: Sequence[TypePath] | TypePath | None = None,
        masking_function: Callable[[torch.Tensor], Any] | None = None,
        output_path: TypePath | None = None,
        *,
        progress: bool = True,
    ) -> np.ndarray:
        """Average the histogram landmarks of training images.

        Args:
            images_paths: Paths of the training images.
            cutoff: Quantiles ``(pc1, pc2)`` of the outer landmarks (default
                ``(0.01, 0.99)``).
            mask_path: A binary image (or one per image) selecting the voxels used;
                all voxels if ``None``.
            masking_function: Function of the image tensor returning a boolean mask
                (takes precedence over ``mask_path``).
            output_path: Optional ``.txt`` or ``.npy`` file to write the landmarks to.
            progress: Show a progress bar.

        Returns:
            The landmarks, a float64 array (13 values with the default cutoff).

        Raises:
            ValueError: If the numbers of images and masks differ, the cutoff is not
                two quantiles in ``[0, 1]``, a mask selects no voxel or an image holds
                NaN.
        """
        from ...data.io import read_image

        mask_paths: Sequence[TypePath] | None = (
            mask_path
            if isinstance(mask_path, Sequence) and not isinstance(mask_path, str | Path)
            else None
        )
        if mask_paths is not None and len(mask_paths) != len(images_paths):
            raise ValueError(
                f"Different number of images ({len(images_paths)})"
                f" and mask ({len(mask_paths)}) paths found"
            )
        quantiles_cutoff = DEFAULT_CUTOFF if cutoff is None else tuple(cutoff)
        if len(quantiles_cutoff) != 2 or not all(
            isinstance(q, int | float | np.number) and 0 <= q <= 1 for q in quantiles_cutoff
        ):
            raise ValueError(f'"cutoff" must be two quantiles in [0, 1], got {cutoff!r}')
        if output_path is not None:
            output_path = Path(output_path).expanduser()
            if output_path.suffix not in (".txt", ".npy"):
                raise ValueError(
                    f'"output_path" must end in .txt or .npy, got "{output_path.suffix}"'
                )
        low, high = 100 * np.array(quantiles_cutoff, dtype=float)
        percentiles = _get_percentiles((low, high))
        iterable: Any = images_paths
        if progress:
            from tqdm.auto import tqdm

            iterable = tqdm(images_paths)
        database = []
        for index, image_path in enumerate(iterable):
            tensor, _ = read_image(image_path)
            mask: np.ndarray | None
            if masking_function is not None:
                mask_value = masking_function(tensor)
                mask = to_numpy(torch.as_tensor(np.asarray(mask_value)).to(torch.uint8))
            elif mask_path is None:
                mask = None
            else:
                path = mask_paths[index] if mask_paths is not None else mask_path
                mask_tensor, _ = read_image(path)  # type: ignore[arg-type]
                mask = to_numpy((mask_tensor > 0).to(torch.uint8))
            database.append(
                _masked_percentiles(to_native(tensor), mask, percentiles, str(image_path))
            )
        mapping = _get_average_mapping(np.vstack(database))
        if output_path is not None:
            if output_path.suffix == ".txt":
                output_path.write_text(f"image {' '.join(map(str, mapping))}")
            else:
                np.save(output_path, mapping)
        return mapping


# TorchIO's names for the training function.
train = train_histogram = HistogramStandardization.train
