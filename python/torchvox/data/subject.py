"""Subjects: dictionaries of images (and metadata) that are transformed together."""

from __future__ import annotations

import copy
import itertools
import pprint
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from ..utils import get_subclasses
from .image import Image, LabelMap, ScalarImage

if TYPE_CHECKING:
    from ..transforms.composition import Compose
    from ..transforms.transform import Transform

__all__ = ["AppliedTransform", "Subject"]

AppliedTransformParameters: TypeAlias = dict[str, object]
#: One history record: the transform class name and the arguments that reproduce it.
AppliedTransform: TypeAlias = tuple[str, AppliedTransformParameters]


def _find_transform_class(name: str) -> type:
    """Find a transform class by name in :mod:`torchvox.transforms`, then among subclasses."""
    from .. import transforms

    found = getattr(transforms, name, None)
    if isinstance(found, type):
        return found
    base = getattr(transforms, "Transform", None)
    if base is not None:
        for subclass in get_subclasses(base):
            if subclass.__name__ == name:
                return subclass
    raise ValueError(f'Transform "{name}" in the subject history was not found in torchvox')


class Subject(dict[str, object]):
    """The images of one subject (and any metadata), transformed together.

    A subject is a ``dict``: images and metadata are its items, also readable as
    attributes (``subject.t1``). ``len(subject)`` is the number of images. Transforms
    record themselves in :attr:`applied_transforms`, which allows replaying and
    inverting them.

    Args:
        *args: At most one mapping of items.
        **kwargs: Items (images and metadata).

    Raises:
        ValueError: If there is more than one positional argument or it is not a mapping.
        TypeError: If there are no images.

    Examples:
        >>> import torch, torchvox as tio
        >>> subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.rand(1, 4, 4, 4)), age=45)
        >>> subject
        Subject(Keys: ('t1', 'age'); images: 1)
    """

    def __init__(self, *args: Mapping[str, object], **kwargs: object):
        if args:
            if len(args) == 1 and isinstance(args[0], Mapping):
                kwargs.update(args[0])
            else:
                raise ValueError("Only one dictionary as positional argument is allowed")
        super().__init__(**kwargs)
        self._parse_images(self.get_images(intensity_only=False))
        self.update_attributes()
        self.applied_transforms: list[AppliedTransform] = []
        # For each entry of the history, the fused resampling run it was
        # applied in (see torchvox.transforms.fusion), or None: a replay then
        # fuses what was fused and resamples step by step what was not.
        self._history_runs: list[int | None] = []

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(Keys: {tuple(self.keys())};"
            f" images: {len(self.get_images(intensity_only=False))})"
        )

    def _repr_html_(self) -> str:
        """Notebook display: the subject's plot as an inline base64 PNG."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return repr(self)
        from ..visualization import figure_to_html

        return figure_to_html(self.plot(return_fig=True, show=False))

    def plot(self, return_fig: bool = False, **kwargs: Any) -> Any:
        """Plot every image: one row of three orthogonal slices per image.

        Args:
            return_fig: Return the matplotlib figure.
            **kwargs: Passed to :func:`torchvox.visualization.plot_subject`.

        Returns:
            The figure if ``return_fig``, else ``None``.
        """
        from ..visualization import plot_subject

        figure = plot_subject(self, **kwargs)
        return figure if return_fig else None

    def __len__(self) -> int:
        return len(self.get_images(intensity_only=False))

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, slice | int | tuple):
            try:
                self.check_consistent_spatial_shape()
            except RuntimeError as error:
                raise RuntimeError(
                    "To use indexing, all images in the subject must have the same spatial shape"
                ) from error
            # Seeding deepcopy's memo with the sliced images copies the metadata and
            # history without copying the full-size data first. An image not loaded
            # yet is sliced through a copy (which has no data to copy), so that it
            # stays unloaded, as in TorchIO, which slices a copy of the subject.
            memo: dict[int, Any] = {
                id(image): (image if image._loaded else copy.deepcopy(image))[item]
                for image in self.get_images(intensity_only=False)
            }
            return copy.deepcopy(self, memo)
        return super().__getitem__(item)

    def __getattr__(self, item: str) -> Any:
        # Only called when normal lookup fails; keys added after construction live here.
        try:
            return self[item]
        except KeyError as error:
            raise AttributeError(f"{self.__class__.__name__} has no attribute {item!r}") from error

    @staticmethod
    def _parse_images(images: list[Image]) -> None:
        if not images:
            raise TypeError("A subject without images cannot be created")

    # ------------------------------------------------------------------ geometry

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape ``(C, W, H, D)`` of the images, checked to be the same for all."""
        self.check_consistent_attribute("shape")
        return self.get_first_image().shape

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(W, H, D)`` of the images, checked to be the same for all."""
        self.check_consistent_spatial_shape()
        return self.get_first_image().spatial_shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing of the images, checked to be the same for all."""
        self.check_consistent_attribute("spacing")
        return self.get_first_image().spacing

    def is_2d(self) -> bool:
        """Whether every image is 2D."""
        return all(image.is_2d() for image in self.get_images(intensity_only=False))

    def check_consistent_attribute(
        self,
        attribute: str,
        relative_tolerance: float = 1e-6,
        absolute_tolerance: float = 1e-6,
        message: str | None = None,
    ) -> None:
        """Check that an attribute has the same value in every image.

        Numbers are compared with ``numpy.allclose`` (``|a - b| <= atol + rtol * |b|``);
        other values (e.g. orientation codes) must be equal.

        Args:
            attribute: Image attribute name, e.g. ``'spacing'`` or ``'affine'``.
            relative_tolerance: ``rtol`` of ``numpy.allclose``.
            absolute_tolerance: ``atol`` of ``numpy.allclose``.
            message: Unused; kept for TorchIO compatibility.

        Raises:
            RuntimeError: Naming the images and their values if they differ.
        """
        template = f'More than one value for "{attribute}" found in subject images:\n{{}}'
        images = self.get_images_dict(intensity_only=False)
        values = {name: getattr(image, attribute) for name, image in images.items()}
        names = list(values)
        first_name = names[0]
        for name in names[1:]:
            try:
                close = bool(
                    np.allclose(
                        values[name],
                        values[first_name],
                        rtol=relative_tolerance,
                        atol=absolute_tolerance,
                    )
                )
            except (TypeError, ValueError):
                # Non-numeric values (orientation codes) or different lengths.
                close = _equal(values[name], values[first_name])
                if not close:
                    raise RuntimeError(template.format(pprint.pformat(values))) from None
            if not close:
                pair = {first_name: values[first_name], name: values[name]}
                raise RuntimeError(template.format(pprint.pformat(pair)))

    def check_consistent_spatial_shape(self) -> None:
        """Raise ``RuntimeError`` if the images have different spatial shapes."""
        self.check_consistent_attribute("spatial_shape")

    def check_consistent_orientation(self) -> None:
        """Raise ``RuntimeError`` if the images have different orientations."""
        self.check_consistent_attribute("orientation")

    def check_consistent_affine(self) -> None:
        """Raise ``RuntimeError`` if the images have different affines."""
        self.check_consistent_attribute("affine")

    def check_consistent_space(self) -> None:
        """Raise ``RuntimeError`` unless all images share spacing, direction, origin and shape."""
        try:
            for attribute in ("spacing", "direction", "origin"):
                self.check_consistent_attribute(attribute)
            self.check_consistent_spatial_shape()
        except RuntimeError as error:
            raise RuntimeError(
                "As described above, some images in the subject are not in the same space."
                " You probably can use the transforms ToCanonical and Resample to fix this,"
                " as explained at"
                " https://github.com/TorchIO-project/torchio/issues/647#issuecomment-913025695"
            ) from error

    # ------------------------------------------------------------------ image access

    def get_images_names(self) -> list[str]:
        """Names of all images, in insertion order."""
        return list(self.get_images_dict(intensity_only=False))

    def get_images_dict(
        self,
        intensity_only: bool = True,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Images by name.

        Args:
            intensity_only: Only :class:`ScalarImage` instances.
            include: If given, only these names.
            exclude: If given, not these names.
        """
        wanted = ScalarImage if intensity_only else Image
        return {
            name: value
            for name, value in self.items()
            if isinstance(value, wanted)
            and (include is None or name in include)
            and (exclude is None or name not in exclude)
        }

    def get_images(
        self,
        intensity_only: bool = True,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> list[Any]:
        """Images as a list (see :meth:`get_images_dict` for the arguments)."""
        return list(
            self.get_images_dict(
                intensity_only=intensity_only, include=include, exclude=exclude
            ).values()
        )

    def get_image(self, image_name: str) -> Image:
        """The image called ``image_name`` (``KeyError`` if there is none)."""
        return self.get_images_dict(intensity_only=False)[image_name]

    def get_scalar_image(self, image_name: str) -> ScalarImage:
        """The :class:`ScalarImage` called ``image_name`` (``TypeError`` if another kind)."""
        image = self.get_image(image_name)
        if not isinstance(image, ScalarImage):
            raise TypeError(f'Image "{image_name}" is not a scalar image')
        return image

    def get_label_map(self, image_name: str) -> LabelMap:
        """The :class:`LabelMap` called ``image_name`` (``TypeError`` if another kind)."""
        image = self.get_image(image_name)
        if not isinstance(image, LabelMap):
            raise TypeError(f'Image "{image_name}" is not a label map')
        return image

    def get_first_image(self) -> Image:
        """The first image, in insertion order."""
        return self.get_images(intensity_only=False)[0]

    def update_attributes(self) -> None:
        """Mirror the items as attributes, so ``subject.t1`` works."""
        self.__dict__.update(self)

    @staticmethod
    def _check_image_name(image_name: object) -> str:
        if not isinstance(image_name, str):
            raise ValueError(
                f'The image name must be a string, but it has type "{type(image_name)}"'
            )
        return image_name

    def add_image(self, image: Image, image_name: str) -> None:
        """Add (or replace) an image.

        Raises:
            ValueError: If ``image`` is not an :class:`Image` or the name is not a string.
        """
        if not isinstance(image, Image):
            raise ValueError(
                f'Image must be an instance of torchvox.Image, but its type is "{type(image)}"'
            )
        self._check_image_name(image_name)
        self[image_name] = image
        self.update_attributes()

    def remove_image(self, image_name: str) -> None:
        """Remove an image (``KeyError`` if there is none with that name)."""
        self._check_image_name(image_name)
        del self[image_name]
        self.__dict__.pop(image_name, None)

    def load(self) -> None:
        """Load every image."""
        for image in self.get_images(intensity_only=False):
            image.load()

    def unload(self) -> None:
        """Unload every image (each must be loaded and have a path)."""
        for image in self.get_images(intensity_only=False):
            image.unload()

    # ------------------------------------------------------------------ history

    def add_transform(self, transform: Transform, parameters_dict: dict[str, object]) -> None:
        """Record that ``transform`` was applied with arguments ``parameters_dict``."""
        from ..transforms.fusion import current_run

        runs = self._aligned_history_runs()
        self.applied_transforms.append((transform.name, parameters_dict))
        if runs is not None:
            run = current_run()
            runs.append(None if run is None else run.number)

    def _aligned_history_runs(self) -> list[int | None] | None:
        """The fused run of each history entry, or None if that record was lost (a
        history edited or copied without it)."""
        runs = getattr(self, "_history_runs", None)
        if runs is None or len(runs) != len(self.applied_transforms):
            return None
        return runs

    @property
    def history(self) -> list[Transform]:
        """The applied transforms, re-instantiated (see :meth:`get_applied_transforms`)."""
        return self.get_applied_transforms()

    def get_applied_transforms(
        self,
        ignore_intensity: bool = False,
        image_interpolation: str | None = None,
    ) -> list[Transform]:
        """Re-instantiate the recorded transforms, in the order they were applied.

        Args:
            ignore_intensity: Skip intensity transforms.
            image_interpolation: Interpolation for scalar images in transforms that
                resample (those with an ``image_interpolation`` attribute).

        Raises:
            ValueError: If a recorded class name is not a torchvox transform.
        """
        return [
            transform
            for transform, _ in self._applied_transforms_and_runs(
                ignore_intensity, image_interpolation
            )
        ]

    def _applied_transforms_and_runs(
        self, ignore_intensity: bool, image_interpolation: str | None
    ) -> list[tuple[Transform, int | None]]:
        """:meth:`get_applied_transforms`, each with its fused run (None if unknown)."""
        from .. import transforms

        intensity_class = getattr(transforms, "IntensityTransform", None)
        runs = self._aligned_history_runs() or [None] * len(self.applied_transforms)
        result = []
        for (name, arguments), run in zip(self.applied_transforms, runs, strict=True):
            transform = _find_transform_class(name)(**arguments)
            if (
                ignore_intensity
                and intensity_class is not None
                and isinstance(transform, intensity_class)
            ):
                continue
            if image_interpolation is not None and hasattr(transform, "image_interpolation"):
                transform.image_interpolation = transform.parse_interpolation(image_interpolation)
            result.append((transform, run))
        return result

    def get_composed_history(
        self,
        ignore_intensity: bool = False,
        image_interpolation: str | None = None,
    ) -> Compose:
        """The applied transforms as one :class:`~torchvox.transforms.Compose`.

        The replay resamples as the subject was: transforms applied one by one
        are resampled one by one (``fuse=False``), and those a fusing
        ``Compose`` interpolated together are fused again (a run among others
        becomes a nested ``Compose``). A history whose record of this was lost
        (edited, or copied without it) is replayed with ``fuse=True``.
        """
        from ..transforms.composition import Compose

        pairs = self._applied_transforms_and_runs(ignore_intensity, image_interpolation)
        transforms = [transform for transform, _ in pairs]
        if self._aligned_history_runs() is None:
            return Compose(transforms)
        runs = {run for _, run in pairs}
        if runs == {None}:
            return Compose(transforms, fuse=False)
        if len(runs) == 1:
            return Compose(transforms)
        children: list[Any] = []
        for run, group in itertools.groupby(pairs, key=lambda pair: pair[1]):
            members = [transform for transform, _ in group]
            children.extend(members if run is None else [Compose(members)])
        return Compose(children, fuse=False)

    def get_inverse_transform(
        self,
        warn: bool = True,
        ignore_intensity: bool = False,
        image_interpolation: str | None = None,
    ) -> Compose:
        """The inverses of the applied transforms, in reverse order.

        Args:
            warn: Warn about transforms that cannot be inverted (they are skipped).
            ignore_intensity: Skip intensity transforms.
            image_interpolation: Interpolation for scalar images in resampling transforms.
        """
        history = self.get_composed_history(
            ignore_intensity=ignore_intensity,
            image_interpolation=image_interpolation,
        )
        return history.inverse(warn=warn)

    def apply_inverse_transform(self, **kwargs: Any) -> Subject:
        """Undo the applied transforms; the result has an empty history.

        Args:
            **kwargs: Passed to :meth:`get_inverse_transform`.
        """
        inverted = self.get_inverse_transform(**kwargs)(self)
        inverted.clear_history()
        return inverted

    def clear_history(self) -> None:
        """Forget the applied transforms."""
        self.applied_transforms = []
        self._history_runs = []


def _equal(first: Any, second: Any) -> bool:
    try:
        return bool(first == second)
    except (TypeError, ValueError):
        return False
