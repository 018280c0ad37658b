"""RSNA 2022 Cervical Spine Fracture Detection (Kaggle): CT series, segmentations, boxes."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..data.dataset import SubjectsDataset
from ..data.image import LabelMap, ScalarImage
from ..data.subject import Subject
from ..types import TypePath
from .download import DatasetNotFoundError

__all__ = ["RSNACervicalSpineFracture"]


def _csv_value(text: str) -> int | float | str:
    """A CSV cell as the number it spells, if it spells one (as pandas reads it)."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as handle:
        return [
            {key: _csv_value(value) for key, value in row.items()} for row in csv.DictReader(handle)
        ]


def _stem(path: Path) -> str:
    """``1.2.3.nii.gz`` -> ``1.2.3`` (study UIDs hold dots, so not ``Path.stem``)."""
    return path.name.replace(".gz", "").replace(".nii", "")


class RSNACervicalSpineFracture(SubjectsDataset):
    """The training set of the RSNA 2022 Cervical Spine Fracture Detection challenge.

    Download it from Kaggle first (``kaggle competitions download -c
    rsna-2022-cervical-spine-fracture-detection``) and extract it. Each subject
    holds the row of ``train.csv`` (``StudyInstanceUID``, ``patient_overall``,
    ``C1``... ``C7``), the CT series as ``ct`` (a DICOM folder), and optionally
    its segmentation as ``seg`` and its fracture boxes as ``boxes`` (a list of
    the rows of ``train_bounding_boxes.csv`` for the study).

    Expected layout::

        root_dir/train.csv
        root_dir/train_images/<StudyInstanceUID>/<n>.dcm
        root_dir/segmentations/<StudyInstanceUID>.nii      (some studies)
        root_dir/train_bounding_boxes.csv                   (columns StudyInstanceUID, ...)

    Args:
        root_dir: The extracted competition folder.
        add_segmentations: Add ``seg`` to the studies that have a segmentation.
        add_bounding_boxes: Add ``boxes`` to the studies that have boxes.
        **kwargs: Passed to :class:`SubjectsDataset` (e.g. ``transform``).

    Raises:
        DatasetNotFoundError: If a file or folder of the layout is missing.
    """

    UID = "StudyInstanceUID"
    url = "https://www.kaggle.com/competitions/rsna-2022-cervical-spine-fracture-detection"
    layout = (
        "  root_dir/train.csv\n"
        "  root_dir/train_images/<StudyInstanceUID>/<n>.dcm\n"
        "  root_dir/segmentations/<StudyInstanceUID>.nii\n"
        "  root_dir/train_bounding_boxes.csv"
    )

    def __init__(
        self,
        root_dir: TypePath,
        add_segmentations: bool = False,
        add_bounding_boxes: bool = False,
        **kwargs: Any,
    ):
        self.root_dir = Path(root_dir).expanduser().absolute()
        subjects = self._get_subjects(add_segmentations, add_bounding_boxes)
        super().__init__(subjects, **kwargs)

    def _require(self, path: Path) -> Path:
        if not path.exists():
            raise DatasetNotFoundError(
                f"{path} not found. Download the dataset from {self.url} (kaggle competitions"
                f" download -c rsna-2022-cervical-spine-fracture-detection) and extract it"
                f" in {self.root_dir}.\nExpected layout:\n{self.layout}"
            )
        return path

    def _get_subjects(self, add_segmentations: bool, add_bounding_boxes: bool) -> list[Subject]:
        images_dir = self._require(self.root_dir / "train_images")
        rows = _read_rows(self._require(self.root_dir / "train.csv"))
        segmentations: dict[str, Path] = {}
        if add_segmentations:
            folder = self._require(self.root_dir / "segmentations")
            segmentations = {_stem(path): path for path in sorted(folder.iterdir())}
        boxes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if add_bounding_boxes:
            for box in _read_rows(self._require(self.root_dir / "train_bounding_boxes.csv")):
                boxes[str(box[self.UID])].append(box)
        subjects = []
        for row in rows:
            uid = str(row[self.UID])
            items: dict[str, Any] = dict(row)
            items["ct"] = ScalarImage(self._require(images_dir / uid))
            if uid in segmentations:
                items["seg"] = LabelMap(segmentations[uid])
            if boxes.get(uid):
                items["boxes"] = boxes[uid]
            subjects.append(Subject(**items))
        return subjects
