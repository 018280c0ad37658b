"""A PyTorch dataset of subjects."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import Dataset

from ..utils import get_subjects_from_batch
from .subject import Subject

__all__ = ["SubjectsDataset"]


class SubjectsDataset(Dataset[Subject]):
    """A dataset of :class:`Subject` instances, loaded and transformed on access.

    ``dataset[i]`` deep-copies subject ``i`` (cheap while its images are not loaded),
    loads its images and applies the transform, so the stored subjects never change.

    Args:
        subjects: Non-empty sequence of subjects.
        transform: Callable applied to each subject, e.g. a transform or ``Compose``.
        load_getitem: Load the images before transforming them; set ``False`` if the
            transform does not need all of them.

    Raises:
        TypeError: If ``subjects`` is not iterable or holds something else than subjects.
        ValueError: If ``subjects`` is empty or ``transform`` is not callable.
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        transform: Callable[[Subject], Subject] | None = None,
        load_getitem: bool = True,
    ):
        self._parse_subjects_list(subjects)
        self._subjects = subjects
        self._transform: Callable[[Subject], Subject] | None = None
        self.set_transform(transform)
        self.load_getitem = load_getitem

    def __len__(self) -> int:
        return len(self._subjects)

    def __getitem__(self, index: int) -> Subject:
        try:
            index = int(index)
        except (RuntimeError, TypeError, ValueError) as error:
            raise ValueError(
                f'Index "{index}" must be int or compatible dtype,'
                f' but an object of type "{type(index)}" was passed'
            ) from error
        return self.transform_subject(self.load_subject(index))

    def load_subject(self, index: int) -> Subject:
        """A copy of subject ``index``, loaded (if ``load_getitem``), not transformed.

        The first half of :meth:`__getitem__`: it draws no random numbers, so
        it may run ahead of time on another thread.
        """
        subject = copy.deepcopy(self._subjects[index])
        if self.load_getitem:
            subject.load()
        return subject

    def transform_subject(self, subject: Subject) -> Subject:
        """The second half of :meth:`__getitem__`: ``subject`` transformed."""
        if self._transform is not None:
            subject = self._transform(subject)
        return subject

    @classmethod
    def from_batch(cls, batch: dict[str, Any]) -> SubjectsDataset:
        """Build a dataset from a batch made by :class:`SubjectsLoader`."""
        return cls(get_subjects_from_batch(batch))

    def dry_iter(self) -> Sequence[Subject]:
        """The stored subjects, without loading or transforming them."""
        return self._subjects

    def set_transform(self, transform: Callable[[Subject], Subject] | None) -> None:
        """Replace the transform (``None`` for none).

        Raises:
            ValueError: If ``transform`` is not callable.
        """
        if transform is not None and not callable(transform):
            raise ValueError(
                f"The transform must be a callable object, but it has type {type(transform)}"
            )
        self._transform = transform

    @staticmethod
    def _parse_subjects_list(subjects: Any) -> None:
        try:
            iter(subjects)
        except TypeError as error:
            raise TypeError(f"Subject list must be an iterable, not {type(subjects)}") from error
        if len(subjects) == 0:
            raise ValueError("Subjects list is empty")
        for subject in subjects:
            if not isinstance(subject, Subject):
                raise TypeError(
                    "Subjects list must contain instances of torchvox.Subject,"
                    f' not "{type(subject)}"'
                )
