"""Swap and RandomSwap: exchange pairs of patches inside images.

Used for context restoration in self-supervised learning (Chen et al., Medical
Image Analysis 2019). The swaps run in Rust on one copy of each image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native
from ..intensity_transform import IntensityTransform
from ..label._native_arrays import from_native, to_native
from ..random_transform import RandomTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["RandomSwap", "Swap"]

TypeTripletInt = tuple[int, int, int]
TypeLocations = Sequence[tuple[TypeTripletInt, TypeTripletInt]]


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _parse_triplet(value: object, name: str) -> TypeTripletInt:
    """An int ``n`` -> ``(n, n, n)``; three non-negative ints -> a tuple of them."""
    values = value.tolist() if isinstance(value, np.ndarray | torch.Tensor) else value
    if _is_int(values):
        values = (values, values, values)
    if (
        not isinstance(values, Sequence)
        or len(values) != 3
        or not all(_is_int(v) and v >= 0 for v in values)
    ):
        raise ValueError(f'"{name}" must be a non-negative int or 3 of them, got {value!r}')
    return int(values[0]), int(values[1]), int(values[2])


def _parse_locations(locations: object, name: str = "locations") -> list[tuple[Any, Any]]:
    if not isinstance(locations, Sequence | np.ndarray) or isinstance(locations, str):
        raise ValueError(f'"{name}" must be a sequence of (ini_a, ini_b) pairs, got {locations!r}')
    parsed = []
    for pair in locations:
        if len(pair) != 2:
            raise ValueError(f'Each item of "{name}" must be a pair (ini_a, ini_b), got {pair!r}')
        parsed.append((_parse_triplet(pair[0], name), _parse_triplet(pair[1], name)))
    return parsed


def _room(spatial_shape: Sequence[int], patch_size: Sequence[int]) -> np.ndarray:
    """Voxels left around a patch along each axis.

    Raises:
        ValueError: If the patch is larger than the image.
    """
    room = np.array(spatial_shape) - np.array(patch_size)
    if (room < 0).any():
        raise ValueError(
            f"Patch size {tuple(patch_size)} cannot be larger than image spatial shape"
            f" {tuple(spatial_shape)}"
        )
    return room


def get_random_indices_from_shape(
    spatial_shape: Sequence[int], patch_size: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the first corner of a patch that fits in ``spatial_shape``.

    Uses ``torch.randint`` exactly as TorchIO does (one draw per axis that has room),
    so random streams match.

    Returns:
        The first and one-past-last corners, as uint16 arrays.

    Raises:
        ValueError: If the patch is larger than the image.
    """
    patch_array = np.array(patch_size)
    room = _room(spatial_shape, patch_size)
    coordinates = []
    for max_coordinate in room.astype(np.uint16).tolist():
        if max_coordinate == 0:
            coordinates.append(0)
        else:
            coordinates.append(int(torch.randint(max_coordinate, size=(1,)).item()))
    index_ini = np.array(coordinates, np.uint16)
    return index_ini, index_ini + patch_array


class RandomSwap(RandomTransform, IntensityTransform):
    """Randomly swap pairs of patches within each image.

    Args:
        patch_size: Patch size ``(w, h, d)`` in voxels, or ``n`` for ``(n, n, n)``.
        num_iterations: Number of pairs of patches swapped.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``num_iterations`` is not an int.
        ValueError: If ``num_iterations`` is negative or ``patch_size`` is malformed;
            when called, if the patch is larger than an image or leaves no room for
            two different patches (where TorchIO loops for ever).
    """

    _replaces_data = True

    def __init__(
        self, patch_size: int | Sequence[int] = 15, num_iterations: int = 100, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.patch_size = np.array(_parse_triplet(patch_size, "patch_size"))
        self.num_iterations = self._parse_num_iterations(num_iterations)

    @staticmethod
    def _parse_num_iterations(num_iterations: object) -> int:
        if not _is_int(num_iterations):
            raise TypeError(f"num_iterations must be an int, not {num_iterations!r}")
        if num_iterations < 0:  # type: ignore[operator]
            raise ValueError(f"num_iterations must be positive, not {num_iterations}")
        return int(num_iterations)  # type: ignore[call-overload]

    @staticmethod
    def get_params(
        tensor: torch.Tensor, patch_size: np.ndarray, num_iterations: int
    ) -> list[tuple[TypeTripletInt, TypeTripletInt]]:
        """Draw ``num_iterations`` pairs of patch corners, as TorchIO does.

        The second patch is redrawn while it lies inside the first one (with equal
        sizes: while both are the same patch).
        """
        spatial_shape = tuple(tensor.shape[-3:])
        size = [int(value) for value in patch_size.tolist()]
        if num_iterations and (_room(spatial_shape, size) <= 1).all():
            # Corners are drawn below the room, so every draw would be (0, 0, 0):
            # TorchIO redraws the second patch for ever.
            raise ValueError(
                f"Patch size {tuple(size)} leaves no room for two different patches in"
                f" spatial shape {spatial_shape}: it must be at least 2 voxels smaller"
                " along one axis"
            )
        locations = []
        for _ in range(num_iterations):
            first_ini, first_fin = get_random_indices_from_shape(spatial_shape, size)
            while True:
                second_ini, second_fin = get_random_indices_from_shape(spatial_shape, size)
                contained = np.all(second_ini >= first_ini) and np.all(second_fin <= first_fin)
                if not contained:
                    break
            first = tuple(int(v) for v in first_ini.tolist())
            second = tuple(int(v) for v in second_ini.tolist())
            locations.append((first, second))
        return locations  # type: ignore[return-value]

    def apply_transform(self, subject: Subject) -> Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        patch_size = _parse_triplet(self.patch_size, "patch_size")
        locations = {
            name: self.get_params(image.data, self.patch_size, self.num_iterations)
            for name, image in images.items()
        }
        transform = Swap(
            patch_size={name: patch_size for name in images},
            locations=locations,
            **self._get_base_args(),
        )
        result: Subject = self._apply_child(transform, subject)
        return result

    def _get_named_arguments(self) -> dict[str, object]:
        return {"patch_size": self.patch_size, "num_iterations": self.num_iterations}


class Swap(IntensityTransform):
    """Swap pairs of patches within each image, in order.

    For each ``(ini_a, ini_b)`` of ``locations``, the patches of ``patch_size`` voxels
    whose first corners are ``ini_a`` and ``ini_b`` exchange their contents (all
    channels). The inverse applies the same swaps in reverse order, which restores
    the image exactly when the two patches of each pair do not overlap. Overlapping
    pairs are defined here as "``b`` receives the old ``a``, then ``a`` receives the
    old ``b``" (TorchIO's result then depends on torch's aliasing).

    Args:
        patch_size: ``(w, h, d)``, or ``{image_name: (w, h, d)}``.
        locations: Sequence of ``(ini_a, ini_b)`` corner pairs, or
            ``{image_name: locations}``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For malformed sizes or locations; when called, if a patch does not
            fit inside an image.
    """

    _replaces_data = True

    def __init__(
        self,
        patch_size: TypeTripletInt | Mapping[str, TypeTripletInt],
        locations: TypeLocations | Mapping[str, TypeLocations],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        sizes = patch_size.values() if isinstance(patch_size, Mapping) else [patch_size]
        for size in sizes:
            _parse_triplet(size, "patch_size")
        all_locations = locations.values() if isinstance(locations, Mapping) else [locations]
        for pairs in all_locations:
            _parse_locations(pairs)
        self.locations = locations
        self.patch_size = patch_size
        self.args_names = ["locations", "patch_size"]
        self.invert_transform = False

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            locations = _parse_locations(self.get_parameter(self.locations, name))
            patch_size = _parse_triplet(self.get_parameter(self.patch_size, name), "patch_size")
            if self.invert_transform:
                locations.reverse()
            data = image.data
            swapped = native().swap_patches(to_native(data), patch_size, locations)
            image.set_data(from_native(swapped, data.dtype))
        return subject
