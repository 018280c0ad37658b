"""A transform that applies a user function to image tensors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .transform import Transform

if TYPE_CHECKING:
    from ..data.subject import Subject

__all__ = ["Lambda"]


class Lambda(Transform):
    """Apply a user-defined function to the data of each image.

    Args:
        function: Callable receiving a 4D ``(C, I, J, K)`` tensor and returning a
            4D tensor.
        types_to_apply: Image types (e.g. ``[tio.INTENSITY]`` or ``[tio.LABEL]``, or
            one of them as a string) the function applies to; ``None`` for every image.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``function`` is not callable.
    """

    def __init__(
        self,
        function: Callable[[torch.Tensor], torch.Tensor],
        types_to_apply: Sequence[str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f'"function" must be callable, got {function!r}')
        if isinstance(types_to_apply, str):
            # TorchIO tests membership in the string, which for its type names
            # ('intensity', 'label') amounts to a list of that one name.
            types_to_apply = [types_to_apply]
        self.function = function
        self.types_to_apply = types_to_apply
        self.args_names = ["function", "types_to_apply"]

    def apply_transform(self, subject: Subject) -> Subject:
        """Replace the data of each selected image by ``function(data)``.

        Raises:
            ValueError: If the function does not return a tensor with the same number
                of dimensions.
        """
        images = subject.get_images(
            intensity_only=False, include=self.include, exclude=self.exclude
        )
        for image in images:
            if self.types_to_apply is not None and image.type not in self.types_to_apply:
                continue
            data = image.data
            result = self.function(data)
            if not isinstance(result, torch.Tensor):
                raise ValueError(
                    f"The function must return a torch.Tensor, got {type(result).__name__}"
                )
            if result.ndim != data.ndim:
                raise ValueError(
                    f"The function must return a {data.ndim}D tensor, got {result.ndim}D"
                )
            image.set_data(result)
        return subject
