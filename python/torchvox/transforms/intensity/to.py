"""To: convert the data type and/or device of scalar images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..intensity_transform import IntensityTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["To"]


class To(IntensityTransform):
    """Apply :meth:`torch.Tensor.to` to the data of scalar images (label maps are kept).

    Args:
        target: A :class:`torch.dtype`, a :class:`torch.device` or a device string
            such as ``'cpu'``.
        to_kwargs: Extra keyword arguments of :meth:`torch.Tensor.to`
            (e.g. ``{'non_blocking': True}``).
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``target`` is not a dtype, device or string, or ``to_kwargs`` is
            not a dict.

    Example:
        >>> import torch, torchvox as tio
        >>> to_uint8 = tio.To(torch.uint8)
    """

    _replaces_data = True

    def __init__(
        self,
        target: str | torch.dtype | torch.device,
        to_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not isinstance(target, str | torch.dtype | torch.device):
            raise TypeError(
                f'"target" must be a torch.dtype, a torch.device or a string, got {target!r}'
            )
        if to_kwargs is None:
            to_kwargs = {}
        if not isinstance(to_kwargs, dict):
            raise TypeError(f'"to_kwargs" must be a dict or None, got {to_kwargs!r}')
        self.target = target
        self.to_kwargs = to_kwargs
        self.args_names = ["target", "to_kwargs"]

    def apply_transform(self, subject: Subject) -> Subject:
        for image in self.get_images(subject):
            image.set_data(image.data.to(self.target, **self.to_kwargs))
        return subject
