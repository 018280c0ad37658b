"""PCA: principal components of the channels of an image (e.g. network embeddings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..intensity_transform import IntensityTransform

if TYPE_CHECKING:
    from ...data.image import ScalarImage
    from ...data.subject import Subject

__all__ = ["PCA"]


def _get_sklearn_pca() -> Any:
    try:
        from sklearn.decomposition import PCA as SklearnPCA  # noqa: N811
    except ImportError:
        raise ImportError(
            "The PCA transform needs scikit-learn. Install it with `pip install scikit-learn`."
        ) from None
    return SklearnPCA


class PCA(IntensityTransform):
    """Project the channels of each image onto their principal components.

    Each voxel is a sample whose features are the ``C`` channels; the output has
    ``num_components`` channels (float32 unless the input is float64), useful to
    visualise embeddings (Figure 8 of Darcet et al., "Cluster and Predict Latent
    Patches for Improved Masked Image Modeling", 2025). Needs scikit-learn.

    Args:
        num_components: Number of components kept.
        whiten: Scale the components to unit variance.
        normalize: Divide all components by the standard deviation of the first.
        make_skewness_positive: Negate components whose skewness is negative.
        values_range: Values mapped linearly to ``[0, 1]``; ``None`` uses the
            minimum and maximum of the result. 2.3 is roughly 2 standard deviations.
        clip: Clip the output to ``[0, 1]``.
        pca_kwargs: Extra keyword arguments of ``sklearn.decomposition.PCA``.
        **kwargs: See :class:`~torchvox.transforms.Transform`.

    Raises:
        ImportError: If scikit-learn is not installed.
        ValueError: For a non-positive ``num_components`` or a malformed range.
    """

    _replaces_data = True

    def __init__(
        self,
        num_components: int = 3,
        *,
        whiten: bool = True,
        normalize: bool = True,
        make_skewness_positive: bool = True,
        values_range: tuple[float, float] | None = (-2.3, 2.3),
        clip: bool = True,
        pca_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        _get_sklearn_pca()
        if (
            isinstance(num_components, bool)
            or not isinstance(num_components, int | np.integer)
            or num_components < 1
        ):
            raise ValueError(f'"num_components" must be a positive int, got {num_components!r}')
        if values_range is not None:
            values_range = self._parse_values_range(values_range)
        if pca_kwargs is not None and not isinstance(pca_kwargs, dict):
            raise TypeError(f'"pca_kwargs" must be a dict or None, got {pca_kwargs!r}')
        self.num_components = int(num_components)
        self.whiten = whiten
        self.normalize = normalize
        self.make_skewness_positive = make_skewness_positive
        self.values_range = values_range
        self.clip = clip
        self.pca_kwargs = pca_kwargs
        self.args_names = [
            "num_components",
            "whiten",
            "normalize",
            "make_skewness_positive",
            "values_range",
            "clip",
            "pca_kwargs",
        ]

    @staticmethod
    def _parse_values_range(values_range: Any) -> tuple[float, float]:
        try:
            low, high = (float(v) for v in values_range)
        except (TypeError, ValueError):
            raise ValueError(
                f'"values_range" must be None or two numbers, got {values_range!r}'
            ) from None
        if not low < high:
            raise ValueError(f'"values_range" must be increasing, got {values_range!r}')
        return low, high

    def apply_transform(self, subject: Subject) -> Subject:
        for image in self.get_images(subject):
            image.set_data(self._compute_pca(image))
        return subject

    def _compute_pca(self, image: ScalarImage) -> torch.Tensor:
        sklearn_pca = _get_sklearn_pca()
        data = image.numpy()
        channels, size_i, size_j, size_k = data.shape
        if channels < self.num_components:
            raise ValueError(
                f"Cannot compute {self.num_components} components from {channels} channels"
            )
        # One sample per voxel, in C order, with the channels as features.
        samples = data.reshape(channels, -1).T
        pca = sklearn_pca(
            n_components=self.num_components, whiten=self.whiten, **(self.pca_kwargs or {})
        )
        projected: np.ndarray = pca.fit_transform(samples).T
        if self.normalize:
            projected /= projected[0].std()
        if self.make_skewness_positive:
            for component in projected:
                third_moment = np.mean(component**3)
                second_moment = np.mean(component**2)
                if third_moment / second_moment ** (3 / 2) < 0:
                    component *= -1
        grid = projected.reshape(self.num_components, size_i, size_j, size_k)
        if self.values_range is not None:
            vmin, vmax = self.values_range
        else:
            vmin, vmax = grid.min(), grid.max()
        grid = (grid - vmin) / (vmax - vmin)
        if self.clip:
            grid = np.clip(grid, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(grid))
