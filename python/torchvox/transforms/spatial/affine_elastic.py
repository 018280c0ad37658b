"""Affine and elastic deformation in one resampling (TorchIO's ``AffineElasticDeformation``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...constants import INTENSITY
from ...data.subject import Subject
from ..fusion import resample_or_defer
from ..random_transform import RandomTransform
from ..spatial_transform import SpatialTransform
from .affine import Affine, RandomAffine
from .elastic import ElasticDeformation, RandomElasticDeformation
from .resample import ChainStep

__all__ = ["AffineElasticDeformation", "RandomAffineElasticDeformation"]


def _zero(_: torch.Tensor) -> float:
    return 0.0


class AffineElasticDeformation(SpatialTransform):
    """Apply an :class:`Affine` and an :class:`ElasticDeformation` with one interpolation.

    Args:
        affine_first: Apply the affine transform before the elastic deformation.
        affine_params: Keyword arguments of :class:`Affine`.
        elastic_params: Keyword arguments of :class:`ElasticDeformation`.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    The interpolations and the scalar fill value are the affine's; label maps are
    filled with 0. Scalar images become float32; label maps keep their dtype.
    """

    _replaces_data = True

    def __init__(
        self,
        affine_first: bool,
        affine_params: dict[str, Any],
        elastic_params: dict[str, Any],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not isinstance(affine_params, dict) or not isinstance(elastic_params, dict):
            raise TypeError("affine_params and elastic_params must be dicts of keyword arguments")
        self.affine_first = bool(affine_first)
        self.affine_params = affine_params
        self.elastic_params = elastic_params
        self._affine = Affine(**affine_params, **kwargs)
        self._elastic = ElasticDeformation(**elastic_params, **kwargs)
        self.args_names = ["affine_first", "affine_params", "elastic_params"]

    def get_chain(self, image: Any, step: ChainStep | None = None) -> list[ChainStep]:
        """Coordinate chain (output -> input points) on ``image``'s grid.

        Args:
            image: The image to resample.
            step: The elastic deformation's chain step on ``image``'s grid, if
                already made for another image on the same grid.
        """
        matrix = self._affine.get_matrix(image)
        if step is None:
            self._elastic.check_folding(image)
            step = self._elastic.get_chain_step(image)
        # ITK's composite [affine, bspline] maps a point through the B-spline first.
        return [step, matrix] if self.affine_first else [matrix, step]

    def apply_transform(self, subject: Subject) -> Subject:
        if self._affine.check_shape:
            subject.check_consistent_spatial_shape()
        # Images on one grid share the elastic step (and its field, if evaluated densely).
        steps: dict[tuple[Any, ...], ChainStep] = {}
        for image in self.get_images(subject):
            key = (tuple(image.spatial_shape), np.asarray(image.affine).tobytes(), image.is_2d())
            if key not in steps:
                self._elastic.check_folding(image)
                steps[key] = self._elastic.get_chain_step(image)
            chain = self.get_chain(image, steps[key])
            interpolation, fill = self._affine.image_fill(image)
            if image.type != INTENSITY:
                fill = _zero  # TorchIO fills label maps with 0 here
            affine = np.array(image.affine, dtype=np.float64)
            resample_or_defer(image, image.spatial_shape, affine, chain, interpolation, fill, True)
        return subject


class RandomAffineElasticDeformation(RandomTransform, SpatialTransform):
    """Random affine and elastic deformation applied with one interpolation.

    Args:
        affine_first: Apply the affine transform before the elastic deformation.
        affine_kwargs: Keyword arguments of :class:`RandomAffine`.
        elastic_kwargs: Keyword arguments of :class:`RandomElasticDeformation`.
        **kwargs: See :class:`~torchvox.transforms.Transform`.
    """

    _replaces_data = True

    def __init__(
        self,
        affine_first: bool = True,
        affine_kwargs: dict[str, Any] | None = None,
        elastic_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.affine_first = bool(affine_first)
        self.affine_kwargs = dict(affine_kwargs or {})
        self.elastic_kwargs = dict(elastic_kwargs or {})
        self.random_affine = RandomAffine(**self.affine_kwargs)
        self.random_elastic = RandomElasticDeformation(**self.elastic_kwargs)

    def get_params(self) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], np.ndarray]:
        """Sample the affine parameters, then the control points (TorchIO's order)."""
        affine = self.random_affine
        elastic = self.random_elastic
        affine_params = affine.get_params(
            affine.scales, affine.degrees, affine.translation, affine.isotropic
        )
        control_points = elastic.get_params(
            elastic.num_control_points, elastic.max_displacement, elastic.num_locked_borders
        )
        return affine_params, control_points

    def apply_transform(self, subject: Subject) -> Subject:
        (scales, degrees, translation), control_points = self.get_params()
        affine = self.random_affine
        elastic = self.random_elastic
        transform = AffineElasticDeformation(
            affine_first=self.affine_first,
            affine_params={
                "scales": scales.tolist(),
                "degrees": degrees.tolist(),
                "translation": translation.tolist(),
                "center": affine.center,
                "default_pad_value": affine.default_pad_value,
                "image_interpolation": affine.image_interpolation,
                "label_interpolation": affine.label_interpolation,
                "check_shape": affine.check_shape,
            },
            elastic_params={
                "control_points": control_points,
                "max_displacement": elastic.max_displacement,
                "image_interpolation": elastic.image_interpolation,
                "label_interpolation": elastic.label_interpolation,
            },
            **self._get_base_args(),
        )
        result: Subject = self._apply_child(transform, subject)
        return result
