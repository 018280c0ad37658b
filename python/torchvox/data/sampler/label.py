"""Patches centred on labelled voxels, with per-label rates."""

from __future__ import annotations

import numpy as np
import torch

from ...constants import LABEL, TYPE
from ..image import Image
from ..subject import Subject
from .weighted import WeightedSampler

__all__ = ["LabelSampler"]

# Label dtypes whose ``> 0`` NumPy evaluates exactly as torch does.
_NUMPY_DTYPES = (
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.float32,
    torch.float64,
)


class LabelSampler(WeightedSampler):
    r"""Extract random patches with labelled voxels at their centre.

    Without ``label_probabilities``, every voxel with a label greater than 0 in the
    first channel is an equally likely centre. With ``label_probabilities`` such as
    ``{0: 0.5, 1: 0.5}``, a patch is centred on each label with the given relative
    rate (voxels of a label share its probability equally). For a multichannel label
    map, the keys are channel indices (one-hot maps).

    Args:
        patch_size: See :class:`~torchvox.data.PatchSampler`.
        label_name: Name of the label map; the first :class:`~torchvox.LabelMap` of
            the subject if ``None``.
        label_probabilities: Dictionary ``{label: relative probability}``.

    Raises:
        TypeError: If ``label_probabilities`` is not a dictionary.
        ValueError: If a probability is negative or all are zero.
    """

    def __init__(
        self,
        patch_size: int | tuple[int, int, int],
        label_name: str | None = None,
        label_probabilities: dict[int, float] | None = None,
    ):
        super().__init__(patch_size, probability_map=label_name)
        if label_probabilities is not None:
            if not isinstance(label_probabilities, dict):
                raise TypeError(
                    "label_probabilities must be a dictionary {label: probability},"
                    f" got {label_probabilities!r}"
                )
            values = list(label_probabilities.values())
            if any(float(v) < 0 for v in values) or not any(float(v) > 0 for v in values):
                raise ValueError(
                    "label_probabilities must be non-negative with a positive sum,"
                    f" got {label_probabilities!r}"
                )
        self.label_probabilities_dict = label_probabilities

    def get_probability_map_image(self, subject: Subject) -> Image:
        """The label map (by name, or the first image of type ``'label'``).

        Raises:
            RuntimeError: If the subject has no label map.
            KeyError: If ``label_name`` is not in the subject.
        """
        if self.probability_map_name is None:
            for image in subject.get_images(intensity_only=False):
                if image[TYPE] == LABEL:
                    return image
            images = subject.get_images(intensity_only=False)
            raise RuntimeError(
                f"No label maps found in subject {subject} with image"
                f" paths {[image.path for image in images]}"
            )
        if self.probability_map_name in subject:
            return subject.get_image(self.probability_map_name)
        raise KeyError(
            f'Image "{self.probability_map_name}" not found in subject subject: {subject}'
        )

    def get_probability_map(self, subject: Subject) -> torch.Tensor:
        """The ``(C, I, J, K)`` centre probabilities (borders excluded from label counts)."""
        label_map = self.get_probability_map_image(subject).data
        if self.label_probabilities_dict is None:
            return label_map > 0
        if label_map.is_floating_point():
            # TorchIO compares the labels with the map in float32.
            label_map = label_map.float()
        return self.get_probabilities_from_label_map(
            label_map, self.label_probabilities_dict, self.patch_size
        )

    def _centre_map(self, subject: Subject) -> np.ndarray:
        """The mask ``label > 0`` of the first channel, as uint8, computed by NumPy.

        Same as :meth:`get_probability_map` then ``_map_array`` for the default
        rates, but on one channel and without a torch comparison: torch runs it
        on its OpenMP threads, which keep spinning after it and slow down the
        patch copies that follow (and it is ten times slower than NumPy here).
        """
        overridden = type(self).get_probability_map is not LabelSampler.get_probability_map
        if self.label_probabilities_dict is not None or overridden:
            return super()._centre_map(subject)
        image = self.get_probability_map_image(subject)
        pending = image._pending_voxels()
        if pending is not None and pending.dtype in _NUMPY_DTYPES:
            # Only the voxels where a patch can be centred count (the others are
            # cleared), so only those are computed (see torchvox.data.pending).
            values = pending.evaluate_boxes(self._centre_box(subject.spatial_shape))[0]
        else:
            channel = image.data[0]
            if channel.device.type != "cpu" or channel.dtype not in _NUMPY_DTYPES:
                return super()._centre_map(subject)
            values = channel.detach().numpy()
        mask = np.greater(values, 0)
        return np.ascontiguousarray(mask).view(np.uint8)

    def _centre_box(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The ``(1, 6)`` box of the voxels where a patch can be centred: the
        patch's centre is its voxel ``size // 2``, so the first ``size // 2`` and
        the last ``(size - 1) // 2`` voxels of each axis are out."""
        size = self.patch_size.astype(np.int64)
        first = size // 2
        end = np.asarray(shape, dtype=np.int64) - (size - 1) // 2
        return np.concatenate((first, end))[None]

    @staticmethod
    def get_probabilities_from_label_map(
        label_map: torch.Tensor,
        label_probabilities_dict: dict[int, float],
        patch_size: np.ndarray,
    ) -> torch.Tensor:
        """Probability map ``(1, I, J, K)`` giving each label its rate.

        Voxels are counted only where a patch can be centred (TorchIO issue 458), so
        the requested rates hold for the patches actually drawn.

        Raises:
            RuntimeError: If the patch is larger than the label map.
        """
        patch = np.asarray(patch_size).astype(int)
        spatial_shape = np.array(label_map.shape[1:])
        if np.any(patch > spatial_shape):
            raise RuntimeError(f"Patch size {patch}larger than label map {spatial_shape}")
        ini = patch // 2
        fin = spatial_shape - (patch - 1) // 2
        box = (slice(None), *(slice(int(a), int(b)) for a, b in zip(ini, fin, strict=True)))
        inner = label_map[box]
        labels = list(label_probabilities_dict)
        probabilities = torch.as_tensor(
            [float(label_probabilities_dict[label]) for label in labels], dtype=torch.float64
        )
        probabilities = probabilities / probabilities.sum()
        output = torch.zeros(1, *label_map.shape[1:], dtype=torch.float32)
        if inner.shape[0] > 1:
            # One-hot map: the keys are channels.
            accumulated = torch.zeros(inner.shape[1:], dtype=torch.float32)
            for label, probability in zip(labels, probabilities.tolist(), strict=True):
                mask = inner[label] > 0
                count = int(mask.sum())
                if count:
                    accumulated += mask.to(torch.float32) * (probability / count)
            output[box] = accumulated[None]
            return output
        channel = inner[0]
        # A voxel has a label only if it equals it exactly, as in TorchIO (0.6
        # is no label's): float maps of whole numbers take the histogram below
        # as integers, other float maps the comparisons after it.
        integral = not channel.is_floating_point() or bool((channel == channel.trunc()).all())
        minimum = int(channel.min()) if channel.numel() and integral else 0
        if integral and minimum >= 0 and all(int(label) >= 0 for label in labels):
            channel = channel.to(torch.int64)
            # One histogram instead of one full-volume comparison per label.
            size = max(int(channel.max()), max(int(label) for label in labels)) + 1
            counts = torch.bincount(channel.reshape(-1), minlength=size).to(torch.float64)
            table = torch.zeros(size, dtype=torch.float64)
            for label, probability in zip(labels, probabilities.tolist(), strict=True):
                if counts[int(label)] > 0:
                    table[int(label)] = probability / counts[int(label)]
            output[0][box[1:]] = table[channel].to(torch.float32)
            return output
        accumulated = torch.zeros(channel.shape, dtype=torch.float32)
        for label, probability in zip(labels, probabilities.tolist(), strict=True):
            mask = channel == label
            count = int(mask.sum())
            if count:
                accumulated[mask] = probability / count
        output[0][box[1:]] = accumulated
        return output
