"""The k-space mixin of TorchIO's artefact transforms (Spike, Ghosting, Motion)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["FourierTransform"]


class FourierTransform:
    """Mixin for transforms that work in k-space, with TorchIO's two helpers.

    The artefact transforms compute their spectra natively; these static
    methods are for user code that subclasses or calls them as in TorchIO.
    Both transform every axis of their input, so pass one channel ``(W, H, D)``
    to get the spatial spectrum of an image.
    """

    @staticmethod
    def fourier_transform(tensor: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Centred spectrum of ``tensor``.

        Args:
            tensor: Real or complex data of any shape.

        Returns:
            The complex n-dimensional FFT, of the same shape, shifted so that
            frequency 0 of each axis of length ``n`` sits at index ``n // 2``.
        """
        spectrum = torch.fft.fftn(torch.as_tensor(tensor))
        return torch.fft.fftshift(spectrum)

    @staticmethod
    def inv_fourier_transform(tensor: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Data of a centred spectrum: the inverse of :meth:`fourier_transform`.

        Args:
            tensor: Complex spectrum of any shape, frequency 0 at index ``n // 2``.

        Returns:
            The complex inverse n-dimensional FFT (take ``.real`` or ``.abs()``
            for an image).
        """
        spectrum = torch.fft.ifftshift(torch.as_tensor(tensor))
        return torch.fft.ifftn(spectrum)
