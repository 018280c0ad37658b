"""LabelsToImage and RandomLabelsToImage: synthesise an intensity image from labels.

After Billot et al., "A Learning Strategy for Contrast-agnostic MRI Segmentation"
(MIDL 2020) and "Partial Volume Segmentation of Brain MRI Scans of any Resolution
and Contrast" (MICCAI 2020). Each label gets Gaussian intensities
``mean + std * N(0, 1)``; partial-volume maps weight them; voxels of unused labels
can keep an existing image. The Gaussian noise is drawn in Rust from a seed, so a
recorded :class:`LabelsToImage` replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..._backend import native, to_numpy, to_tensor
from ..intensity_transform import IntensityTransform
from ..label._native_arrays import to_native
from ..random_transform import RandomTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["LabelsToImage", "RandomLabelsToImage"]

TypeRangeFloat = float | tuple[float, float]


@dataclass
class _LabelAnalysis:
    """A label map prepared for synthesis.

    Attributes:
        array: The (possibly discretised) label map as a kernel-ready array.
        is_discretized: Whether ``array`` is a categorical ``(1, I, J, K)`` map;
            otherwise a partial-volume map with one channel per label.
        labels: Label values (categorical) or channel indices (partial volume).
    """

    array: np.ndarray
    is_discretized: bool
    labels: list[int]


def _analyse_label_map(data: torch.Tensor, discretize: bool) -> _LabelAnalysis:
    """Decide, as TorchIO does, whether a label map is categorical or partial-volume.

    A map is categorical if all its values are integral and it has a single channel
    (TorchIO accepts any singleton dimension, but then fails for multichannel maps).
    A partial-volume map with ``discretize`` becomes the argmax over channels, with
    -1 where every channel is 0 (no label).
    """
    nat = native()
    array = to_native(data)
    is_discretized = data.shape[0] == 1 and bool(nat.labels_are_integral(array))
    if not is_discretized and discretize:
        array = nat.argmax(array, -1)
        is_discretized = True
    if is_discretized:
        labels = [int(value) for value in nat.unique_labels(array) if value != -1]
    else:
        labels = list(range(data.shape[0]))
    return _LabelAnalysis(array, is_discretized, labels)


def _parse_label_key(label_key: object) -> str | None:
    if label_key is not None and not isinstance(label_key, str):
        raise TypeError(f'"label_key" must be a string or None, not {type(label_key)}')
    return label_key


def _parse_used_labels(used_labels: Sequence[int] | None) -> Sequence[int] | None:
    if used_labels is None:
        return None
    if isinstance(used_labels, str) or not isinstance(used_labels, Sequence):
        raise ValueError(f'"used_labels" must be a sequence of integers, got {used_labels!r}')
    for label in used_labels:
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise ValueError(
                f'Items in "used_labels" must be integers, but some are not: {used_labels}'
            )
    return used_labels


def _check_mean_and_std_length(
    labels: Sequence[int], means: Sequence[Any] | None, stds: Sequence[Any] | None
) -> None:
    for name, values in (("mean", means), ("std", stds)):
        if values is not None and len(values) != len(labels):
            raise RuntimeError(
                f'"{name}" must define a value for each label but length of "{name}"'
                f" is {len(values)} while {len(labels)} labels were found"
            )


class LabelsToImage(IntensityTransform):
    """Generate an image from a label map (or partial-volume maps).

    Voxels of label ``l`` get ``mean[i] + std[i] * N(0, 1)``, where ``i`` is the
    position of ``l`` among the labels present (sorted), or, for partial-volume
    maps (one channel per label, any non-integral values), the weighted sum of
    every channel's Gaussian. The result is a float32 :class:`~torchvox.ScalarImage`
    stored under ``image_key``, on the grid of the label map.

    Args:
        label_key: Name of the :class:`~torchvox.LabelMap` to read.
        mean: One mean per label present.
        std: One standard deviation per label present.
        image_key: Name of the new image. If the subject already has a scalar image
            under this name, its voxels fill the labels not used (``used_labels``)
            and, for partial-volume maps, voxels whose used weights sum below 0.5.
        used_labels: Labels (or channels of a partial-volume map) to synthesise;
            ``None`` uses all.
        ignore_background: If ``True``, voxels of label 0 stay 0.
        discretize: If ``True``, partial-volume maps are first turned into a
            categorical map by taking the channel of the highest value in every voxel
            (voxels where every channel is 0 have no label).
        seed: Seed of the Gaussian noise. ``None`` draws a new one from torch's
            generator on every call (TorchIO draws unseeded noise); the seed used is
            recorded in the subject history so the call replays exactly.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``label_key`` is not a string.
        ValueError: For non-integer ``used_labels``, a negative or too large
            ``seed``, or NaN means/stds; when called, for NaN in the label map.
        RuntimeError: When called, if the numbers of means or stds and of labels
            differ.
    """

    _replaces_data = True

    def __init__(
        self,
        label_key: str,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        image_key: str = "image_from_labels",
        used_labels: Sequence[int] | None = None,
        ignore_background: bool = False,
        discretize: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        parsed_key = _parse_label_key(label_key)
        if parsed_key is None:
            raise TypeError('"label_key" must be the name of a label map, got None')
        self.label_key: str = parsed_key
        self.used_labels = _parse_used_labels(used_labels)
        for name, values in (("mean", mean), ("std", std)):
            if values is not None:
                if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
                    raise ValueError(f'"{name}" must be a sequence of numbers, got {values!r}')
                if not all(math.isfinite(float(value)) for value in values):
                    raise ValueError(f'"{name}" values must be finite numbers, got {values!r}')
        self.means: Sequence[float] | None = mean
        self.stds: Sequence[float] | None = std
        if not isinstance(image_key, str):
            raise TypeError(f'"image_key" must be a string, got {image_key!r}')
        self.image_key = image_key
        self.ignore_background = ignore_background
        self.discretize = discretize
        if seed is not None and (
            isinstance(seed, bool)
            or not isinstance(seed, int | np.integer)
            or not 0 <= seed < 2**64
        ):
            raise ValueError(f'"seed" must be None or an integer in [0, 2**64), got {seed!r}')
        self.seed = seed
        #: Seed of the last call, recorded in the history when ``seed`` is None.
        self._last_seed: int | None = None
        #: Analysis of the label map prepared by RandomLabelsToImage (tensor id, result).
        self._prepared: tuple[int, _LabelAnalysis] | None = None
        self.args_names = [
            "label_key",
            "mean",
            "std",
            "image_key",
            "used_labels",
            "ignore_background",
            "discretize",
            "seed",
        ]

    def _get_named_arguments(self) -> dict[str, object]:
        return {
            "label_key": self.label_key,
            "mean": self.means,
            "std": self.stds,
            "image_key": self.image_key,
            "used_labels": self.used_labels,
            "ignore_background": self.ignore_background,
            "discretize": self.discretize,
            "seed": self.seed if self.seed is not None else self._last_seed,
        }

    def _roles(self, analysis: _LabelAnalysis) -> list[tuple[int, str, float, float]]:
        """``(label, kind, mean, std)`` for every label present, as TorchIO treats it."""
        _check_mean_and_std_length(analysis.labels, self.means, self.stds)
        roles = []
        for index, label in enumerate(analysis.labels):
            if label == 0 and self.ignore_background:
                roles.append((label, "ignored", 0.0, 0.0))
            elif self.used_labels is None or label in self.used_labels:
                if self.means is None or self.stds is None:
                    raise RuntimeError(
                        f'"mean" and "std" must be given to synthesise label {label}'
                    )
                roles.append((label, "tissue", float(self.means[index]), float(self.stds[index])))
            else:
                roles.append((label, "background", 0.0, 0.0))
        return roles

    def apply_transform(self, subject: Subject) -> Subject:
        from ...data.image import ScalarImage

        original = subject.get_scalar_image(self.image_key) if self.image_key in subject else None
        label_image = subject.get_label_map(self.label_key)
        data = label_image.data
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] == id(data):
            analysis = prepared[1]
        else:
            analysis = _analyse_label_map(data, self.discretize)
        roles = self._roles(analysis)

        background = None
        if original is not None:
            if original.num_channels != 1:
                raise RuntimeError(
                    f'The image "{self.image_key}" used as background must have one channel,'
                    f" but it has {original.num_channels}"
                )
            background = to_numpy(original.data.to(torch.float32))
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(0, 2**31, (1,)).item())
        self._last_seed = seed

        nat = native()
        if analysis.is_discretized:
            synthetic = nat.labels_to_image_discrete(
                analysis.array,
                [(float(label), kind, mean, std) for label, kind, mean, std in roles],
                int(seed),
                background,
            )
        else:
            synthetic = nat.labels_to_image_partial_volume(
                analysis.array,
                [(kind, mean, std) for _, kind, mean, std in roles],
                int(seed),
                background,
            )
        image = ScalarImage(tensor=to_tensor(synthetic), affine=label_image.affine.copy())
        subject.add_image(image, self.image_key)
        return subject


class RandomLabelsToImage(RandomTransform, IntensityTransform):
    """Randomly generate an image from a label map (or partial-volume maps).

    For every label present, a mean and a standard deviation are drawn uniformly
    from their ranges, then :class:`LabelsToImage` synthesises the image (and is
    recorded in the history with those values and its noise seed).

    Under the same ``torch.manual_seed`` the means and standard deviations are
    TorchIO's, but the noise is not: TorchIO draws a volume of ``torch.randn``
    values per label, this draws one seed. So the random transforms after this
    one in a pipeline draw other parameters than in TorchIO.

    Args:
        label_key: Name of the label map; ``None`` uses the first label map of the
            subject (and remembers it, as TorchIO does).
        used_labels: Labels (or partial-volume channels) to synthesise; ``None`` uses
            all. Voxels of other labels keep the image ``image_key`` if it exists.
        image_key: Name of the new image; see :class:`LabelsToImage`.
        mean: Per-label mean, a number ``v`` or a range ``(a, b)`` for ``U(a, b)``,
            indexed by label value; ``None`` uses ``default_mean`` for every label.
        std: Per-label standard deviation, as ``mean``.
        default_mean: Default mean range.
        default_std: Default standard deviation range.
        discretize: See :class:`LabelsToImage`.
        ignore_background: If ``True``, voxels of label 0 stay 0.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``label_key`` is not a string or ``None``.
        ValueError: For malformed ranges or non-integer ``used_labels``.
        RuntimeError: When called, if no label map is found, or if ``mean``/``std``
            do not have one value per label present.
    """

    _replaces_data = True

    def __init__(
        self,
        label_key: str | None = None,
        used_labels: Sequence[int] | None = None,
        image_key: str = "image_from_labels",
        mean: Sequence[TypeRangeFloat] | None = None,
        std: Sequence[TypeRangeFloat] | None = None,
        default_mean: TypeRangeFloat = (0.1, 0.9),
        default_std: TypeRangeFloat = (0.01, 0.1),
        discretize: bool = False,
        ignore_background: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.label_key = _parse_label_key(label_key)
        self.used_labels = _parse_used_labels(used_labels)
        self.mean_ranges = self._parse_gaussian_parameters(mean, "mean")
        self.std_ranges = self._parse_gaussian_parameters(std, "std")
        if (
            self.mean_ranges is not None
            and self.std_ranges is not None
            and len(self.mean_ranges) != len(self.std_ranges)
        ):
            raise ValueError('If both "mean" and "std" are defined they must have the same length')
        self.default_mean = self.parse_gaussian_parameter(default_mean, "default_mean")
        self.default_std = self.parse_gaussian_parameter(default_std, "default_std")
        if not isinstance(image_key, str):
            raise TypeError(f'"image_key" must be a string, got {image_key!r}')
        self.image_key = image_key
        self.discretize = discretize
        self.ignore_background = ignore_background

    def _parse_gaussian_parameters(
        self, params: Sequence[TypeRangeFloat] | None, name: str
    ) -> list[tuple[float, float]] | None:
        if params is None:
            return None
        if isinstance(params, str) or not isinstance(params, Sequence):
            raise ValueError(f'"{name}" must be a sequence, got {params!r}')
        parsed = [self.parse_gaussian_parameter(p, f"{name}[{i}]") for i, p in enumerate(params)]
        if self.used_labels is not None and len(parsed) != len(self.used_labels):
            raise ValueError(
                f'If both "{name}" and "used_labels" are defined, they must have the same length'
            )
        return parsed

    @staticmethod
    def parse_gaussian_parameter(nums_range: TypeRangeFloat, name: str) -> tuple[float, float]:
        """A number ``v`` -> ``(v, v)``; a pair ``(a, b)`` with ``a <= b`` -> itself.

        Raises:
            ValueError: For other lengths, non-numbers, NaN or ``a > b``.
        """
        if isinstance(nums_range, int | float | np.integer | np.floating) and not isinstance(
            nums_range, bool
        ):
            if math.isnan(nums_range):
                raise ValueError(f'"{name}" must not be NaN')
            return float(nums_range), float(nums_range)
        try:
            values = tuple(nums_range)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(f'"{name}" must be a number or a pair, got {nums_range!r}') from None
        if len(values) != 2:
            raise ValueError(f"If {name} is a sequence, it must be of len 2, not {nums_range}")
        low, high = values
        for value in values:
            if not isinstance(value, int | float | np.integer | np.floating) or math.isnan(value):
                raise ValueError(f'"{name}" values must be numbers, got {nums_range!r}')
        if low > high:
            raise ValueError(
                f"If {name} is a sequence, the second value must be"
                f" equal or greater than the first, not {nums_range}"
            )
        return low, high

    def _guess_label_key(self, subject: Subject) -> str:
        from ...data.image import LabelMap

        if self.label_key is None:
            for name, image in subject.get_images_dict(intensity_only=False).items():
                if isinstance(image, LabelMap):
                    self.label_key = name
                    break
            else:
                raise RuntimeError(f"No label maps found in subject: {subject}")
        return self.label_key

    def get_params(self, label: int) -> tuple[float, float]:
        """Draw ``(mean, std)`` for ``label`` (ranges indexed by label value, as TorchIO)."""
        mean_range = self._range_of(self.mean_ranges, label, "mean", self.default_mean)
        std_range = self._range_of(self.std_ranges, label, "std", self.default_std)
        return self.sample_uniform(*mean_range), self.sample_uniform(*std_range)

    @staticmethod
    def _range_of(
        ranges: list[tuple[float, float]] | None,
        label: int,
        name: str,
        default: tuple[float, float],
    ) -> tuple[float, float]:
        if ranges is None:
            return default
        if not 0 <= label < len(ranges):
            raise RuntimeError(
                f'"{name}" is indexed by label value, but label {label} has no entry'
                f" among {len(ranges)} values"
            )
        return ranges[label]

    def apply_transform(self, subject: Subject) -> Subject:
        label_key = self._guess_label_key(subject)
        data = subject.get_label_map(label_key).data
        analysis = _analyse_label_map(data, self.discretize)
        _check_mean_and_std_length(analysis.labels, self.mean_ranges, self.std_ranges)
        means, stds = [], []
        for label in analysis.labels:
            mean, std = self.get_params(label)
            means.append(mean)
            stds.append(std)
        transform = LabelsToImage(
            label_key=label_key,
            mean=means,
            std=stds,
            image_key=self.image_key,
            used_labels=self.used_labels,
            ignore_background=self.ignore_background,
            discretize=self.discretize,
            seed=self._get_random_seed(),
            **self._get_base_args(),
        )
        # The analysis is reused if the child sees the same label tensor.
        transform._prepared = (id(data), analysis)
        result: Subject = self._apply_child(transform, subject)
        return result

    def _get_named_arguments(self) -> dict[str, object]:
        return {
            "label_key": self.label_key,
            "used_labels": self.used_labels,
            "image_key": self.image_key,
            "mean": self.mean_ranges,
            "std": self.std_ranges,
            "default_mean": self.default_mean,
            "default_std": self.default_std,
            "discretize": self.discretize,
            "ignore_background": self.ignore_background,
        }
