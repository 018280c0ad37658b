"""The only importer of :mod:`torchvox._native`: the Python side of the Rust boundary.

Everything that crosses into Rust goes through here:

* tensors become C-contiguous NumPy arrays once (``tensor.numpy()`` is zero-copy
  for contiguous CPU tensors) and results come back as tensors without a copy;
* the thread count of the native pool is (re)configured lazily per process, so
  a forked ``DataLoader`` worker runs kernels on one thread by default and the
  loader's processes do not oversubscribe the cores.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from . import _native

__all__ = [
    "NATIVE_ARRAY_DTYPES",
    "clone",
    "get_num_threads",
    "native",
    "set_num_threads",
    "stack",
    "to_numpy",
    "to_tensor",
]

_ENV_VARIABLE = "TORCHVOX_NUM_THREADS"

#: Tensors at least this large are copied by the native kernel (NumPy's huge-page threshold).
_NATIVE_COPY_BYTES = 4 << 20
#: The NumPy scalar types the native kernels take.
NATIVE_ARRAY_DTYPES = (np.float32, np.float64, np.uint8, np.int16, np.int32, np.int64)
#: The same types as torch dtypes.
_NATIVE_DTYPES = frozenset(torch.from_numpy(np.empty(0, t)).dtype for t in NATIVE_ARRAY_DTYPES)

#: Threads requested with :func:`set_num_threads`, or None for the default.
_requested_threads: int | None = None
#: (pid, threads) of the last configuration sent to the native pool.
_configured: tuple[int, int] | None = None


def _in_dataloader_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


def _default_num_threads() -> int:
    from_environment = os.environ.get(_ENV_VARIABLE)
    if from_environment:
        try:
            threads = int(from_environment)
        except ValueError:
            raise ValueError(
                f"{_ENV_VARIABLE} must be a positive integer, got {from_environment!r}"
            ) from None
        if threads < 1:
            raise ValueError(f"{_ENV_VARIABLE} must be a positive integer, got {threads}")
        return threads
    if _in_dataloader_worker():
        return 1
    return os.cpu_count() or 1


def get_num_threads() -> int:
    """Return the number of threads torchvox kernels use in this process.

    Returns:
        The value given to :func:`set_num_threads`; otherwise ``TORCHVOX_NUM_THREADS``;
        otherwise 1 inside a PyTorch ``DataLoader`` worker (the loader already runs
        one process per worker) and the number of cores elsewhere.
    """
    if _requested_threads is not None:
        return _requested_threads
    return _default_num_threads()


def set_num_threads(num_threads: int | None) -> None:
    """Set the number of threads torchvox kernels use in this process.

    Args:
        num_threads: A positive number of threads, or ``None`` to return to the
            default (see :func:`get_num_threads`).

    Raises:
        ValueError: If ``num_threads`` is not a positive integer.
    """
    global _requested_threads
    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int | np.integer):
            raise TypeError(f"num_threads must be an int or None, got {num_threads!r}")
        if num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads}")
        num_threads = int(num_threads)
    _requested_threads = num_threads
    _configure_pool()


def _configure_pool() -> None:
    global _configured
    wanted = (os.getpid(), get_num_threads())
    if _configured != wanted:
        _native.set_num_threads(wanted[1])
        _configured = wanted


def native() -> Any:
    """Return the extension module with the pool configured for this process."""
    if _configured is None or _configured[0] != os.getpid():
        _configure_pool()
    elif _requested_threads is None and _in_dataloader_worker() and _configured[1] != 1:
        # A worker started by a loader that spawned rather than forked.
        _configure_pool()
    return _native


def to_numpy(data: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return a C-contiguous NumPy view (or, when needed, copy) of ``data``.

    Args:
        data: A CPU tensor or a NumPy array of any shape.

    Returns:
        A C-contiguous array sharing memory with ``data`` whenever it already was.
    """
    if isinstance(data, torch.Tensor):
        if data.device.type != "cpu":
            data = data.cpu()
        if data.requires_grad:
            data = data.detach()
        if data.dtype == torch.bool:
            data = data.to(torch.uint8)
        array = data.numpy()
    else:
        array = np.asarray(data)
    return np.ascontiguousarray(array)


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """Wrap a NumPy array returned by a kernel as a tensor without copying."""
    return torch.from_numpy(array)


def clone(tensor: torch.Tensor) -> torch.Tensor:
    """Return a C-contiguous copy of ``tensor`` that shares no memory with it.

    ``torch.clone`` writes into freshly faulted 4 KiB pages on one thread (about
    40 ms for a 1 mm float32 brain on the machines we measured). CPU tensors are
    copied here instead: large 4D ones by the native crop kernel (huge pages,
    all threads, about 6 ms), the others by NumPy. Tensors that need autograd,
    live on another device or have no NumPy dtype fall back to ``torch.clone``.

    Args:
        tensor: A tensor of any shape.

    Returns:
        A tensor with the same values, dtype and shape.
    """
    if tensor.device.type != "cpu" or tensor.requires_grad:
        return tensor.clone(memory_format=torch.contiguous_format)
    try:
        array = tensor.numpy()
    except TypeError:  # no NumPy equivalent (e.g. bfloat16)
        return tensor.clone(memory_format=torch.contiguous_format)
    if (
        array.ndim == 4
        and array.flags.c_contiguous
        and tensor.dtype in _NATIVE_DTYPES
        and array.nbytes >= _NATIVE_COPY_BYTES
    ):
        copied = native().crop_pad(array, (0, 0, 0), array.shape[1:])
    else:
        copied = np.array(array, order="C", copy=True)
    return torch.from_numpy(copied)


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack equally shaped tensors along a new first axis (``torch.stack(tensors)``).

    Like :func:`clone`, CPU tensors are copied into an array NumPy allocates
    (huge pages for large blocks) rather than into torch's freshly faulted
    pages: a batch of four 96^3 float32 patches takes about a quarter of
    ``torch.stack``'s time. Anything NumPy cannot hold falls back to torch.

    Args:
        tensors: One or more tensors of one shape and dtype.

    Returns:
        A ``(len(tensors), *shape)`` tensor.
    """
    first = tensors[0]
    if first.device.type != "cpu" or any(
        t.requires_grad or t.dtype != first.dtype or t.shape != first.shape for t in tensors
    ):
        return torch.stack(tensors)
    try:
        arrays = [t.numpy() for t in tensors]
    except (TypeError, RuntimeError):  # no NumPy dtype (e.g. bfloat16)
        return torch.stack(tensors)
    out = np.empty((len(arrays), *arrays[0].shape), dtype=arrays[0].dtype)
    for slot, array in zip(out, arrays, strict=True):
        np.copyto(slot, array)
    return torch.from_numpy(out)
