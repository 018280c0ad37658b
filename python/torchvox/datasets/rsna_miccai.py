"""RSNA-MICCAI Brain Tumor Radiogenomic Classification (Kaggle): DICOM series per modality."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.dataset import SubjectsDataset
from ..data.image import ScalarImage
from ..data.subject import Subject
from ..types import TypePath
from .download import DatasetNotFoundError

__all__ = ["RSNAMICCAI"]


class RSNAMICCAI(SubjectsDataset):
    """The RSNA-MICCAI 2021 brain tumour dataset, downloaded beforehand from Kaggle.

    Download it with ``kaggle competitions download -c
    rsna-miccai-brain-tumor-radiogenomic-classification`` (Kaggle requires accepting
    the competition rules, so this class does not download). Subjects hold one
    :class:`ScalarImage` per modality (a DICOM folder, or its single file),
    ``BraTS21ID`` and, for the training set, ``MGMT_value``.

    Expected layout::

        root_dir/train_labels.csv           (columns BraTS21ID, MGMT_value)
        root_dir/train/00000/T1w/Image-1.dcm ...
        root_dir/test/00001/FLAIR/...

    Args:
        root_dir: Folder holding ``train`` and ``test``.
        train: Use the training set, else the test set.
        ignore_empty: Skip the three subjects with empty images (00109, 00123, 00709).
        modalities: Some of ``('T1w', 'T1wCE', 'T2w', 'FLAIR')``.
        **kwargs: Passed to :class:`SubjectsDataset`.

    Raises:
        DatasetNotFoundError: If the split folder is missing.
        ValueError: For an unknown modality.
    """

    url = "https://www.kaggle.com/c/rsna-miccai-brain-tumor-radiogenomic-classification"
    id_key = "BraTS21ID"
    label_key = "MGMT_value"
    bad_subjects = ("00109", "00123", "00709")
    all_modalities = ("T1w", "T1wCE", "T2w", "FLAIR")
    layout = (
        "  root_dir/train_labels.csv\n"
        "  root_dir/train/<5-digit id>/<modality>/<DICOM files>\n"
        "  root_dir/test/<5-digit id>/<modality>/<DICOM files>"
    )

    def __init__(
        self,
        root_dir: TypePath,
        train: bool = True,
        ignore_empty: bool = True,
        modalities: Sequence[str] = ("T1w", "T1wCE", "T2w", "FLAIR"),
        **kwargs: Any,
    ):
        self.root_dir = Path(root_dir).expanduser().resolve()
        self.modalities = [modalities] if isinstance(modalities, str) else list(modalities)
        for modality in self.modalities:
            if modality not in self.all_modalities:
                raise ValueError(f'Modality "{modality}" must be one of {self.all_modalities}')
        self.train = train
        subjects = self._get_subjects(self.root_dir, train, ignore_empty)
        super().__init__(subjects, **kwargs)

    def _get_subjects(self, root_dir: Path, train: bool, ignore_empty: bool) -> list[Subject]:
        labels: dict[str, int] = {}
        if train:
            csv_path = root_dir / "train_labels.csv"
            if csv_path.is_file():
                with csv_path.open(newline="") as handle:
                    labels = {
                        row[self.id_key].zfill(5): int(row[self.label_key])
                        for row in csv.DictReader(handle)
                    }
            else:
                warnings.warn("Labels CSV not found. Ignoring MGMT labels", stacklevel=3)
        subjects_dir = root_dir / ("train" if train else "test")
        if not subjects_dir.is_dir():
            raise DatasetNotFoundError(
                f"{subjects_dir} not found. Download the dataset from {self.url} (kaggle"
                " competitions download -c rsna-miccai-brain-tumor-radiogenomic-classification)"
                f" and extract it into {root_dir}.\nExpected layout:\n{self.layout}"
            )
        subjects = []
        for subject_dir in sorted(subjects_dir.iterdir()):
            subject_id = subject_dir.name
            if not subject_dir.is_dir() or not subject_id.isdigit():
                continue
            if ignore_empty and subject_id in self.bad_subjects:
                continue
            items: dict[str, object] = {self.id_key: subject_id}
            if train and labels:
                items[self.label_key] = labels[subject_id]
            for modality in self.modalities:
                image_dir = subject_dir / modality
                files = sorted(image_dir.iterdir()) if image_dir.is_dir() else []
                if not files:
                    raise DatasetNotFoundError(
                        f"No DICOM files in {image_dir}.\nExpected layout:\n{self.layout}"
                    )
                items[modality] = ScalarImage(files[0] if len(files) == 1 else image_dir)
            subjects.append(Subject(items))
        return subjects
