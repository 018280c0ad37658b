"""Tensor <-> NumPy conversions for the label and patch kernels.

The kernels accept float32, float64, uint8, int16, int32 and int64. Label maps
and images of other types (bool, int8, uint16, uint32, float16, bfloat16) are
widened exactly to a supported type for the kernel and the result is cast back,
so transforms keep the input dtype as TorchIO does.
"""

from __future__ import annotations

import numpy as np
import torch

from ..._backend import to_numpy, to_tensor

__all__ = ["from_native", "to_native"]

_SUPPORTED = {torch.float32, torch.float64, torch.uint8, torch.int16, torch.int32, torch.int64}
#: Exact widenings of the types the kernels do not take.
_WIDER: dict[torch.dtype, torch.dtype] = {
    torch.bool: torch.uint8,
    torch.int8: torch.int16,
    torch.float16: torch.float32,
    torch.bfloat16: torch.float32,
}
for _name, _wider in (("uint16", torch.int32), ("uint32", torch.int64)):
    if hasattr(torch, _name):
        _WIDER[getattr(torch, _name)] = _wider


def to_native(tensor: torch.Tensor) -> np.ndarray:
    """Return a C-contiguous array of ``tensor`` in a dtype the kernels accept.

    Args:
        tensor: A ``(C, I, J, K)`` CPU (or any device) tensor.

    Raises:
        TypeError: For dtypes that cannot be widened exactly (uint64, complex).
    """
    if tensor.dtype not in _SUPPORTED:
        wider = _WIDER.get(tensor.dtype)
        if wider is None:
            raise TypeError(f"Image data of dtype {tensor.dtype} is not supported")
        tensor = tensor.to(wider)
    return to_numpy(tensor)


def from_native(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Wrap a kernel result as a tensor of ``dtype`` (cast only if it differs)."""
    tensor = to_tensor(array)
    return tensor if tensor.dtype == dtype else tensor.to(dtype)
