"""A ``DataLoader`` whose batches are plain nested dictionaries."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from .._backend import stack
from .sampler.sampler import is_patch_batch

__all__ = ["SubjectsLoader"]


class SubjectsLoader(DataLoader):
    """``DataLoader`` for :class:`SubjectsDataset` (or any dataset of subjects or patches).

    Its default collate function returns plain nested dictionaries rather than
    ``Subject``/``Image`` objects: ``batch['t1']['data']`` is a ``(B, C, W, H, D)``
    tensor, ``batch['t1']['affine']`` a NumPy ``(B, 4, 4)`` array,
    ``batch['t1']['path']`` a list of strings, numbers become tensors and any other
    value a list.

    Args:
        dataset: The dataset.
        collate_fn: Custom collate function; the one described above if ``None``.
        **kwargs: Any other ``torch.utils.data.DataLoader`` argument.
    """

    def __init__(
        self,
        dataset: Dataset,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        **kwargs: Any,
    ):
        if collate_fn is None:
            collate_fn = self._collate
        super().__init__(dataset=dataset, collate_fn=collate_fn, **kwargs)

    @staticmethod
    def _collate(subjects: list[Any]) -> dict[str, Any]:
        first = subjects[0]
        return {key: _stack([subject[key] for subject in subjects]) for key in first}


def _stack(values: list[Any]) -> Any:
    """Stack the values of one key across a batch, recursing into dictionaries."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        base = _stacked_base(values)
        if base is not None:
            return base
        dtype = functools.reduce(torch.promote_types, (value.dtype for value in values))
        if get_worker_info() is not None:
            # In a worker, torch's collate stacks straight into shared memory,
            # which the batch needs anyway to reach the main process; it stacks
            # into the first item's dtype, so mixed dtypes are promoted first,
            # as torch.stack (and TorchIO) would.
            return default_collate([value.to(dtype) for value in values])
        if type(first) is not torch.Tensor or any(value.dtype != dtype for value in values):
            # Subclasses (e.g. MONAI's MetaTensor) and mixed dtypes: torch's stack.
            return torch.stack(values)
        return stack(values)
    if isinstance(first, np.ndarray):
        return np.stack(values)
    if isinstance(first, Mapping):
        return {key: _stack([v[key] for v in values]) for key in first}
    if isinstance(first, int | float | bool):
        return torch.tensor(values)
    return values


def _stacked_base(values: list[Any]) -> torch.Tensor | None:
    """The tensor ``B`` if ``values`` are exactly its views ``B[0], ..., B[N - 1]``.

    Patches extracted together (:meth:`GridSampler.__getitems__`) are such views,
    so their batch is ``B`` itself: equal to ``torch.stack(values)``, without a copy.
    Only batches the samplers made (see :func:`~torchvox.data.sampler.sampler.is_patch_batch`)
    are handed out so: views of a user's tensor get a copy, as with ``torch.stack``,
    so that editing the batch in place leaves that tensor alone.
    """
    base = values[0]._base
    if not isinstance(base, torch.Tensor) or base.ndim == 0 or base.shape[0] != len(values):
        return None
    if not is_patch_batch(base):
        return None
    step = base.stride(0) * base.element_size()
    origin = base.data_ptr()
    for n, value in enumerate(values):
        if not (
            isinstance(value, torch.Tensor)
            and value._base is base
            and value.data_ptr() == origin + n * step
            and value.shape == base.shape[1:]
            and value.stride() == base.stride()[1:]
            and value.dtype == base.dtype
        ):
            return None
    return base
