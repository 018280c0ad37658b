"""Typed stub of the Rust extension module ``torchvox._native``.

Volumes are NumPy arrays of shape ``(C, I, J, K)``, C-contiguous, with dtype
float32, float64, uint8, int16, int32 or int64. Every function returns new arrays.
"""

import numpy as np
import numpy.typing as npt

Volume = npt.NDArray[np.generic]

def set_num_threads(threads: int) -> None: ...
def get_num_threads() -> int: ...
def flip(volume: Volume, axes: list[int]) -> Volume: ...
