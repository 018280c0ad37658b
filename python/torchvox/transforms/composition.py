"""Containers of transforms: Compose, OneOf and SomeOf."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .random_transform import RandomTransform
from .transform import Transform

if TYPE_CHECKING:
    from ..data.subject import Subject

__all__ = ["Compose", "OneOf", "SomeOf"]


def _child_requests_copy(child: object) -> bool:
    return isinstance(child, Transform) and child._requests_copy()


def _all_share_data_safely(children: object) -> bool:
    """Whether every child is a transform that never modifies image tensors in place."""
    return all(
        isinstance(child, Transform) and child._shares_data_safely()
        for child in children  # type: ignore[attr-defined]
    )


class Compose(Transform):
    """Apply several transforms in sequence.

    The input is deep-copied once (if this transform or any child asks for a copy),
    and the children then work on that copy without copying again (TorchIO copies
    in every child). Each child still draws its own probability and records itself
    in the subject history.

    Args:
        transforms: Sequence of transforms (any callable is accepted), or a mapping
            ``{name: transform}``, in which case ``compose['name']`` returns a child.
        fuse: Allow consecutive resampling transforms to be fused into a single
            interpolation (see :mod:`torchvox.transforms.fusion` for when a run
            stops). ``False`` resamples after every child, as TorchIO does.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If a child is not callable, a mapping key is not a string or
            ``fuse`` is not a bool.
    """

    _records_history = False

    def __init__(
        self,
        transforms: Sequence[Any] | Mapping[str, Any],
        fuse: bool = True,
        **kwargs: Any,
    ):
        super().__init__(parse_input=False, **kwargs)
        if isinstance(transforms, Mapping):
            for key in transforms:
                if not isinstance(key, str):
                    raise TypeError(
                        "All keys of the transforms mapping must be strings, got"
                        f" {key!r} of type {type(key).__name__}"
                    )
            self._names: dict[str, int] = {name: i for i, name in enumerate(transforms)}
            children = list(transforms.values())
        else:
            if isinstance(transforms, str | bytes) or not hasattr(transforms, "__iter__"):
                raise TypeError(
                    '"transforms" must be a sequence or a mapping of transforms,'
                    f" got {type(transforms).__name__}"
                )
            self._names = {}
            children = list(transforms)
        for child in children:
            if not callable(child):
                raise TypeError(f'Every element of "transforms" must be callable, got {child!r}')
        if not isinstance(fuse, bool | np.bool_):
            raise TypeError(f'"fuse" must be a bool, got {fuse!r}')
        self.transforms = children
        self.fuse = bool(fuse)

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, index: int | str) -> Any:
        if isinstance(index, str):
            if not self._names:
                raise TypeError(
                    f"String indexing is not supported for {self.name} instances created"
                    " from a sequence"
                )
            if index not in self._names:
                raise KeyError(f"Transform name not found: {index!r}")
            return self.transforms[self._names[index]]
        return self.transforms[index]

    def __repr__(self) -> str:
        return f"{self.name}({self.transforms})"

    def _requests_copy(self) -> bool:
        return self.copy or any(_child_requests_copy(child) for child in self.transforms)

    def _shares_data_safely(self) -> bool:
        return _all_share_data_safely(self.transforms)

    def _get_base_args(self) -> dict[str, object]:
        arguments = super()._get_base_args()
        arguments.pop("parse_input", None)
        return arguments

    def apply_transform(self, subject: Subject) -> Subject:
        return self._apply_children(subject)

    def _apply_children(self, subject: Any) -> Any:
        """Apply the children in order to an input this Compose owns."""
        if self.fuse:
            from .fusion import apply_fused

            return apply_fused(self, subject)
        for child in self.transforms:
            subject = self._apply_child(child, subject)
        return subject

    def is_invertible(self) -> bool:
        return all(child.is_invertible() for child in self.transforms)

    def inverse(self, warn: bool = True) -> Compose:
        """Return the inverses of the invertible children, in reverse order.

        Args:
            warn: Issue a ``RuntimeWarning`` for each child that is not invertible
                (it is skipped) and if none is.
        """
        inverted = []
        for child in self.transforms:
            if child.is_invertible():
                inverted.append(child.inverse())
            elif warn:
                warnings.warn(
                    f"Skipping {child.name} as it is not invertible", RuntimeWarning, stacklevel=2
                )
        inverted.reverse()
        if not inverted and warn:
            warnings.warn("No invertible transforms found", RuntimeWarning, stacklevel=2)
        return Compose(inverted, fuse=self.fuse, **self._get_base_args())

    def _get_reproducing_arguments(self) -> dict[str, object]:
        arguments = super()._get_reproducing_arguments()
        arguments["fuse"] = self.fuse
        return arguments

    def to_hydra_config(self) -> dict[str, Any]:
        """Return a Hydra config whose ``transforms`` entry nests the children's configs."""
        config: dict[str, Any] = {"_target_": self._get_name_with_module()}
        config.update(self._get_reproducing_arguments())
        config["transforms"] = [child.to_hydra_config() for child in self.transforms]
        result: dict[str, Any] = self._tuples_to_lists(config)
        return result


def _parse_weighted_transforms(transforms: object, argument: str) -> dict[Transform, float]:
    """Return ``{transform: normalised probability}``.

    Raises:
        ValueError: If ``transforms`` is neither a dict nor a sequence, is empty, holds
            non-transforms or has negative/all-zero weights.
    """
    if isinstance(transforms, dict):
        weighted = dict(transforms)
    elif isinstance(transforms, Sequence) and not isinstance(transforms, str):
        weighted = dict.fromkeys(transforms, 1.0)
        if len(weighted) != len(transforms):
            raise ValueError(f'"{argument}" contains the same transform instance more than once')
    else:
        raise ValueError(
            f'"{argument}" must be a dict of transforms to probabilities or a sequence of'
            f" transforms, got {type(transforms).__name__}"
        )
    if not weighted:
        raise ValueError(f'"{argument}" must contain at least one transform')
    for transform in weighted:
        if not isinstance(transform, Transform):
            raise ValueError(
                f'Every transform in "{argument}" must be a torchvox Transform, got'
                f" {type(transform).__name__}"
            )
    try:
        probabilities = np.array(list(weighted.values()), dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f'The probabilities in "{argument}" must be numbers') from None
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        raise ValueError(
            f"Probabilities must be finite and non-negative, got {probabilities.tolist()}"
        )
    if np.all(probabilities == 0):
        raise ValueError(
            f"At least one probability must be greater than zero, got {probabilities.tolist()}"
        )
    total = probabilities.sum()
    return {t: float(w) / total for t, w in zip(weighted, probabilities)}


class OneOf(RandomTransform):
    """Apply one transform chosen at random.

    Args:
        transforms: ``{transform: probability}`` (probabilities are normalised to sum
            to one) or a sequence of transforms (equal probabilities).
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: For empty inputs, non-transforms or invalid probabilities.
    """

    def __init__(self, transforms: dict[Transform, float] | Sequence[Transform], **kwargs: Any):
        super().__init__(parse_input=False, **kwargs)
        self.transforms_dict = _parse_weighted_transforms(transforms, "transforms")

    def _requests_copy(self) -> bool:
        return self.copy or any(child._requests_copy() for child in self.transforms_dict)

    def _shares_data_safely(self) -> bool:
        return _all_share_data_safely(self.transforms_dict)

    def _get_base_args(self) -> dict[str, object]:
        arguments = super()._get_base_args()
        arguments.pop("parse_input", None)
        return arguments

    def apply_transform(self, subject: Subject) -> Subject:
        # Same draw as TorchIO, so seeded pipelines pick the same child.
        weights = torch.tensor(list(self.transforms_dict.values()), dtype=torch.float32)
        index = int(torch.multinomial(weights, 1).item())
        child = list(self.transforms_dict)[index]
        result: Subject = self._apply_child(child, subject)
        return result

    def __repr__(self) -> str:
        return f"{self.name}({self.transforms_dict})"


class SomeOf(RandomTransform):
    """Apply a random subset of transforms, in the order given.

    Args:
        transforms: Sequence of transforms, or ``{transform: weight}`` to make some
            more likely to be picked.
        num_transforms: How many to pick: an int, or ``(a, b)`` to draw the number
            uniformly from ``{a, ..., b}`` on each call.
        replace: Pick with replacement (a transform may then be applied several times).
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: If ``num_transforms`` is negative, ``a > b``, or asks for more
            transforms than there are while ``replace`` is False.
        TypeError: If ``num_transforms`` is not an int or a pair of ints.
    """

    def __init__(
        self,
        transforms: dict[Transform, float] | Sequence[Transform],
        num_transforms: int | tuple[int, int] = 1,
        replace: bool = False,
        **kwargs: Any,
    ):
        super().__init__(parse_input=False, **kwargs)
        self.transforms_dict = _parse_weighted_transforms(transforms, "transforms")
        if not isinstance(replace, bool | np.bool_):
            raise TypeError(f'"replace" must be a bool, got {replace!r}')
        self.replace = bool(replace)
        self.num_transforms = self._parse_num_transforms(num_transforms)

    def _parse_num_transforms(self, num_transforms: object) -> int | tuple[int, int]:
        def is_int(value: object) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool)

        if is_int(num_transforms):
            low = high = int(num_transforms)  # type: ignore[call-overload]
            parsed: int | tuple[int, int] = low
        elif (
            isinstance(num_transforms, Sequence)
            and len(num_transforms) == 2
            and all(is_int(n) for n in num_transforms)
        ):
            low, high = (int(n) for n in num_transforms)
            parsed = (low, high)
        else:
            raise TypeError(
                f'"num_transforms" must be an int or a pair of ints, got {num_transforms!r}'
            )
        if low < 0 or low > high:
            raise ValueError(
                f'"num_transforms" must be non-negative with a <= b, got {num_transforms!r}'
            )
        available = len(self.transforms_dict)
        if not self.replace and high > available:
            raise ValueError(
                f'"num_transforms" ({num_transforms!r}) exceeds the {available} transforms'
                " available without replacement"
            )
        return parsed

    def _requests_copy(self) -> bool:
        return self.copy or any(child._requests_copy() for child in self.transforms_dict)

    def _shares_data_safely(self) -> bool:
        return _all_share_data_safely(self.transforms_dict)

    def _get_base_args(self) -> dict[str, object]:
        arguments = super()._get_base_args()
        arguments.pop("parse_input", None)
        return arguments

    def _sample_indices(self) -> list[int]:
        if isinstance(self.num_transforms, tuple):
            low, high = self.num_transforms
            count = int(torch.randint(low, high + 1, (1,)).item())
        else:
            count = self.num_transforms
        if count == 0:
            return []
        weights = torch.tensor(list(self.transforms_dict.values()), dtype=torch.float32)
        if not self.replace:
            # multinomial without replacement needs as many non-zero weights as draws.
            count = min(count, int((weights > 0).sum().item()))
        picked = torch.multinomial(weights, count, replacement=self.replace)
        return sorted(int(i) for i in picked.tolist())

    def apply_transform(self, subject: Subject) -> Subject:
        children = list(self.transforms_dict)
        for index in self._sample_indices():
            subject = self._apply_child(children[index], subject)
        return subject

    def __repr__(self) -> str:
        return (
            f"{self.name}({list(self.transforms_dict)}, num_transforms={self.num_transforms},"
            f" replace={self.replace})"
        )
