"""Base class of every torchvox transform (TorchIO 1.2.1 semantics).

Copying policy
--------------
TorchIO deep-copies the whole subject in every transform call, so a
``Compose`` of N transforms copies it N + 1 times (12.5 ms per copy of a 1 mm
brain). torchvox copies once per top-level call: a container (``Compose``,
``OneOf``, ``SomeOf``, a random transform calling its deterministic
counterpart, ``CropOrPad`` calling ``Pad``/``Crop``...) copies its input if it
or any child asks for a copy, then hands that private copy to its children,
which skip their own copy. The caller's input is never modified when a copy
was requested, which is all TorchIO's repeated copies guarantee. Only the
direct children of a container skip the copy: any other transform called
from inside ``apply_transform`` copies as usual.

The copy itself avoids copying voxel data twice. Transforms whose class sets
``_replaces_data = True`` promise never to modify an image tensor in place
(they only store new tensors with ``set_data``); for those, the copy shares
the image tensors with the input (everything else is deep-copied), and after
the call every output image still backed by an input tensor gets its own
clone. Images the transform rewrites are thus never copied first, and the
output never aliases the input, exactly as with a full deep copy. Other
transforms (e.g. :class:`~torchvox.transforms.Lambda`, and every subclass
defined outside torchvox, which inherits the flag but not the promise) get a
full deep copy.
"""

from __future__ import annotations

import contextvars
import copy as copy_module
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch

from .._backend import clone
from .data_parser import DataParser
from .interpolation import get_sitk_interpolator as _get_sitk_interpolator
from .interpolation import parse_interpolation as _parse_interpolation
from .masking import (
    ANATOMICAL_AXES,
    TypeBounds,
    TypeMaskingMethod,
    TypeSixBounds,
    get_mask_from_anatomical_label,
    get_mask_from_bounds,
    get_mask_from_masking_method,
)
from .masking import parse_bounds as _parse_bounds

if TYPE_CHECKING:
    from ..data.subject import Subject

__all__ = [
    "ANATOMICAL_AXES",
    "Transform",
    "TypeBounds",
    "TypeMaskingMethod",
    "TypeSixBounds",
    "TypeTripletInt",
    "kernel_supports",
]

TypeTripletInt = tuple[int, int, int]
ArgumentsDictT = TypeVar("ArgumentsDictT", bound=MutableMapping[str, object])

#: True while a container calls one of its children on an input it owns.
_INPUT_IS_PRIVATE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "torchvox_input_is_private", default=False
)

#: dtypes the native kernels are compiled for (volumes of other dtypes use torch/NumPy).
KERNEL_DTYPES = (torch.float32, torch.float64, torch.uint8, torch.int16, torch.int32, torch.int64)


def kernel_supports(tensor: torch.Tensor) -> bool:
    """Whether the native kernels accept ``tensor`` (CPU tensor of a kernel dtype)."""
    return tensor.dtype in KERNEL_DTYPES and tensor.device.type == "cpu"


def _loaded_tensors(data: Any) -> list[torch.Tensor]:
    """Data tensors of the loaded images of a Subject or Image (nothing is loaded)."""
    from ..data.image import Image
    from ..data.subject import Subject

    if isinstance(data, Image):
        images = [data]
    elif isinstance(data, Subject):
        images = data.get_images(intensity_only=False)
    else:
        return []
    # dict.get bypasses Image.__getitem__, which would load lazy images.
    values = [dict.get(image, "data") for image in images]
    return [value for value in values if isinstance(value, torch.Tensor)]


def _storage_pointer(tensor: torch.Tensor) -> int:
    return int(tensor.untyped_storage().data_ptr())


def _copy_sharing_data(data: Any) -> tuple[Any, set[int]]:
    """Deep-copy a Subject or Image except its image tensors, which are shared.

    Returns:
        The copy and the storage pointers of the shared tensors.
    """
    tensors = _loaded_tensors(data)
    memo: dict[int, Any] = {id(tensor): tensor for tensor in tensors}
    pointers = {_storage_pointer(tensor) for tensor in tensors if tensor.numel()}
    return copy_module.deepcopy(data, memo), pointers


def _unshare(data: Any, pointers: set[int]) -> None:
    """Give a private clone to every image of ``data`` still backed by those storages."""
    from ..data.image import Image
    from ..data.subject import Subject

    if isinstance(data, Image):
        images = [data]
    elif isinstance(data, Subject):
        images = data.get_images(intensity_only=False)
    else:
        return
    for image in images:
        value = dict.get(image, "data")
        if (
            isinstance(value, torch.Tensor)
            and value.numel()
            and _storage_pointer(value) in pointers
        ):
            image.set_data(clone(value))


def _as_key_list(keys: Iterable[str] | None, name: str) -> list[str] | None:
    """Image names given as any iterable (a list, a dict's keys, a NumPy array, a
    generator: TorchIO takes them all) as a list, read once.

    Raises:
        ValueError: If a name is not a string (the iterable itself is checked by
            :meth:`Transform.validate_keys_sequence`).
    """
    if keys is None:
        return None
    names = list(keys)
    if not all(isinstance(key, str) for key in names):
        raise ValueError(f'"{name}" must contain only strings, got {names!r}')
    return [str(key) for key in names]


class Transform(ABC):
    """Abstract base class of all transforms.

    A transform is called on a :class:`~torchvox.Subject`, an :class:`~torchvox.Image`,
    a 4D ``(C, I, J, K)`` :class:`torch.Tensor` or :class:`numpy.ndarray` (identity
    affine), a ``SimpleITK.Image``, a ``nibabel.Nifti1Image`` or a ``dict`` of 4D
    tensors/arrays (``include`` names the images), and returns the same type.
    Subclasses implement :meth:`apply_transform`, which modifies a subject and
    returns it.

    Args:
        p: Probability of applying the transform. ``torch.rand(1)`` is drawn on every
            call, even with ``p=1``, so random streams match TorchIO's.
        copy: Work on a deep copy of the input so the input is not modified.
        include: Names of the only images to transform. Mandatory for dict inputs.
        exclude: Names of images not to transform (besides those the transform
            type excludes, e.g. label maps for intensity transforms).
        keys: Deprecated alias of ``include``.
        keep: ``{name: new_name}``: copies of these images taken before the transform
            are added to the output under the new names.
        parse_input: Convert the input to a :class:`~torchvox.Subject` (containers
            such as :class:`~torchvox.transforms.Compose` pass ``False``).
        label_keys: For dict inputs, names of the images that are label maps.

    Raises:
        ValueError: If ``p`` is not in [0, 1], or ``include``/``exclude``/``label_keys``
            are strings or both ``include`` and ``exclude`` are given.
        TypeError: If ``copy``/``parse_input`` are not booleans or ``keep`` is not a
            mapping of strings.
    """

    #: Whether calls are recorded in the subject history. Containers and transforms
    #: that delegate to deterministic transforms (which record themselves) set False.
    _records_history: ClassVar[bool] = True
    #: True if the transform never modifies image tensors in place (it only stores
    #: new tensors with ``set_data``), so its copies may share them (see the module
    #: documentation). Subclasses must opt in.
    _replaces_data: ClassVar[bool] = False

    if TYPE_CHECKING:
        invert_transform: bool

    def __init__(
        self,
        p: float = 1,
        copy: bool = True,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
        keep: dict[str, str] | None = None,
        parse_input: bool = True,
        label_keys: Sequence[str] | None = None,
    ):
        self.probability = self.parse_probability(p)
        if not isinstance(copy, bool | np.bool_):
            raise TypeError(f'"copy" must be a bool, got {copy!r}')
        self.copy = bool(copy)
        if keys is not None:
            warnings.warn(
                'The "keys" argument is deprecated; use "include" instead',
                FutureWarning,
                stacklevel=2,
            )
            include = keys
        self.include, self.exclude = self.parse_include_and_exclude_keys(
            include, exclude, label_keys
        )
        if keep is not None and (
            not isinstance(keep, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in keep.items())
        ):
            raise TypeError(f'"keep" must be a dict mapping names to new names, got {keep!r}')
        self.keep = keep
        if not isinstance(parse_input, bool | np.bool_):
            raise TypeError(f'"parse_input" must be a bool, got {parse_input!r}')
        self.parse_input = bool(parse_input)
        self.label_keys = _as_key_list(label_keys, "label_keys")
        #: Names of the attributes that reproduce (and invert) this transform.
        self.args_names: list[str] = []

    # ------------------------------------------------------------------ calling

    def __call__(self, data: Any) -> Any:
        """Transform ``data`` and return a result of the same type.

        Args:
            data: A Subject, an Image, a 4D ``(C, I, J, K)`` tensor or array, a SimpleITK
                image, a NiBabel image or a dict of 4D tensors/arrays.

        Returns:
            The transformed data, of the input type; the input object itself if the
            transform was skipped (probability ``p``).
        """
        if torch.rand(1).item() > self.probability:
            return data
        private = _INPUT_IS_PRIVATE.get()
        # Transforms called from inside apply_transform copy normally unless the
        # container calls them through _apply_child.
        token = _INPUT_IS_PRIVATE.set(False)
        try:
            return self._transform_data(data, private)
        finally:
            _INPUT_IS_PRIVATE.reset(token)

    def _transform_data(self, data: Any, private: bool) -> Any:
        needs_copy = self._requests_copy() and not private
        parser: DataParser | None = None
        if self.parse_input:
            parser = DataParser(data, keys=self.include, label_keys=self.label_keys)
            subject = parser.get_subject()
            if needs_copy and parser.input_is_private:
                # The parser already built new arrays from a SimpleITK/NiBabel input.
                needs_copy = False
        else:
            subject = data

        kept: dict[str, Any] = {}
        if self.keep is not None:
            for name, new_name in self.keep.items():
                kept[new_name] = copy_module.deepcopy(subject.get_image(name))
        shared: set[int] = set()
        if needs_copy:
            if self._shares_data_safely() and _loaded_tensors(subject):
                subject, shared = _copy_sharing_data(subject)
            else:
                subject = copy_module.deepcopy(subject)
        with np.errstate(all="raise", under="ignore"):
            transformed = self.apply_transform(subject)
        if shared:
            _unshare(transformed, shared)
        for new_name, image in kept.items():
            transformed.add_image(image, new_name)

        if parser is None:
            return transformed
        self._add_transform_to_subject_history(transformed)
        for image in transformed.get_images(intensity_only=False):
            # The stored tensor: pending voxels (see data.pending) are not computed.
            stored = image._stored_tensor()
            ndim = (stored if stored is not None else image.data).ndim
            if ndim != 4:
                raise RuntimeError(f"Output of {self.name} is {ndim}D, not 4D")
        return parser.get_output(transformed)

    def _requests_copy(self) -> bool:
        """Whether a call must protect its input with a copy."""
        return self.copy

    def _shares_data_safely(self) -> bool:
        """Whether a copy made for this call may share image tensors with the input.

        Only torchvox's own classes keep the promise of ``_replaces_data``: a
        user's subclass inherits the flag but may well edit tensors in place.
        """
        cls = type(self)
        return cls._replaces_data and cls.__module__.startswith("torchvox.")

    @staticmethod
    def _apply_child(child: Any, data: Any) -> Any:
        """Call ``child`` on an input this transform owns, so the child does not copy it."""
        if not isinstance(child, Transform):
            return child(data)
        token = _INPUT_IS_PRIVATE.set(True)
        try:
            return child(data)
        finally:
            _INPUT_IS_PRIVATE.reset(token)

    @abstractmethod
    def apply_transform(self, subject: Subject) -> Subject:
        """Apply the transform to a parsed subject, in place when possible.

        Args:
            subject: The subject to modify.

        Returns:
            The transformed subject (usually ``subject`` itself).
        """

    # ------------------------------------------------------------------ history

    def _add_transform_to_subject_history(self, subject: Subject) -> None:
        if self._records_history:
            subject.add_transform(self, self._get_reproducing_arguments())

    def _get_reproducing_arguments(self) -> dict[str, object]:
        """Return the keyword arguments that rebuild this exact transform."""
        arguments: dict[str, object] = {
            "include": self.include,
            "exclude": self.exclude,
            "copy": self.copy,
        }
        arguments.update(self._get_named_arguments())
        return arguments

    def _get_named_arguments(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.args_names}

    def _get_base_args(self) -> dict[str, object]:
        """Constructor arguments of :class:`Transform` (without ``p``) of this instance.

        Used to build a deterministic counterpart that behaves like this transform.
        """
        return {
            "copy": self.copy,
            "include": self.include,
            "exclude": self.exclude,
            "keep": self.keep,
            "parse_input": self.parse_input,
            "label_keys": self.label_keys,
        }

    def _add_base_args(
        self, arguments: ArgumentsDictT, overwrite_on_existing: bool = False
    ) -> ArgumentsDictT:
        """Add the base constructor arguments to ``arguments`` (in place) and return it."""
        for key, value in self._get_base_args().items():
            if key in arguments and not overwrite_on_existing:
                continue
            arguments[key] = value
        return arguments

    @property
    def name(self) -> str:
        return self.__class__.__name__

    def __repr__(self) -> str:
        if not hasattr(self, "args_names"):
            return super().__repr__()
        strings = [f"{name}={value}" for name, value in self._get_named_arguments().items()]
        if getattr(self, "invert_transform", False):
            strings.append("invert=True")
        return f"{self.name}({', '.join(strings)})"

    # ------------------------------------------------------------------ inversion

    def is_invertible(self) -> bool:
        return hasattr(self, "invert_transform")

    def inverse(self) -> Transform:
        """Return the inverse transform.

        Raises:
            RuntimeError: If the transform is not invertible.
        """
        if not self.is_invertible():
            raise RuntimeError(f"{self.name} is not invertible")
        new = copy_module.deepcopy(self)
        new.invert_transform = not self.invert_transform
        return new

    # ------------------------------------------------------------------ serialisation

    def _get_name_with_module(self) -> str:
        return f"{self.__class__.__module__}.{self.__class__.__name__}"

    @staticmethod
    def _tuples_to_lists(obj: Any) -> Any:
        if isinstance(obj, tuple | list):
            return [Transform._tuples_to_lists(item) for item in obj]
        if isinstance(obj, dict):
            return {key: Transform._tuples_to_lists(value) for key, value in obj.items()}
        return obj

    def to_hydra_config(self) -> dict[str, Any]:
        """Return a dict that ``hydra.utils.instantiate`` turns back into this transform.

        Tuples become lists; ``'_target_'`` is the import path of the class.
        """
        config: dict[str, Any] = {"_target_": self._get_name_with_module()}
        config.update(self._get_reproducing_arguments())
        result: dict[str, Any] = self._tuples_to_lists(config)
        return result

    # ------------------------------------------------------------------ validation helpers

    @staticmethod
    def to_range(n: float, around: float | None) -> tuple[float, float]:
        """``(0, n)`` if ``around`` is None, else ``(around - n, around + n)``."""
        if around is None:
            return 0.0, float(n)
        return float(around - n), float(around + n)

    def parse_params(
        self,
        params: Any,
        around: float | None,
        name: str,
        make_ranges: bool = True,
        min_constraint: float | None = None,
        max_constraint: float | None = None,
        type_constraint: type | None = None,
    ) -> tuple[float, ...]:
        """Expand a per-axis parameter to ranges ``(a0, b0, a1, b1, a2, b2)``.

        Args:
            params: ``d`` -> ``to_range(d, around)`` on each axis; ``(a, b)`` -> the
                same range on each axis; 3 values -> ``to_range`` per axis; 6 values
                -> explicit ranges.
            around: Centre of symmetric ranges, or None for ``(0, d)``.
            name: Argument name for error messages.
            make_ranges: If False, only flatten ``params`` to a tuple (a scalar
                becomes three copies).
            min_constraint: Minimum allowed value.
            max_constraint: Maximum allowed value.
            type_constraint: Required type of the values.

        Raises:
            ValueError: On a bad length or values outside the constraints.
        """
        if isinstance(params, torch.Tensor | np.ndarray):
            values = tuple(float(v) for v in params.reshape(-1).tolist())
        elif isinstance(params, Sequence) and not isinstance(params, str):
            try:
                values = tuple(float(v) for v in params)
            except (TypeError, ValueError):
                raise ValueError(f'"{name}" values must be numbers, got {params!r}') from None
        else:
            try:
                values = (float(params),)
            except (TypeError, ValueError):
                raise ValueError(
                    f'"{name}" must be a number or a sequence, got {params!r}'
                ) from None
        if len(values) == 1 or (len(values) == 2 and make_ranges):
            values *= 3
        if len(values) == 3 and make_ranges:
            values = tuple(v for n in values for v in self.to_range(n, around))
        if not make_ranges:
            return values
        if len(values) != 6:
            raise ValueError(
                f'If "{name}" is a sequence, it must have length 2, 3 or 6, got {params!r}'
            )
        for low, high in zip(values[::2], values[1::2]):
            self._parse_range(
                (low, high),
                name,
                min_constraint=min_constraint,
                max_constraint=max_constraint,
                type_constraint=type_constraint,
            )
        return values

    @staticmethod
    def _parse_range(
        nums_range: Any,
        name: str,
        min_constraint: float | None = None,
        max_constraint: float | None = None,
        type_constraint: type | None = None,
    ) -> tuple[Any, Any]:
        """Validate a range ``(low, high)`` or a single number ``n`` -> ``(-n, n)``.

        With a single number and a ``min_constraint``, the range is
        ``(min_constraint, n)``, as in TorchIO.

        Raises:
            ValueError: For negative single numbers, non-numbers, ``low > high``,
                values outside the constraints or of the wrong type.
        """
        numbers = (int, float, np.integer, np.floating)
        if isinstance(nums_range, numbers) and not isinstance(nums_range, bool):
            if nums_range < 0:
                raise ValueError(
                    f'If "{name}" is a single number, it must be positive, got {nums_range}'
                )
            if min_constraint is not None and nums_range < min_constraint:
                raise ValueError(
                    f'If "{name}" is a single number, it must be at least {min_constraint},'
                    f" got {nums_range}"
                )
            if max_constraint is not None and nums_range > max_constraint:
                raise ValueError(
                    f'If "{name}" is a single number, it must be at most {max_constraint},'
                    f" got {nums_range}"
                )
            if type_constraint is not None and not isinstance(nums_range, type_constraint):
                raise ValueError(
                    f'If "{name}" is a single number, it must be of type'
                    f" {type_constraint.__name__}, got {nums_range!r}"
                )
            low = -nums_range if min_constraint is None else min_constraint
            return low, nums_range
        try:
            values = tuple(nums_range)
        except TypeError:
            raise ValueError(
                f'If "{name}" is not a single number, it must be a sequence of length 2,'
                f" got {nums_range!r}"
            ) from None
        if len(values) != 2:
            raise ValueError(
                f'If "{name}" is not a single number, it must be a sequence of length 2,'
                f" got {nums_range!r}"
            )
        low, high = values
        for value in values:
            if not isinstance(value, numbers) or isinstance(value, bool):
                raise ValueError(f'"{name}" values must be numbers, got {nums_range!r}')
        if low > high:
            raise ValueError(
                f'If "{name}" is a sequence, the second value must be greater than or equal'
                f" to the first, got {nums_range!r}"
            )
        if min_constraint is not None and low < min_constraint:
            raise ValueError(
                f'If "{name}" is a sequence, the first value must be at least'
                f" {min_constraint}, got {low}"
            )
        if max_constraint is not None and high > max_constraint:
            raise ValueError(
                f'If "{name}" is a sequence, the second value must be at most'
                f" {max_constraint}, got {high}"
            )
        if type_constraint is not None and not (
            isinstance(low, type_constraint) and isinstance(high, type_constraint)
        ):
            raise ValueError(
                f'If "{name}" is a sequence, its values must be of type'
                f" {type_constraint.__name__}, got {nums_range!r}"
            )
        return low, high

    @staticmethod
    def parse_interpolation(interpolation: str) -> str:
        """Return the canonical lower-case interpolation name (``'cubic'`` -> ``'bspline'``).

        Raises:
            TypeError: If ``interpolation`` is not a string.
            ValueError: If it is not a supported name.
        """
        return _parse_interpolation(interpolation)

    @staticmethod
    def get_sitk_interpolator(interpolation: str) -> int:
        return _get_sitk_interpolator(interpolation)

    @staticmethod
    def parse_probability(probability: float, name: str = "p") -> float:
        """Check that ``probability`` is a number in [0, 1].

        Raises:
            ValueError: Otherwise.
        """
        is_number = isinstance(probability, int | float | np.integer | np.floating)
        if not (is_number and 0 <= probability <= 1):
            raise ValueError(
                f'Probability "{name}" must be a number in [0, 1], got {probability!r}'
            )
        return probability

    @staticmethod
    def parse_include_and_exclude_keys(
        include: Sequence[str] | None,
        exclude: Sequence[str] | None,
        label_keys: Sequence[str] | None,
    ) -> tuple[Sequence[str] | None, Sequence[str] | None]:
        """Validate ``include``/``exclude``/``label_keys``.

        Raises:
            ValueError: If both ``include`` and ``exclude`` are given or any is a string
                or not a sequence.
        """
        if include is not None and exclude is not None:
            raise ValueError('"include" and "exclude" cannot both be specified')
        Transform.validate_keys_sequence(include, "include")
        Transform.validate_keys_sequence(exclude, "exclude")
        Transform.validate_keys_sequence(label_keys, "label_keys")
        return _as_key_list(include, "include"), _as_key_list(exclude, "exclude")

    @staticmethod
    def validate_keys_sequence(keys: object, name: str) -> None:
        """Ensure ``keys`` is None or an iterable other than a string, as TorchIO does
        (its items are checked when they are read into a list).

        Raises:
            ValueError: Otherwise.
        """
        if keys is None:
            return
        if isinstance(keys, str | bytes):
            raise ValueError(f'"{name}" must be a sequence of strings, not the string {keys!r}')
        if not isinstance(keys, Iterable):
            raise ValueError(f'"{name}" must be a sequence of strings, got {keys!r}')

    # TorchIO's private name.
    _validate_keys_sequence = validate_keys_sequence

    @staticmethod
    def parse_bounds(bounds_parameters: TypeBounds) -> TypeSixBounds | None:
        """Expand bounds to six ints; see :func:`torchvox.transforms.masking.parse_bounds`."""
        return _parse_bounds(bounds_parameters)

    # ------------------------------------------------------------------ masks

    @staticmethod
    def ones(tensor: torch.Tensor) -> torch.Tensor:
        return torch.ones(tensor.shape, dtype=torch.bool)

    @staticmethod
    def mean(tensor: torch.Tensor) -> torch.Tensor:
        """Mask of the voxels above the mean intensity."""
        return tensor > tensor.float().mean()

    def get_mask_from_masking_method(
        self,
        masking_method: TypeMaskingMethod,
        subject: Subject,
        tensor: torch.Tensor,
        labels: Sequence[int] | None = None,
    ) -> torch.Tensor:
        return get_mask_from_masking_method(masking_method, subject, tensor, labels)

    @staticmethod
    def get_mask_from_anatomical_label(anatomical_label: str, tensor: torch.Tensor) -> torch.Tensor:
        return get_mask_from_anatomical_label(anatomical_label, tensor)

    def get_mask_from_bounds(
        self, bounds_parameters: TypeBounds, tensor: torch.Tensor
    ) -> torch.Tensor:
        return get_mask_from_bounds(bounds_parameters, tensor)

    # ------------------------------------------------------------------ conversions and seeds

    @staticmethod
    def nib_to_sitk(data: Any, affine: Any) -> Any:
        from ..data.io import nib_to_sitk

        return nib_to_sitk(data, affine)

    @staticmethod
    def sitk_to_nib(image: Any) -> tuple[np.ndarray, np.ndarray]:
        from ..data.io import sitk_to_nib

        result: tuple[np.ndarray, np.ndarray] = sitk_to_nib(image)
        return result

    @staticmethod
    @contextmanager
    def _use_seed(seed: int) -> Iterator[None]:
        """Run a block with torch's RNG seeded by ``seed``, restoring its state afterwards."""
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.random.set_rng_state(state)
