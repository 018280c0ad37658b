"""Conversion of every accepted transform input to a Subject and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from ..data.subject import Subject

__all__ = ["DataParser"]


def _is_sitk_image(data: object) -> bool:
    # Checked by module name so SimpleITK is imported only when such an input arrives.
    cls = type(data)
    return cls.__module__.startswith("SimpleITK") and cls.__name__ == "Image"


def _is_nibabel_image(data: object) -> bool:
    import sys

    nibabel = sys.modules.get("nibabel")
    return nibabel is not None and isinstance(data, nibabel.Nifti1Image)


class DataParser:
    """Wrap a transform input into a :class:`~torchvox.Subject` and unwrap the result.

    Accepted inputs and what :meth:`get_output` returns for them:

    * :class:`~torchvox.Subject`: the transformed subject;
    * :class:`~torchvox.Image`: the transformed image (wrapped under
      :attr:`default_image_name`);
    * 4D ``(C, I, J, K)`` tensor or array: a :class:`~torchvox.ScalarImage` with identity
      affine; the transformed data as a tensor or array;
    * ``SimpleITK.Image``: a SimpleITK image;
    * ``nibabel.Nifti1Image`` (3D, or 5D with one time point): a ``Nifti1Image`` of
      the first channel;
    * ``dict`` (MONAI/Eisen style): the entries named in ``keys`` become images
      (``LabelMap`` for those in ``label_keys``); the output is a dict whose image
      entries are tensors.

    Args:
        data: The transform input.
        keys: Names of the dict entries that are images (``include``).
        label_keys: Names of the dict entries that are label maps.
    """

    default_image_name = "default_image_name"

    def __init__(
        self,
        data: Any,
        keys: Sequence[str] | None = None,
        label_keys: Sequence[str] | None = None,
    ):
        self.data = data
        self.keys = keys
        self.label_keys = label_keys
        self.is_tensor = False
        self.is_array = False
        self.is_dict = False
        self.is_image = False
        self.is_sitk = False
        self.is_nib = False

    @property
    def input_is_private(self) -> bool:
        """True if the subject's arrays were created by the parser (no copy needed)."""
        return self.is_sitk or self.is_nib

    def get_subject(self) -> Subject:
        """Return the input as a Subject.

        Raises:
            ValueError: For unsupported types or tensors that are not 4D.
            RuntimeError: For dict inputs without ``keys`` (``include``).
            TypeError: For dict entries named in ``keys`` that are not tensors/arrays.
        """
        from ..data.image import Image, ScalarImage
        from ..data.subject import Subject

        data = self.data
        if isinstance(data, Subject):
            return data
        if isinstance(data, Image):
            self.is_image = True
            return self._wrap(data)
        if isinstance(data, np.ndarray | torch.Tensor):
            self.is_tensor = True
            self.is_array = isinstance(data, np.ndarray)
            if data.ndim != 4:
                raise ValueError(
                    "The input must be a 4D tensor with dimensions (channels, i, j, k), but it"
                    f" has shape {tuple(data.shape)}. Add a channels dimension to a 3D volume,"
                    " and also a size-1 last dimension to a 2D image"
                )
            return self._wrap(ScalarImage(tensor=data))
        if _is_sitk_image(data):
            from ..data.io import sitk_to_nib

            self.is_sitk = True
            tensor, affine = sitk_to_nib(data)
            return self._wrap(ScalarImage(tensor=tensor, affine=affine))
        if _is_nibabel_image(data):
            self.is_nib = True
            array = np.asarray(data.get_fdata(dtype=np.float32))
            if array.ndim == 3:
                array = array[np.newaxis]
            elif array.ndim == 5:
                # (I, J, K, T, C) -> (T, C, I, J, K); a single time point is assumed.
                array = array.transpose(3, 4, 0, 1, 2)[0]
            elif array.ndim != 4:
                raise ValueError(f"NiBabel inputs must be 3D or 5D, got shape {array.shape}")
            array = np.ascontiguousarray(array)
            return self._wrap(ScalarImage(tensor=array, affine=data.affine))
        if isinstance(data, dict):
            if self.keys is None:
                raise RuntimeError(
                    'If the input is a dictionary, a value for "include" must be given when'
                    " instantiating the transform, to name the entries that are images"
                )
            self.is_dict = True
            return self._subject_from_dict(data, self.keys, self.label_keys)
        raise ValueError(f"Input type not recognized: {type(data).__name__}")

    def _wrap(self, image: Any) -> Subject:
        from ..data.subject import Subject

        return Subject({self.default_image_name: image})

    @staticmethod
    def _subject_from_dict(
        data: Mapping[str, Any],
        image_keys: Sequence[str],
        label_keys: Sequence[str] | None,
    ) -> Subject:
        from ..data.image import LabelMap, ScalarImage
        from ..data.subject import Subject

        labels = set(label_keys or ())
        entries: dict[str, Any] = {}
        for key, value in data.items():
            if key in image_keys:
                if not isinstance(value, np.ndarray | torch.Tensor):
                    raise TypeError(
                        "Input dictionary values selected as images must be tensors or"
                        f" arrays, but {key!r} is {type(value).__name__}"
                    )
                image_class = LabelMap if key in labels else ScalarImage
                value = image_class(tensor=value)
            entries[key] = value
        return Subject(entries)

    def get_output(self, transformed: Subject) -> Any:
        """Convert a transformed subject back to the type of the input."""
        from ..data.image import Image

        if self.is_tensor:
            data = transformed.get_image(self.default_image_name).data
            return data.numpy() if self.is_array else data
        if self.is_sitk:
            from ..data.io import nib_to_sitk

            image = transformed.get_image(self.default_image_name)
            return nib_to_sitk(image.data, image.affine)
        if self.is_image:
            return transformed.get_image(self.default_image_name)
        if self.is_nib:
            import nibabel as nib

            image = transformed.get_image(self.default_image_name)
            return nib.Nifti1Image(image.data[0].numpy(), image.affine)
        if self.is_dict:
            output: dict[str, Any] = dict(transformed)
            for key, value in output.items():
                if isinstance(value, Image):
                    output[key] = value.data
            return output
        return transformed
