"""Patches whose centres are drawn from a probability map."""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np
import torch

from ..._backend import native
from ...constants import MIN_FLOAT_32
from ...types import TypeTripletInt
from ..image import Image
from ..subject import Subject
from .sampler import RandomSampler, crop_subject, patch_boxes, volume_arrays

__all__ = ["WeightedSampler"]

#: TorchIO's sampling steps, in the order its generator calls them (``crop``
#: by ``extract_patch``). A subclass that overrides one of them is sampled
#: through them, one patch at a time; otherwise the native sampler gives the
#: same patches from the same numbers.
_SAMPLING_HOOKS = (
    "process_probability_map",
    "clear_probability_borders",
    "get_cumulative_distribution_function",
    "extract_patch",
    "get_random_index_ini",
    "sample_probability_map",
    "crop",
)


class WeightedSampler(RandomSampler):
    r"""Randomly extract patches from a volume given a probability map.

    The probability of sampling a patch centred on a voxel is the value of that voxel
    in the probability map; values need not be normalised (a voxel of value 5 is five
    times more likely to be a centre than a voxel of value 1, and 0 is never one).

    The centre of a patch of size ``s`` along an axis is its voxel ``s // 2``, so voxels
    closer to the border than that cannot be centres: their probabilities are ignored
    (TorchIO's border clearing). Centres are drawn by inverse-CDF sampling in Rust from
    uniform numbers drawn with ``torch.rand``, one per patch, as TorchIO draws them.

    Args:
        patch_size: See :class:`~torchvox.data.PatchSampler`.
        probability_map: Name of the image of the subject used as the map (typically
            of type :data:`torchvox.SAMPLING_MAP`); channel 0 is used.

    Raises:
        ValueError: If the map has negative values (when sampling).
        RuntimeError: If no voxel where a patch can be centred has a positive
            probability (when sampling).
    """

    def __init__(self, patch_size: int | tuple[int, int, int], probability_map: str | None):
        super().__init__(patch_size)
        if probability_map is not None and not isinstance(probability_map, str):
            raise TypeError(
                f"probability_map must be the name of an image (str), got {probability_map!r}"
            )
        self.probability_map_name = probability_map

    def get_probability_map_image(self, subject: Subject) -> Image:
        """The image holding the map.

        Raises:
            KeyError: If the subject has no image of that name.
        """
        assert self.probability_map_name is not None
        if self.probability_map_name in subject:
            return subject.get_image(self.probability_map_name)
        raise KeyError(f'Image "{self.probability_map_name}" not found in subject: {subject}')

    def get_probability_map(self, subject: Subject) -> torch.Tensor:
        """The ``(C, I, J, K)`` map of the subject.

        Raises:
            ValueError: If it holds negative values.
        """
        data = self.get_probability_map_image(subject).data
        if torch.any(data < 0):
            raise ValueError(
                f'Negative values found in probability map "{self.probability_map_name}"'
            )
        return data

    def _centre_map(self, subject: Subject) -> np.ndarray:
        """The first channel of :meth:`get_probability_map` as the array Rust reads."""
        return self._map_array(self.get_probability_map(subject))

    def _map_array(self, probability_map: torch.Tensor) -> np.ndarray:
        channel = probability_map[0]
        if channel.dtype == torch.bool:
            # A mask of allowed centres: its bytes are 0 and 1, read as uint8 in Rust.
            channel = channel.view(torch.uint8)
        elif channel.dtype not in (torch.float32, torch.float64, torch.uint8):
            channel = channel.to(torch.float32)
        return np.ascontiguousarray(channel.numpy())

    def _empty_map_error(self, subject: Subject) -> RuntimeError:
        half_patch_size = tuple(int(n) // 2 for n in self.patch_size)
        try:
            path = self.get_probability_map_image(subject).path
        except KeyError:
            path = None
        return RuntimeError(
            f"Empty probability map found: {path}"
            "\nVoxels with positive probability might be near the image border."
            "\nIf you suspect that this is the case, try adding a padding transform"
            f"\nwith half the patch size: torchvox.Pad({half_patch_size})"
        )

    def corner_drawer(self, subject: Subject) -> Callable[[torch.Tensor], np.ndarray]:
        """A function mapping ``N`` uniform numbers in ``[0, 1)`` to patch corners ``(N, 3)``.

        The map of ``subject`` is computed, validated and summed once (a float64 row
        prefix table in Rust); every call then costs a few binary searches, so an
        infinite generator of patches does not re-scan the volume per patch.

        Raises:
            ValueError: If the map holds negative or non-finite values.
            RuntimeError: If the map is empty once the borders are cleared.
        """
        array = self._centre_map(subject)
        size = self._patch_size_tuple()
        try:
            table = native().centre_table(array, size)
        except ValueError as error:
            if "empty probability map" in str(error):
                raise self._empty_map_error(subject) from error
            raise
        half = self.patch_size.astype(np.int64) // 2

        def corners(uniforms: torch.Tensor) -> np.ndarray:
            uniform_array = uniforms.detach().cpu().to(torch.float64).numpy()
            return native().draw_centres(array, size, table, uniform_array) - half

        return corners

    def sample_corners(self, subject: Subject, uniforms: torch.Tensor) -> np.ndarray:
        """Patch corners ``(N, 3)`` for ``N`` uniform numbers in ``[0, 1)``.

        Raises:
            ValueError: If the map holds negative or non-finite values.
            RuntimeError: If the map is empty once the borders are cleared.
        """
        return self.corner_drawer(subject)(uniforms)

    # TorchIO's sampling steps ------------------------------------------------

    def process_probability_map(
        self, probability_map: torch.Tensor, subject: Subject
    ) -> np.ndarray:
        """Channel 0 of ``probability_map`` as float64, borders cleared, summing to 1.

        Args:
            probability_map: ``(C, I, J, K)`` map (:meth:`get_probability_map`).
            subject: The subject it belongs to (named in the error).

        Returns:
            An ``(I, J, K)`` float64 array.

        Raises:
            RuntimeError: If no voxel where a patch can be centred has a positive value.
        """
        # float64: a float32 CDF of a large volume can end far from 1.
        data = probability_map[0].detach().cpu().numpy().astype(np.float64)
        self.clear_probability_borders(data, self.patch_size)
        total = data.sum()
        if total == 0:
            raise self._empty_map_error(subject)
        data /= total
        return data

    @staticmethod
    def clear_probability_borders(probability_map: np.ndarray, patch_size: np.ndarray) -> None:
        """Zeroes, in place, the voxels of an ``(I, J, K)`` map that cannot be centres.

        The centre of a patch of size ``s`` is its voxel ``s // 2``, so the first
        ``s // 2`` and the last ``(s - 1) // 2`` voxels of each axis are cleared.
        """
        sizes = [int(n) for n in np.asarray(patch_size).tolist()]  # no unsigned arithmetic
        for axis, size in enumerate(sizes):
            before, after = size // 2, (size - 1) // 2
            index: list[slice] = [slice(None)] * 3
            index[axis] = slice(0, before)
            probability_map[tuple(index)] = 0
            if after:
                index[axis] = slice(probability_map.shape[axis] - after, None)
                probability_map[tuple(index)] = 0

    @staticmethod
    def get_cumulative_distribution_function(probability_map: np.ndarray) -> np.ndarray:
        """The cumulative sum of the flattened (C-order) map, normalised to end at 1."""
        flat = probability_map.ravel()
        return np.cumsum(flat / flat.sum())

    def extract_patch(
        self,
        subject: Subject,
        index_ini: TypeTripletInt | np.ndarray,
        cdf: np.ndarray | None = None,
    ) -> Subject:
        """The patch at corner ``index_ini``, or, given a ``cdf``, at a random corner.

        Args:
            subject: Subject to crop.
            index_ini: The corner ``(i, j, k)``; or, with ``cdf``, the processed
                map (:meth:`process_probability_map`) to draw the centre from.
            cdf: Its :meth:`get_cumulative_distribution_function`, or ``None``.

        Raises:
            TypeError: If ``cdf`` is given but the map is not a NumPy array.
        """
        if cdf is None:
            i, j, k = (int(v) for v in np.asarray(index_ini).tolist())
            return super().extract_patch(subject, (i, j, k))
        if not isinstance(index_ini, np.ndarray):
            raise TypeError("The probability map must be a NumPy array when a CDF is given")
        i, j, k = (int(v) for v in self.get_random_index_ini(index_ini, cdf).tolist())
        return super().extract_patch(subject, (i, j, k))

    def get_random_index_ini(self, probability_map: np.ndarray, cdf: np.ndarray) -> np.ndarray:
        """A random patch corner: a centre drawn from the map, minus half the patch."""
        centre = self.sample_probability_map(probability_map, cdf)
        return centre - self.patch_size.astype(np.int64) // 2

    @classmethod
    def sample_probability_map(cls, probability_map: np.ndarray, cdf: np.ndarray) -> np.ndarray:
        """One voxel ``(i, j, k)`` drawn from ``probability_map`` by inverse transform sampling.

        Draws one number with ``torch.rand`` (never below float32 epsilon, so a
        leading run of zero probability is never chosen).

        Raises:
            RuntimeError: If the voxel drawn has no probability (``cdf`` is not
                the map's).
        """
        target = max(MIN_FLOAT_32, torch.rand(1).item()) * cdf[-1]
        index = int(np.searchsorted(cdf, target))
        centre = np.unravel_index(index, probability_map.shape)
        if probability_map[centre] <= 0:
            raise RuntimeError(
                f"Voxel {tuple(int(c) for c in centre)} was drawn but has probability"
                f" {probability_map[centre]}: the CDF does not belong to this map"
            )
        return np.array(centre)

    def _uses_own_sampling_steps(self) -> bool:
        """Whether a subclass (not torchvox's) overrides one of TorchIO's sampling steps."""
        return not self._methods_are_torchvox(_SAMPLING_HOOKS)

    def crops_pending_voxels(self) -> bool:
        """See :meth:`~torchvox.data.PatchSampler.crops_pending_voxels`."""
        methods = ("__call__", "_generate_patches", "corner_drawer", "sample_corners")
        return self._methods_are_torchvox((*methods, *_SAMPLING_HOOKS))

    def _generate_patches_by_steps(
        self, subject: Subject, num_patches: int | None
    ) -> Generator[Subject, None, None]:
        """Patches drawn through the (overridable) steps, as TorchIO draws them."""
        probability_map = self.process_probability_map(self.get_probability_map(subject), subject)
        cdf = self.get_cumulative_distribution_function(probability_map)
        count = 0
        while num_patches is None or count < num_patches:
            yield self.extract_patch(subject, probability_map, cdf)
            count += 1

    def _generate_patches(
        self, subject: Subject, num_patches: int | None = None
    ) -> Generator[Subject, None, None]:
        if self._uses_own_sampling_steps():
            yield from self._generate_patches_by_steps(subject, num_patches)
            return
        size = self._patch_size_tuple()
        draw_corners = self.corner_drawer(subject)
        if num_patches is not None:
            # TorchIO draws one number per patch and its Crop one more; torch.rand(2n)
            # yields the same numbers as 2n calls to torch.rand(1), so the even ones
            # are TorchIO's draws.
            corners = draw_corners(torch.rand(2 * num_patches)[0::2])
            # Pending voxels are computed inside these patches only.
            arrays = volume_arrays(subject, patch_boxes(corners, size))
            for corner in corners:
                yield crop_subject(subject, corner.tolist(), size, arrays, consume_random=False)
            return
        arrays = volume_arrays(subject)
        while True:
            corner = draw_corners(torch.rand(1))[0]
            yield crop_subject(subject, corner.tolist(), size, arrays)
