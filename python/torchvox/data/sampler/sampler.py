"""Base classes of the patch samplers and the patch extraction they share."""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

import numpy as np
import torch

from ..._backend import native, to_numpy, to_tensor
from ...constants import AFFINE, DATA, LOCATION, PATH, STEM, TYPE
from ...types import TypeSpatialShape, TypeTripletInt
from ...utils import to_tuple
from ..image import _PENDING, PROTECTED_KEYS, Image, LabelMap, ScalarImage
from ..subject import Subject

__all__ = [
    "PatchSampler",
    "RandomSampler",
    "Volume",
    "crop_subject",
    "crop_subjects",
    "has_pending_voxels",
    "is_patch_batch",
    "patch_boxes",
    "patch_memory",
    "volume_arrays",
]

#: Dtypes the native patch copy takes.
_NATIVE_DTYPES = frozenset(
    (torch.float32, torch.float64, torch.uint8, torch.int16, torch.int32, torch.int64)
)

#: A volume ready for patch copies: a C-contiguous array for the native copy,
#: or, for a dtype it does not take (float16, bfloat16, int8...), the CPU tensor
#: itself, which torch slices.
Volume = np.ndarray | torch.Tensor

#: The methods through which TorchIO's samplers crop every patch
#: (``extract_patch`` calls ``crop``).
_CROP_METHODS = ("extract_patch", "crop")

#: Gives the ``(1, C, pi, pj, pk)`` C-contiguous array of the volume's dtype that a
#: patch is written into, or ``None`` for new memory.
PatchMemory = Callable[[tuple[int, ...], np.dtype], np.ndarray | None]

_PATCH_MEMORY: ContextVar[PatchMemory | None] = ContextVar("torchvox_patch_memory", default=None)


@contextmanager
def patch_memory(provider: PatchMemory) -> Iterator[None]:
    """Within the block, :func:`crop_subject` writes each patch where ``provider`` says.

    A DataLoader worker uses it to crop patches straight into memory that its
    main process can read without a copy (see ``SharedArena``).
    """
    token = _PATCH_MEMORY.set(provider)
    try:
        yield
    finally:
        _PATCH_MEMORY.reset(token)


def _patch_view(volume: torch.Tensor, start: TypeTripletInt, size: TypeTripletInt) -> torch.Tensor:
    """The view of the ``(C, pi, pj, pk)`` patch of ``volume`` at ``start``.

    Torch copies it in any dtype, so a volume the native copy does not take is
    neither widened nor cast back.
    """
    (i, j, k), (si, sj, sk) = start, size
    return volume[:, i : i + si, j : j + sj, k : k + sk]


def _extract_patch(volume: Volume, start: TypeTripletInt, size: TypeTripletInt) -> torch.Tensor:
    """The ``(C, pi, pj, pk)`` patch of ``volume`` at ``start``, in the memory of
    :func:`patch_memory` if one is set and has room (arrays only: the others are
    rare, so they take new memory)."""
    if isinstance(volume, torch.Tensor):
        return _patch_view(volume, start, size).clone(memory_format=torch.contiguous_format)
    provider = _PATCH_MEMORY.get()
    out = None if provider is None else provider((1, volume.shape[0], *size), volume.dtype)
    if out is None:
        return to_tensor(native().extract_patch(volume, start, size))
    corner = np.asarray([start], dtype=np.int64)
    return to_tensor(native().extract_patches(volume, corner, size, out))[0]


def _parse_patch_size(patch_size: TypeSpatialShape) -> np.ndarray:
    values = to_tuple(patch_size, length=3)
    if len(values) != 3:
        raise ValueError(f"Patch size must be an int or a sequence of 3 ints, not {patch_size!r}")
    for n in values:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"Patch dimensions must be positive integers, not {values}")
    return np.array(values, dtype=np.uint16)


def _volume(data: torch.Tensor) -> Volume:
    """``data`` ready for patch copies (see :data:`Volume`)."""
    if data.dtype in _NATIVE_DTYPES:
        return to_numpy(data)
    # Detached and on the CPU, as the arrays are.
    return data.detach().cpu()


def volume_arrays(subject: Subject, boxes: np.ndarray | None = None) -> dict[str, Volume]:
    """Every image of ``subject`` ready for patch copies: a C-contiguous NumPy view
    (copied once if needed), or the tensor for a dtype the native copy does not
    take (see :data:`Volume`).

    Args:
        subject: The subject.
        boxes: The ``(N, 6)`` boxes (:func:`patch_boxes`) that will be read. An
            image with pending voxels (see :mod:`torchvox.data.pending`) then
            computes only those inside them; otherwise it computes them all.
    """
    arrays: dict[str, Volume] = {}
    for name, image in subject.get_images_dict(intensity_only=False).items():
        pending = image._pending_voxels()
        if pending is not None and boxes is not None:
            # Voxels are left pending for the dtypes of the native kernels only.
            arrays[name] = pending.evaluate_boxes(boxes)
        else:
            arrays[name] = _volume(image.data)
    return arrays


def patch_boxes(corners: Sequence[Sequence[int]] | np.ndarray, size: TypeTripletInt) -> np.ndarray:
    """The ``(N, 6)`` int64 boxes ``(i0, j0, k0, i1, j1, k1)`` of patches of ``size``
    at ``corners``."""
    starts = np.asarray(corners, dtype=np.int64).reshape(-1, 3)
    return np.hstack((starts, starts + np.asarray(size, dtype=np.int64)))


def has_pending_voxels(subject: Subject) -> bool:
    """Whether an image of ``subject`` holds pending voxels (see :mod:`torchvox.data.pending`)."""
    images = subject.get_images(intensity_only=False)
    return any(image._pending_voxels() is not None for image in images)


def _crop_image(image: Image, start: TypeTripletInt, patch: torch.Tensor) -> Image:
    """A new image of the same class holding ``patch``, the region at ``start``."""
    affine = image.affine.copy()
    # The patch's first voxel sits where voxel `start` of the volume was.
    affine[:3, 3] = affine[:3, :3] @ np.asarray(start, dtype=np.float64) + affine[:3, 3]
    metadata = {key: value for key, value in image.items() if key not in PROTECTED_KEYS}
    return type(image)(
        tensor=patch,
        affine=affine,
        type=image.type,
        path=image.path,
        check_nans=image.check_nans,
        reader=image.reader,
        verify_path=False,
        **copy.deepcopy(metadata),
    )


def _patch_subject(
    subject: Subject,
    start: TypeTripletInt,
    size: TypeTripletInt,
    patches: dict[str, torch.Tensor],
) -> Subject:
    """The subject of the region ``start + [0, size)``, given each image's patch."""
    images = {
        key: _crop_image(value, start, patches[key])
        for key, value in subject.items()
        if isinstance(value, Image)
    }
    patch = _copy_with_images(subject, images)
    shape = subject.spatial_shape
    cropping = tuple(
        int(v) for axis in range(3) for v in (start[axis], shape[axis] - start[axis] - size[axis])
    )
    from ...transforms.spatial.crop import Crop

    crop = Crop(cropping)
    patch.add_transform(crop, crop._get_reproducing_arguments())
    end = [s + n for s, n in zip(start, size, strict=True)]
    patch[LOCATION] = torch.as_tensor([*start, *end])
    patch.update_attributes()
    return patch


def _copy_with_images(subject: Subject, images: dict[str, Image]) -> Subject:
    """A deep copy of ``subject`` whose images are ``images`` (by name), and its history.

    A subclass of ``Subject`` is deep-copied with the images put in place of its
    own (which are not copied), as TorchIO's ``Crop`` copies a subject, so the
    class and the attributes it sets survive. A plain one is rebuilt from its items,
    which costs less.
    """
    if type(subject) is not Subject:
        memo: dict[int, Any] = {
            id(value): images[key] for key, value in subject.items() if key in images
        }
        return copy.deepcopy(subject, memo)
    items = {
        key: images[key] if key in images else copy.deepcopy(value)
        for key, value in subject.items()
    }
    patch = Subject(items)
    patch.applied_transforms = list(subject.applied_transforms)
    return patch


def _triplet(values: TypeTripletInt | Sequence[int]) -> TypeTripletInt:
    i, j, k = (int(v) for v in values)
    return i, j, k


def crop_subject(
    subject: Subject,
    index_ini: TypeTripletInt | Sequence[int],
    patch_size: TypeTripletInt | Sequence[int],
    arrays: dict[str, Volume] | None = None,
    consume_random: bool = True,
) -> Subject:
    """Return a new subject holding the patch ``index_ini + [0, patch_size)`` of every image.

    Only the patches are copied (by the Rust kernel, without the GIL); other items
    are deep-copied, as TorchIO's ``Crop`` does, but whole images never are. The patch
    gets ``patch['location'] = tensor([i0, j0, k0, i1, j1, k1])`` and a ``Crop`` entry in
    its history, so its affine maps its voxels to the same world positions.

    Args:
        subject: Subject whose images share one spatial shape ``(I, J, K)``.
        index_ini: Corner ``(i0, j0, k0)`` of the patch.
        patch_size: Size ``(pi, pj, pk)`` of the patch.
        arrays: Contiguous arrays of the images (:func:`volume_arrays`), so that a
            sampler drawing many patches converts each volume once.
        consume_random: Draw one number from torch's generator, as TorchIO's ``Crop``
            transform does for its probability check, so that a seed yields the same
            patches (and later augmentations) as TorchIO.
    """
    if consume_random:
        torch.rand(1)
    start, size = _triplet(index_ini), _triplet(patch_size)
    if arrays is None:
        arrays = volume_arrays(subject)
    patches = {name: _extract_patch(array, start, size) for name, array in arrays.items()}
    (patch,) = _patch_subjects(subject, [start], size, {n: [p] for n, p in patches.items()})
    return patch


def _is_plain_image(image: Image) -> bool:
    """Whether ``image`` can be cropped by :func:`_patch_image` (no metadata, no checks)."""
    return (
        type(image) in (Image, ScalarImage, LabelMap)
        and not image.check_nans
        and image._loaded
        and set(dict.keys(image)) == set(_PLAIN_KEYS)
    )


#: The items of a plain image, in the order its constructor writes them.
_PLAIN_KEYS = (DATA, AFFINE, PATH, STEM, TYPE)


def _patch_image(image: Image, affine: np.ndarray, patch: torch.Tensor) -> Image:
    """What :func:`_crop_image` returns for a plain image, without re-parsing it.

    The patch and affine were derived from ``image`` (already parsed), so the
    new image is assembled from its items and attributes directly.
    """
    new = type(image).__new__(type(image))
    new.__dict__.update(image.__dict__)
    # The patch holds its own voxels: none of the volume's are pending for it.
    new.__dict__.pop(_PENDING, None)
    if isinstance(new.path, list):
        new.path = list(new.path)
    # In the constructor's order whatever the order of the source (an image
    # loaded from its path wrote DATA and AFFINE last).
    dict.update(
        new,
        {
            DATA: patch,
            AFFINE: affine,
            PATH: dict.__getitem__(image, PATH),
            STEM: dict.__getitem__(image, STEM),
            TYPE: dict.__getitem__(image, TYPE),
        },
    )
    return new


def _translated_affines(affine: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """``(N, 4, 4)`` copies of ``affine`` whose origins moved to voxels ``corners`` ``(N, 3)``.

    A patch's first voxel sits where its corner voxel of the volume was.
    """
    affines = np.repeat(affine[np.newaxis].astype(np.float64, copy=False), len(corners), axis=0)
    affines[:, :3, 3] = corners.astype(np.float64) @ affine[:3, :3].T + affine[:3, 3]
    return affines


#: Name and reproducing arguments of the ``Crop`` each patch's history gets
#: (all but ``cropping``, the same for every patch), built on first use.
_CROP_ENTRY: tuple[str, dict[str, object]] | None = None


def _crop_history_entry() -> tuple[str, dict[str, object]]:
    global _CROP_ENTRY
    if _CROP_ENTRY is None:
        from ...transforms.spatial.crop import Crop

        template = Crop((0,) * 6)
        _CROP_ENTRY = (template.name, template._get_reproducing_arguments())
    return _CROP_ENTRY


def _patch_subjects(
    subject: Subject,
    starts: Sequence[TypeTripletInt] | np.ndarray,
    size: TypeTripletInt,
    batches: dict[str, torch.Tensor] | dict[str, list[torch.Tensor]],
) -> list[Subject]:
    """The subjects of :func:`_patch_subject` for patches ``batches[name][n]`` at ``starts[n]``.

    ``starts`` holds the ``N`` corners, as triplets or an ``(N, 3)`` integer array.

    A plain subject (a ``Subject`` of plain images) takes a fast path that
    builds the same items, history and attributes without re-validating each
    patch, with the affines, croppings and locations of all patches computed
    at once; the locations are the rows of one ``(N, 6)`` tensor, which
    :class:`~torchvox.SubjectsLoader` then batches without a copy.
    """
    images = subject.get_images_dict(intensity_only=False)
    if type(subject) is not Subject or not all(_is_plain_image(i) for i in images.values()):
        return [
            _patch_subject(
                subject, _triplet(start), size, {name: batch[n] for name, batch in batches.items()}
            )
            for n, start in enumerate(starts)
        ]
    name, arguments = _crop_history_entry()
    corners = np.asarray(starts, dtype=np.int64).reshape(-1, 3)
    ends = corners + np.asarray(size, dtype=np.int64)
    location_batch = torch.from_numpy(np.hstack((corners, ends)))
    setattr(location_batch, _PATCH_BATCH, True)
    locations = location_batch.unbind(0)
    # (i0, i_after, j0, j_after, k0, k_after) of every patch, as Crop's bounds.
    remainders = np.asarray(subject.spatial_shape, dtype=np.int64) - ends
    croppings = np.stack((corners, remainders), axis=2).reshape(-1, 6).tolist()
    affines = {key: _translated_affines(image.affine, corners) for key, image in images.items()}
    history = list(subject.applied_transforms)
    items = list(subject.items())
    # One call per image for the patches' views (indexing one by one costs more).
    rows = {
        key: batch.unbind(0) if isinstance(batch, torch.Tensor) else batch
        for key, batch in batches.items()
    }
    patches = []
    for n, cropping in enumerate(croppings):
        patch = Subject.__new__(Subject)
        for key, value in items:
            if key in images:
                value = _patch_image(images[key], affines[key][n], rows[key][n])
            else:
                value = copy.deepcopy(value)
            dict.__setitem__(patch, key, value)
        patch.applied_transforms = [*history, (name, {**arguments, "cropping": tuple(cropping)})]
        dict.__setitem__(patch, LOCATION, locations[n])
        patch.update_attributes()
        patches.append(patch)
    return patches


def crop_subjects(
    subject: Subject,
    corners: Sequence[Sequence[int]] | np.ndarray,
    patch_size: TypeTripletInt | Sequence[int],
    arrays: dict[str, Volume] | None = None,
    buffers: dict[str, np.ndarray] | None = None,
) -> list[Subject]:
    """The patches of :func:`crop_subject` at several corners, copied in one call per image.

    The data of patch ``n`` is the view ``[n]`` of one ``(N, C, pi, pj, pk)`` tensor per
    image, so :class:`~torchvox.SubjectsLoader` batches them without copying again. No
    random number is drawn (the grid sampler's patches are not random).

    Args:
        subject: Subject whose images share one spatial shape ``(I, J, K)``.
        corners: The ``N`` corners ``(i0, j0, k0)``, e.g. an ``(N, 3)`` integer array.
        patch_size: Size ``(pi, pj, pk)`` of every patch.
        arrays: See :func:`crop_subject`.
        buffers: Optional ``(N, C, pi, pj, pk)`` C-contiguous arrays, by image
            name, that the patches are written into instead of new arrays
            (ignored for the volumes that are tensors, see :data:`Volume`).
    """
    size = _triplet(patch_size)
    corner_array = np.ascontiguousarray(np.asarray(corners, dtype=np.int64).reshape(-1, 3))
    if not len(corner_array):
        return []
    if arrays is None:
        arrays = volume_arrays(subject)
    buffers = {} if buffers is None else buffers
    batches = {
        name: _extract_patches(volume, corner_array, size, buffers.get(name))
        for name, volume in arrays.items()
    }
    return _patch_subjects(subject, corner_array, size, batches)


def _extract_patches(
    volume: Volume, corners: np.ndarray, size: TypeTripletInt, buffer: np.ndarray | None
) -> torch.Tensor:
    """The ``(N, C, pi, pj, pk)`` patches of ``volume`` at ``corners`` ``(N, 3)``,
    written into ``buffer`` if given (arrays only)."""
    if isinstance(volume, torch.Tensor):
        # One copy: stack writes the views into the new batch.
        batch = torch.stack([_patch_view(volume, _triplet(c), size) for c in corners.tolist()])
    else:
        batch = to_tensor(native().extract_patches(volume, corners, size, buffer))
    setattr(batch, _PATCH_BATCH, True)
    return batch


#: Attribute marking the batches of patches made by :func:`crop_subjects`.
_PATCH_BATCH = "_torchvox_patch_batch"


def is_patch_batch(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a batch :func:`crop_subjects` made, whose patches are
    its views: a loader may then hand it out as the stacked batch, without a copy
    (no one else holds it)."""
    return getattr(tensor, _PATCH_BATCH, False) is True


class PatchSampler:
    r"""Base class of the patch samplers.

    Args:
        patch_size: Tuple of integers ``(w, h, d)`` to generate patches of size
            ``w x h x d``. If a single number ``n`` is provided, ``w = h = d = n``.

    Raises:
        ValueError: If a patch dimension is not a positive integer.

    Warning:
        This is an abstract class; use its subclasses such as
        :class:`~torchvox.data.UniformSampler` and :class:`~torchvox.data.WeightedSampler`.
    """

    #: Whether :meth:`__call__` takes a number of patches (the grid sampler
    #: refuses one, as TorchIO's does).
    _takes_patch_count: ClassVar[bool] = True

    def __init__(self, patch_size: TypeSpatialShape):
        self.patch_size = _parse_patch_size(patch_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(patch_size={tuple(int(n) for n in self.patch_size)})"

    def _patch_size_tuple(self) -> tuple[int, int, int]:
        si, sj, sk = (int(v) for v in self.patch_size.tolist())
        return si, sj, sk

    def extract_patch(self, subject: Subject, index_ini: TypeTripletInt) -> Subject:
        """Return the patch of ``subject`` whose corner is ``index_ini``."""
        return self.crop(subject, index_ini, self._patch_size_tuple())

    def crop(
        self, subject: Subject, index_ini: TypeTripletInt, patch_size: TypeTripletInt
    ) -> Subject:
        """Return the region ``index_ini + [0, patch_size)`` of ``subject``.

        See :func:`crop_subject`.
        """
        return crop_subject(subject, index_ini, patch_size)

    def crops_pending_voxels(self) -> bool:
        """Whether the sampler reads a subject's images only through
        :func:`volume_arrays` with the boxes of its patches, drawn first, so that
        pending voxels (see :mod:`torchvox.data.pending`) are computed only
        there; any other reading computes them all, so the patches are the same
        either way. ``False`` unless a sampler of torchvox says so.
        """
        return False

    def _methods_are_torchvox(self, names: Sequence[str]) -> bool:
        """Whether none of the methods ``names`` is overridden by a class outside torchvox."""
        for name in names:
            owner = next(c for c in type(self).__mro__ if name in c.__dict__)
            if not owner.__module__.startswith("torchvox."):
                return False
        return True

    def _crops_directly(self) -> bool:
        """Whether patches may be cropped by :func:`crop_subject` without calling
        :meth:`extract_patch` and :meth:`crop`: only if no class outside torchvox
        overrides them (TorchIO's samplers take every patch through them)."""
        return self._methods_are_torchvox(_CROP_METHODS)

    def __call__(
        self, subject: Subject, num_patches: int | None = None
    ) -> Generator[Subject, None, None]:
        """Return a generator of patches (infinite if ``num_patches`` is None).

        Raises:
            RuntimeError: If the patch is larger than the images.
        """
        subject.check_consistent_space()
        if np.any(self.patch_size > np.array(subject.spatial_shape)):
            message = (
                f"Patch size {tuple(int(n) for n in self.patch_size)} cannot be"
                f" larger than image size {tuple(subject.spatial_shape)}"
            )
            raise RuntimeError(message)
        kwargs = {} if num_patches is None else {"num_patches": num_patches}
        return self._generate_patches(subject, **kwargs)

    def _generate_patches(
        self, subject: Subject, num_patches: int | None = None
    ) -> Generator[Subject, None, None]:
        raise NotImplementedError


class RandomSampler(PatchSampler):
    r"""Base class of the random samplers.

    Args:
        patch_size: See :class:`PatchSampler`.
    """

    def get_probability_map(self, subject: Subject) -> torch.Tensor:
        """Return the ``(1, I, J, K)`` map of patch-centre probabilities."""
        raise NotImplementedError
