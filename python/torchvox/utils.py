"""Small helpers shared across torchvox (the functions of ``torchio.utils``)."""

from __future__ import annotations

import ast
import gzip
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from . import constants
from .types import TypePath

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from .data.image import Image
    from .data.subject import Subject

T = TypeVar("T")

__all__ = [
    "add_images_from_batch",
    "apply_transform_to_file",
    "check_sequence",
    "compress",
    "create_dummy_dataset",
    "format_bytes",
    "get_batch_images_and_size",
    "get_first_item",
    "get_major_sitk_version",
    "get_stem",
    "get_subclasses",
    "get_subjects_from_batch",
    "get_torchio_cache_dir",
    "get_torchvox_cache_dir",
    "guess_external_viewer",
    "guess_type",
    "history_collate",
    "is_iterable",
    "normalize_path",
    "parse_spatial_shape",
    "to_tuple",
]


def to_tuple(value: Any, length: int = 1) -> tuple[Any, ...]:
    """Return ``value`` as a tuple.

    Args:
        value: A scalar, or an iterable (strings and bytes count as scalars).
        length: Number of repetitions of a scalar ``value``; ignored for iterables.

    Returns:
        ``tuple(value)`` for iterables, otherwise ``length`` copies of ``value``.

    Examples:
        >>> to_tuple(1, length=3)
        (1, 1, 1)
        >>> to_tuple([1, 2], length=3)
        (1, 2)
    """
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return tuple(value)
    return (value,) * length


def get_stem(path: TypePath | Sequence[TypePath]) -> str | list[str]:
    """Return the file name without any of its suffixes (``'t1.nii.gz'`` -> ``'t1'``).

    Args:
        path: A path, or a sequence of paths (then a list of stems is returned).
    """
    if isinstance(path, Sequence) and not isinstance(path, str | Path):
        return [Path(p).name.split(".")[0] for p in path]
    return Path(path).name.split(".")[0]


def create_dummy_dataset(
    num_images: int,
    size_range: tuple[int, int],
    directory: TypePath | None = None,
    suffix: str = ".nii.gz",
    force: bool = False,
    verbose: bool = False,
) -> list[Subject]:
    """Write (or reuse) random images and label maps and return subjects pointing to them.

    Each subject has a uint8 ``one_modality`` :class:`ScalarImage` of random values in
    [0, 255) and a ``segmentation`` :class:`LabelMap` with labels 0, 1 and 2 derived from
    it, both of random spatial shape in ``[size_range[0], size_range[1])`` per axis and
    identity affine. Files go to ``dummy_images`` and ``dummy_labels`` inside
    ``directory``; if ``dummy_images`` already exists, the files are not rewritten.

    Args:
        num_images: Number of subjects.
        size_range: ``(low, high)`` bounds for the spatial size, high exclusive.
        directory: Output directory; the system's temporary directory if ``None``.
        suffix: File extension of the images, e.g. ``'.nii.gz'`` or ``'.nrrd'``.
        force: Delete existing dummy folders first, so files are rewritten.
        verbose: Print progress.

    Returns:
        A list of ``num_images`` :class:`Subject` instances (images not loaded).
    """
    from .data.image import LabelMap, ScalarImage
    from .data.io import write_image
    from .data.subject import Subject

    output_dir = Path(tempfile.gettempdir() if directory is None else directory)
    images_dir = output_dir / "dummy_images"
    labels_dir = output_dir / "dummy_labels"
    if force:
        shutil.rmtree(images_dir, ignore_errors=True)
        shutil.rmtree(labels_dir, ignore_errors=True)

    subjects: list[Subject] = []
    reuse = images_dir.is_dir()
    if not reuse:
        images_dir.mkdir(parents=True, exist_ok=True)
        labels_dir.mkdir(parents=True, exist_ok=True)
        if verbose:
            print("Creating dummy dataset...")
    for i in range(num_images):
        image_path = images_dir / f"image_{i}{suffix}"
        label_path = labels_dir / f"label_{i}{suffix}"
        if not reuse:
            shape = np.random.randint(*size_range, size=3)
            values = np.random.rand(*shape)
            label = np.ones(shape, dtype=np.uint8)
            label[values < 0.33] = 0
            label[values > 0.66] = 2
            image = (values * 255).astype(np.uint8)
            write_image(torch.from_numpy(image[np.newaxis]), np.eye(4), image_path)
            write_image(torch.from_numpy(label[np.newaxis]), np.eye(4), label_path)
            if verbose:
                print(f"{i + 1}/{num_images}", image_path)
        subjects.append(
            Subject(one_modality=ScalarImage(image_path), segmentation=LabelMap(label_path))
        )
    return subjects


def apply_transform_to_file(
    input_path: TypePath,
    transform: Any,
    output_path: TypePath,
    class_: str = "ScalarImage",
    verbose: bool = False,
) -> None:
    """Read an image, apply a transform to it and write the result.

    Args:
        input_path: Image file to read.
        transform: A callable that takes and returns a :class:`Subject`.
        output_path: Where to write the transformed image.
        class_: Name of the image class in :mod:`torchvox.data`, e.g. ``'LabelMap'``.
        verbose: Print the first entry of the transformed subject's history.
    """
    from . import data

    image_class = getattr(data, class_, None)
    if image_class is None:
        raise ValueError(f'Image class "{class_}" not found in torchvox.data')
    subject = data.Subject(image=image_class(input_path))
    transformed = transform(subject)
    transformed["image"].save(output_path)
    if verbose and transformed.history:
        print("Applied transform:", transformed.history[0])


def guess_type(string: str) -> Any:
    """Parse a command-line value into a Python object.

    Spaces are ignored; Python literals are evaluated (``'3'`` -> 3, ``'(1,2)'`` ->
    ``(1, 2)``, ``'False'`` -> False, ``'None'`` -> None) and anything else stays a
    string (``'linear'``).
    """
    string = string.replace(" ", "")
    try:
        return ast.literal_eval(string)
    except (ValueError, SyntaxError):
        return string


def get_torchvox_cache_dir() -> Path:
    """Directory where torchvox caches downloaded data: ``~/.cache/torchvox``."""
    return Path("~/.cache/torchvox").expanduser()


#: TorchIO's name for :func:`get_torchvox_cache_dir`.
get_torchio_cache_dir = get_torchvox_cache_dir


def compress(input_path: TypePath, output_path: TypePath | None = None) -> Path:
    """Gzip a file.

    Args:
        input_path: File to compress.
        output_path: Destination; ``input_path`` with suffix ``.nii.gz`` if ``None``.

    Returns:
        The path of the compressed file.
    """
    if output_path is None:
        output_path = Path(input_path).with_suffix(".nii.gz")
    with open(input_path, "rb") as source, gzip.open(output_path, "wb") as destination:
        shutil.copyfileobj(source, destination)
    return Path(output_path)


def check_sequence(sequence: Any, name: str) -> None:
    """Raise ``TypeError`` if ``sequence`` (the argument called ``name``) is not iterable."""
    try:
        iter(sequence)
    except TypeError as error:
        raise TypeError(f'"{name}" must be a sequence, not {type(sequence)}') from error


def get_major_sitk_version() -> int:
    """Major version of the installed SimpleITK (1 if it predates ``__version__``)."""
    import SimpleITK as sitk  # noqa: N813

    version = getattr(sitk, "__version__", None)
    if version is None:
        return 1
    return int(str(version).split(".")[0])


def history_collate(batch: Sequence[Any], collate_transforms: bool = True) -> dict[str, Any]:
    """Collate subjects with torch's ``default_collate``, keeping their histories.

    Args:
        batch: Subjects from a dataset.
        collate_transforms: Store the re-instantiated transforms (``subject.history``)
            under ``'history'``; otherwise the raw ``(name, arguments)`` records under
            ``'applied_transforms'``.

    Returns:
        A dictionary with one collated entry per subject key plus the histories, or an
        empty dictionary if the batch does not hold subjects.
    """
    from torch.utils.data._utils.collate import default_collate

    from .data.subject import Subject

    attribute = constants.HISTORY if collate_transforms else "applied_transforms"
    first = batch[0]
    if not isinstance(first, Subject):
        return {}
    collated = {key: default_collate([subject[key] for subject in batch]) for key in first}
    if hasattr(first, attribute):
        collated[attribute] = [getattr(subject, attribute) for subject in batch]
    return collated


def get_subclasses(target_class: type) -> list[type]:
    """Return every direct and indirect subclass of ``target_class``."""
    subclasses: list[type] = list(target_class.__subclasses__())
    for subclass in list(subclasses):
        subclasses.extend(get_subclasses(subclass))
    return subclasses


def get_first_item(data_loader: DataLoader) -> Any:
    """Return the first batch of a data loader."""
    return next(iter(data_loader))


def get_batch_images_and_size(batch: dict[str, Any]) -> tuple[list[str], int]:
    """Find the images in a batch made by :class:`SubjectsLoader`.

    Args:
        batch: A collated batch; images are the dictionary values holding a ``'data'`` key.

    Returns:
        The image names and the batch size.

    Raises:
        RuntimeError: If no value of the batch looks like an image.
    """
    names = []
    size = 0
    for key, value in batch.items():
        if isinstance(value, dict) and constants.DATA in value:
            names.append(key)
            size = len(value[constants.DATA])
    if not names:
        raise RuntimeError("The batch does not seem to contain any images")
    return names, size


def get_subjects_from_batch(batch: dict[str, Any]) -> list[Subject]:
    """Rebuild one :class:`Subject` per element of a collated batch.

    Images become :class:`LabelMap` if their type is ``'label'`` and
    :class:`ScalarImage` otherwise, with the batch's data and affine and a ``filename``
    item holding the original file name. Other keys take the batch's ``i``-th element.
    If the batch has a ``'history'`` entry (see :func:`history_collate`), each
    transform is recorded in the history of its subject.
    """
    from .data.image import LabelMap, ScalarImage
    from .data.subject import Subject

    names, batch_size = get_batch_images_and_size(batch)
    subjects = []
    for i in range(batch_size):
        items: dict[str, Any] = {}
        for key, value in batch.items():
            if key in names:
                is_label = value[constants.TYPE][i] == constants.LABEL
                image_class = LabelMap if is_label else ScalarImage
                items[key] = image_class(
                    tensor=value[constants.DATA][i],
                    affine=value[constants.AFFINE][i],
                    filename=Path(value[constants.PATH][i]).name,
                )
            else:
                items[key] = value[i]
        subject = Subject(items)
        if constants.HISTORY in batch:
            for transform in batch[constants.HISTORY][i]:
                transform._add_transform_to_subject_history(subject)
        subjects.append(subject)
    return subjects


def add_images_from_batch(
    subjects: list[Subject],
    tensor: torch.Tensor,
    class_: type[Image] | None = None,
    name: str = "prediction",
) -> None:
    """Add one image per subject from a batch tensor, e.g. a network's prediction.

    Args:
        subjects: Subjects that receive the images (in place).
        tensor: Tensor of shape (B, C, W, H, D) with B = ``len(subjects)``.
        class_: Image class; :class:`ScalarImage` if ``None``.
        name: Name of the new image in each subject.
    """
    if class_ is None:
        from .data.image import ScalarImage

        class_ = ScalarImage
    if len(subjects) != len(tensor):
        raise ValueError(f"Got {len(subjects)} subjects but a batch of {len(tensor)} tensors")
    for subject, data in zip(subjects, tensor):
        reference = subject.get_first_image()
        kwargs: dict[str, Any] = {"tensor": data, "affine": reference.affine}
        if "filename" in reference:
            kwargs["filename"] = reference["filename"]
        subject.add_image(class_(**kwargs), name)


def guess_external_viewer() -> Path | None:
    """Find an application to view images: ``SITK_SHOW_COMMAND``, ITK-SNAP or 3D Slicer."""
    if "SITK_SHOW_COMMAND" in os.environ:
        return Path(os.environ["SITK_SHOW_COMMAND"])
    if sys.platform == "darwin":
        for app in ("ITK-SNAP", "Slicer"):
            candidate = Path(f"/Applications/{app}.app/Contents/MacOS/{app}")
            if candidate.is_file():
                return candidate
    elif sys.platform == "win32":
        program_files = Path(os.environ.get("ProgramW6432", "C:/Program Files"))  # noqa: SIM112
        for pattern, executable in (("ITK-SNAP*", "bin/itk-snap.exe"), ("Slicer*", "slicer.exe")):
            folders = sorted(program_files.glob(pattern))
            if folders and (folders[-1] / executable).is_file():
                return folders[-1] / executable
    else:
        for command in ("itksnap", "Slicer"):
            found = shutil.which(command)
            if found is not None:
                return Path(found)
    return None


def parse_spatial_shape(shape: Any) -> tuple[int, ...]:
    """Validate a spatial shape given as an int or a 3-sequence of positive integers.

    Raises:
        ValueError: If an element is not a positive integer or there are not 3 elements.
    """
    result = to_tuple(shape, length=3)
    for n in result:
        if n < 1 or n % 1:
            raise ValueError(
                "All elements in a spatial shape must be positive integers,"
                f" but the following shape was passed: {shape}"
            )
    if len(result) != 3:
        raise ValueError(
            f"Spatial shapes must have 3 elements, but the following shape was passed: {shape}"
        )
    return result


def normalize_path(path: TypePath) -> Path:
    """Expand ``~`` and make the path absolute."""
    return Path(path).expanduser().resolve()


def is_iterable(object: Any) -> bool:
    """Whether ``iter(object)`` works."""
    try:
        iter(object)
    except TypeError:
        return False
    return True


_BINARY_SUFFIXES = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB", "RiB", "QiB")


def format_bytes(num_bytes: float) -> str:
    """Format a byte count with binary prefixes, as TorchIO's reprs do.

    Examples:
        >>> format_bytes(48000)
        '46.9 KiB'
        >>> format_bytes(1), format_bytes(1000)
        ('1 Byte', '1000 Bytes')
    """
    value = float(num_bytes)
    magnitude = abs(value)
    if magnitude == 1:
        return f"{int(value)} Byte"
    if magnitude < 1024:
        return f"{int(value)} Bytes"
    exponent = 0
    while exponent < len(_BINARY_SUFFIXES) and magnitude >= 1024 ** (exponent + 1):
        exponent += 1
    # One decimal: a mantissa that rounds up to 1024.0 moves to the next prefix.
    if exponent < len(_BINARY_SUFFIXES) and float(f"{magnitude / 1024**exponent:.1f}") >= 1024:
        exponent += 1
    return f"{value / 1024**exponent:.1f} {_BINARY_SUFFIXES[exponent - 1]}"
