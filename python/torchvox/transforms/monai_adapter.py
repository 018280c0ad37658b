"""MonaiAdapter: MONAI transforms (dictionary or array) inside torchvox pipelines."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .transform import Transform

if TYPE_CHECKING:
    from types import ModuleType

    from ..data.image import Image
    from ..data.subject import Subject

__all__ = ["MonaiAdapter"]


def _import_monai() -> ModuleType:
    try:
        import monai
        import monai.data
        import monai.transforms
    except ImportError as error:
        raise ImportError(
            "MonaiAdapter needs MONAI: pip install monai (or pip install 'torchvox[monai]')"
        ) from error
    return monai


class MonaiAdapter(Transform):
    """Run a MONAI transform on a subject, as one step of a torchvox pipeline.

    Dictionary transforms (MONAI ``MapTransform`` subclasses, e.g. ``Orientationd``,
    ``Spacingd``, ``RandSpatialCropd``) receive the whole subject as a dict in which
    each image is a ``monai.data.MetaTensor`` ``(C, W, H, D)`` carrying the image's 4x4
    RAS affine, and other items are passed through. Their output is written back:
    image data and (changed) affines are updated; new 4D tensors become
    :class:`~torchvox.ScalarImage` images (with the MetaTensor's affine, or the
    identity) and other new values become subject items.

    Array transforms (any other callable, e.g. ``NormalizeIntensity``) are applied to
    each image in turn, honouring ``include`` and ``exclude``. A random array transform
    draws new parameters for each image, which breaks the spatial alignment of a
    multi-image subject: a warning suggests its dictionary version.

    The adapter is not recorded in the subject history (the MONAI object cannot be
    rebuilt from a name and arguments), so history replays and inverses skip it.

    Args:
        monai_transform: A MONAI transform or any MONAI-compatible callable.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``monai_transform`` is not callable.

    Examples:
        >>> import torch, torchvox as tio
        >>> from monai.transforms import Orientationd
        >>> subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.rand(1, 4, 5, 6)))
        >>> tio.MonaiAdapter(Orientationd(keys="t1", axcodes="LPS"))(subject).t1.orientation
        ('L', 'P', 'S')
    """

    _records_history: ClassVar[bool] = False

    def __init__(self, monai_transform: Callable[..., Any], **kwargs: Any):
        super().__init__(**kwargs)
        if not callable(monai_transform):
            raise TypeError(
                f"monai_transform must be callable, got {type(monai_transform).__name__}"
            )
        self.monai_transform = monai_transform

    def __repr__(self) -> str:
        return f"{self.name}({self.monai_transform})"

    def to_hydra_config(self) -> dict[str, Any]:
        """Always raises: a MONAI transform object cannot be written as a config.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(
            "MonaiAdapter cannot be exported to a Hydra config: the wrapped MONAI"
            " transform is not serialisable"
        )

    def apply_transform(self, subject: Subject) -> Subject:
        monai = _import_monai()
        if isinstance(self.monai_transform, monai.transforms.MapTransform):
            self._apply_dict_transform(subject, monai)
        else:
            self._apply_array_transform(subject, monai)
        return subject

    def _apply_dict_transform(self, subject: Subject, monai: ModuleType) -> None:
        from ..data.image import Image

        as_dict = {
            key: _to_meta_tensor(value, monai) if isinstance(value, Image) else value
            for key, value in subject.items()
        }
        result = self.monai_transform(as_dict)
        if not isinstance(result, Mapping):
            raise TypeError(
                "The MONAI dictionary transform returned"
                f" {type(result).__name__}, not one mapping: transforms that return"
                " several samples (a list of dicts) are not supported by MonaiAdapter"
            )
        _update_subject(subject, result, monai)

    def _apply_array_transform(self, subject: Subject, monai: ModuleType) -> None:
        images = subject.get_images_dict(
            intensity_only=False, include=self.include, exclude=self.exclude
        )
        if len(images) > 1 and isinstance(self.monai_transform, monai.transforms.Randomizable):
            warnings.warn(
                f"The random MONAI array transform {type(self.monai_transform).__name__}"
                f" is applied to {len(images)} images, each with its own random parameters,"
                " which can break their spatial alignment. Use its dictionary version"
                " (e.g. RandFlipd instead of RandFlip) to transform them together",
                UserWarning,
                stacklevel=4,
            )
        for name, image in images.items():
            result = self.monai_transform(_to_meta_tensor(image, monai))
            if not isinstance(result, torch.Tensor):
                raise TypeError(
                    f"The MONAI transform returned {type(result).__name__} for image"
                    f' "{name}", not a tensor'
                )
            _update_image(image, result, monai)


def _to_meta_tensor(image: Image, monai: ModuleType) -> torch.Tensor:
    """``MetaTensor(data, affine)``; the data tensor is shared, not copied."""
    affine = torch.as_tensor(image.affine, dtype=torch.float64)
    return monai.data.MetaTensor(image.data, affine=affine)


def _plain_tensor(value: torch.Tensor, monai: ModuleType) -> torch.Tensor:
    if isinstance(value, monai.data.MetaTensor):
        return value.as_tensor()
    return value


def _affine_of(value: torch.Tensor, monai: ModuleType) -> np.ndarray | None:
    if isinstance(value, monai.data.MetaTensor):
        affine = value.affine
        if affine.ndim == 3:  # a batched affine: one per sample
            affine = affine[0]
        return affine.detach().cpu().numpy().astype(np.float64)
    return None


def _update_image(image: Image, result: torch.Tensor, monai: ModuleType) -> None:
    image.set_data(_plain_tensor(result, monai).detach().cpu())
    affine = _affine_of(result, monai)
    if affine is not None and not np.array_equal(affine, image.affine):
        image.affine = affine


def _update_subject(subject: Subject, result: Mapping[str, Any], monai: ModuleType) -> None:
    from ..data.image import Image, ScalarImage

    for key, value in result.items():
        current = subject.get(key)
        if isinstance(current, Image):
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f'The MONAI transform returned {type(value).__name__} for image "{key}",'
                    " not a tensor"
                )
            _update_image(current, value, monai)
        elif isinstance(value, torch.Tensor):
            tensor = _plain_tensor(value, monai)
            if tensor.ndim == 4:
                affine = _affine_of(value, monai)
                subject[key] = ScalarImage(tensor=tensor.detach().cpu(), affine=affine)
            else:
                subject[key] = tensor
        else:
            subject[key] = value
    subject.update_attributes()
