"""Conversion between TorchIO and torchvox objects, to migrate a code base step by step.

:func:`from_torchio` turns TorchIO images, subjects, datasets and transforms into their
torchvox equivalents; :func:`to_torchio` does the reverse. Image data are shared, not
copied (the tensor of a loaded image is passed as is; an image not loaded yet stays
lazy, with its path), and affines, image classes, metadata items and subject histories
are preserved. Transforms are rebuilt by class name from their constructor arguments,
read from the attributes of the source object.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["from_torchio", "to_torchio"]

#: Keys an image manages itself (the same in both libraries).
_PROTECTED = ("data", "affine", "type", "path", "stem")
#: Base constructor arguments and the attribute that stores each.
_BASE_ARGUMENTS = {
    "p": "probability",
    "copy": "copy",
    "include": "include",
    "exclude": "exclude",
    "keep": "keep",
    "label_keys": "label_keys",
}


def _import_torchio() -> ModuleType:
    try:
        import torchio
    except ImportError as error:
        raise ImportError(
            "Converting to TorchIO objects needs torchio: pip install torchio"
        ) from error
    return torchio


def _torchvox() -> ModuleType:
    import torchvox

    return torchvox


def from_torchio(obj: Any) -> Any:
    """Convert a TorchIO object into the torchvox equivalent.

    Args:
        obj: A ``torchio.Image`` (any subclass), ``Subject``, ``SubjectsDataset``,
            ``Transform`` (including ``Compose`` and ``OneOf``), or a list/tuple/dict of
            them. Other objects are returned unchanged.

    Returns:
        The torchvox object: same image class, data (shared), affine, metadata and
        history; transforms of the same name with the same arguments.

    Raises:
        ValueError: If torchvox has no transform of that name, or the arguments do not
            fit its constructor.
    """
    return _Converter(source=_import_torchio(), target=_torchvox())(obj)


def to_torchio(obj: Any) -> Any:
    """Convert a torchvox object into the TorchIO equivalent (see :func:`from_torchio`).

    Raises:
        ImportError: If TorchIO is not installed.
        ValueError: If TorchIO has no transform of that name (e.g. ``SomeOf``).
    """
    return _Converter(source=_torchvox(), target=_import_torchio())(obj)


class _Converter:
    def __init__(self, source: ModuleType, target: ModuleType):
        self.source = source
        self.target = target

    def __call__(self, obj: Any) -> Any:
        source, target = self.source, self.target
        if isinstance(obj, target.Image | target.Subject | target.transforms.Transform):
            return obj  # already converted
        if isinstance(obj, source.Image):
            return self.image(obj)
        if isinstance(obj, source.Subject):
            return self.subject(obj)
        if isinstance(obj, source.SubjectsDataset):
            return self.dataset(obj)
        if isinstance(obj, source.transforms.Transform):
            return self.transform(obj)
        if isinstance(obj, list | tuple):
            return type(obj)(self(item) for item in obj)
        if isinstance(obj, dict) and not isinstance(obj, source.Image | source.Subject):
            return {key: self(value) for key, value in obj.items()}
        return obj

    # ---------------------------------------------------------------------- data

    def image(self, image: Any) -> Any:
        target_class = getattr(self.target, type(image).__name__, None)
        if not isinstance(target_class, type) or not issubclass(target_class, self.target.Image):
            target_class = self.target.Image
        metadata = {
            key: copy.deepcopy(value) for key, value in dict.items(image) if key not in _PROTECTED
        }
        loaded = bool(getattr(image, "_loaded", True))
        kwargs: dict[str, Any] = {"check_nans": getattr(image, "check_nans", False), **metadata}
        if target_class is self.target.Image:
            kwargs["type"] = image.type
        reader = getattr(image, "reader", None)
        source_reader = getattr(self.source.data.io, "read_image", None)
        if reader is not None and reader is not source_reader:
            kwargs["reader"] = reader  # a custom reader works in both libraries
        path = image.path if image.path not in (None, "") else None
        if loaded:
            return target_class(
                tensor=image.data, affine=image.affine, path=path, verify_path=False, **kwargs
            )
        return target_class(path=path, verify_path=False, **kwargs)

    def subject(self, subject: Any) -> Any:
        items = {
            key: self.image(value) if isinstance(value, self.source.Image) else copy.deepcopy(value)
            for key, value in dict.items(subject)
        }
        converted = self.target.Subject(items)
        converted.applied_transforms = copy.deepcopy(list(subject.applied_transforms))
        return converted

    def dataset(self, dataset: Any) -> Any:
        subjects = [self.subject(subject) for subject in dataset.dry_iter()]
        transform = getattr(dataset, "_transform", None)
        if transform is not None:
            transform = self(transform)
        return self.target.SubjectsDataset(
            subjects, transform=transform, load_getitem=dataset.load_getitem
        )

    # ----------------------------------------------------------------- transforms

    def _target_class(self, name: str) -> type:
        found = getattr(self.target.transforms, name, None)
        if not isinstance(found, type):
            found = getattr(self.target, name, None)
        if not isinstance(found, type):
            library = self.target.__name__
            raise ValueError(f'{library} has no transform named "{name}"; it cannot be converted')
        return found

    def transform(self, transform: Any) -> Any:
        name = type(transform).__name__
        target_class = self._target_class(name)
        base = {
            argument: getattr(transform, attribute)
            for argument, attribute in _BASE_ARGUMENTS.items()
            if hasattr(transform, attribute)
        }
        if name == "Compose":
            return target_class([self(t) for t in transform.transforms], **base)
        if name in ("OneOf", "SomeOf"):
            children = {self.transform(t): p for t, p in transform.transforms_dict.items()}
            arguments = self._arguments(transform, target_class, skip={"transforms"})
            return target_class(children, **{**arguments, **base})
        arguments = self._arguments(transform, target_class)
        try:
            converted = target_class(**{**arguments, **base})
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Could not convert {transform!r} to {target_class}: {error}"
            ) from error
        if getattr(transform, "invert_transform", False):
            # An inverted deterministic transform (from inverse()) stays inverted.
            converted.invert_transform = True
        return converted

    @staticmethod
    def _arguments(
        transform: Any, target_class: Callable[..., Any], skip: set[str] | None = None
    ) -> dict[str, Any]:
        """Constructor arguments of ``target_class`` found as attributes of ``transform``.

        The reproducing arguments (what the history records) win; random transforms
        record none, so their parsed ranges are read from the attributes of the same
        names, which both libraries accept back.
        """
        reproducing: dict[str, Any] = {}
        getter = getattr(transform, "_get_reproducing_arguments", None)
        if getter is not None:
            reproducing = dict(getter())
        parameters = inspect.signature(target_class).parameters
        arguments = {}
        for name, parameter in parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if name in (skip or set()) or name in _BASE_ARGUMENTS:
                continue
            if name in reproducing:
                arguments[name] = reproducing[name]
            elif hasattr(transform, name):
                arguments[name] = getattr(transform, name)
        return arguments
