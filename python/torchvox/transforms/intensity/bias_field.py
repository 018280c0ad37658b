"""BiasField and RandomBiasField: smooth multiplicative MRI bias fields (TorchIO 1.2.1).

The field is ``exp`` of a polynomial of total degree ``order`` in voxel
coordinates normalised to ``[-1, 1]``, evaluated separably in Rust and multiplied
into every channel in the same pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._backend import native, to_tensor
from ..intensity_transform import IntensityTransform
from ..label._native_arrays import to_native
from ..random_transform import RandomTransform

if TYPE_CHECKING:
    from ...data.subject import Subject

__all__ = ["BiasField", "RandomBiasField"]


def _parse_order(order: object) -> int:
    if isinstance(order, bool) or not isinstance(order, int | np.integer):
        raise TypeError(f"Order must be an int, not {type(order)}")
    if order < 0:
        raise ValueError(f"Order must be a positive int, not {order}")
    return int(order)


def num_coefficients(order: int) -> int:
    """Number of monomials of total degree at most ``order`` in 3 variables."""
    return (order + 1) * (order + 2) * (order + 3) // 6


class RandomBiasField(RandomTransform, IntensityTransform):
    """Add a random MRI bias field.

    Args:
        coefficients: Range of the polynomial coefficients, ``(a, b)`` or ``d`` for
            ``(-d, d)``.
        order: Total degree of the polynomial (non-negative int).
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        TypeError: If ``order`` is not an int.
        ValueError: If ``order`` is negative or the range is invalid.
    """

    _replaces_data = True

    def __init__(
        self,
        coefficients: float | tuple[float, float] = 0.5,
        order: int = 3,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.coefficients_range = self._parse_range(coefficients, "coefficients_range")
        self.order = _parse_order(order)

    def apply_transform(self, subject: Subject) -> Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        coefficients = {
            name: self.get_params(self.order, self.coefficients_range) for name in images
        }
        orders = dict.fromkeys(images, self.order)
        transform = BiasField(coefficients=coefficients, order=orders, **self._get_base_args())
        result: Subject = self._apply_child(transform, subject)
        return result

    def get_params(self, order: int, coefficients_range: tuple[float, float]) -> list[float]:
        """Draw one coefficient per monomial, in TorchIO's order, with torch's RNG."""
        return [self.sample_uniform(*coefficients_range) for _ in range(num_coefficients(order))]

    def _get_named_arguments(self) -> dict[str, object]:
        return {"coefficients": self.coefficients_range, "order": self.order}


class BiasField(IntensityTransform):
    """Multiply images by a polynomial bias field.

    The field ``exp(sum c_pqr x^p y^q z^r)`` (``p + q + r <= order``, coefficients
    ordered with ``p`` outermost and ``r`` innermost) is one per image, shared by
    its channels. Output dtype as ``tensor * float32_tensor`` in PyTorch (float64
    stays float64, others become float32). The inverse divides by the field.

    Args:
        coefficients: Polynomial coefficients, or ``{image_name: coefficients}``.
        order: Total degree, or ``{image_name: order}``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ValueError: If only one argument is a dict, coefficients are too few or
            not finite, or an order is negative.
    """

    _replaces_data = True

    def __init__(
        self,
        coefficients: Sequence[float] | Mapping[str, Sequence[float]],
        order: int | dict[str, int],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.coefficients = coefficients
        self.order = order
        self.invert_transform = False
        self.args_names = ["coefficients", "order"]
        if isinstance(coefficients, Mapping) != isinstance(order, Mapping):
            raise ValueError("If one of the arguments is a dict, all must be")
        orders = order.values() if isinstance(order, Mapping) else [order]
        for value in orders:
            _parse_order(value)
        if isinstance(coefficients, Mapping) and isinstance(order, Mapping):
            for name, values in coefficients.items():
                if name in order:
                    self._check_coefficients(values, int(order[name]))
        elif not isinstance(coefficients, Mapping) and not isinstance(order, Mapping):
            self._check_coefficients(coefficients, int(order))

    @staticmethod
    def _check_coefficients(coefficients: Sequence[float], order: int) -> None:
        values = np.asarray(coefficients, dtype=np.float64).reshape(-1)
        needed = num_coefficients(order)
        if len(values) < needed:
            raise ValueError(
                f"A bias field of order {order} needs {needed} coefficients, got {len(values)}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"Bias field coefficients must be finite, got {coefficients!r}")

    def arguments_are_dict(self) -> bool:
        coefficients_dict = isinstance(self.coefficients, dict)
        order_dict = isinstance(self.order, dict)
        if coefficients_dict != order_dict:
            raise ValueError("If one of the arguments is a dict, all must be")
        return coefficients_dict and order_dict

    def apply_transform(self, subject: Subject) -> Subject:
        for name, image in self.get_images_dict(subject).items():
            coefficients = self.get_parameter(self.coefficients, name)
            order = _parse_order(self.get_parameter(self.order, name))
            values = [float(v) for v in np.asarray(coefficients, dtype=np.float64).reshape(-1)]
            result = native().bias_field(
                to_native(image.data), order, values, bool(self.invert_transform)
            )
            image.set_data(to_tensor(result))
        return subject

    @staticmethod
    def generate_bias_field(data: Any, order: int, coefficients: Sequence[float]) -> np.ndarray:
        """The float32 field ``(I, J, K)`` for ``(C, I, J, K)`` ``data`` (TorchIO's helper)."""
        shape = tuple(int(n) for n in np.shape(data)[1:])
        values = [float(v) for v in np.asarray(coefficients, dtype=np.float64).reshape(-1)]
        field: np.ndarray = native().bias_field_map(shape, _parse_order(order), values)
        return field
