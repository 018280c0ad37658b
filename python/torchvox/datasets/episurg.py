"""EPISURG: post-operative T1 MRI of 430 epilepsy surgery patients, with resection masks."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

from ..data.dataset import SubjectsDataset
from ..data.image import LabelMap, ScalarImage
from ..data.subject import Subject
from ..types import TypePath
from .download import DatasetNotFoundError, download_and_extract_archive

__all__ = ["EPISURG"]


class EPISURG(SubjectsDataset):
    """EPISURG (UCL Research Data Repository; data use agreement applies).

    Subjects hold ``postop_mri``, ``preop_mri`` when available, ``seg_1``... (the
    raters' resection cavity masks) and the metadata ``subject_id``, ``hemisphere``
    and ``surgery_type``.

    Expected layout::

        root/EPISURG/subjects.csv                  (columns Subject, Hemisphere, Type)
        root/EPISURG/subjects/sub-0001/preop/sub-0001_preop-t1mri.nii.gz      (optional)
        root/EPISURG/subjects/sub-0001/postop/sub-0001_postop-t1mri.nii.gz
        root/EPISURG/subjects/sub-0001/postop/sub-0001_postop-seg-1.nii.gz   (optional)

    Args:
        root: Folder holding ``EPISURG``.
        transform: Applied to each subject.
        download: Download (several GB) if ``root/EPISURG`` is missing.
        **kwargs: Passed to :class:`SubjectsDataset`.

    Raises:
        DatasetNotFoundError: If the data are missing and cannot be downloaded.
    """

    data_url = "https://s3-eu-west-1.amazonaws.com/pstorage-ucl-2748466690/26153588/EPISURG.zip"
    md5 = "5ec5831a2c6fbfdc8489ba2910a6504b"
    layout = (
        "  root/EPISURG/subjects.csv\n"
        "  root/EPISURG/subjects/<id>/preop/<id>_preop-t1mri.nii.gz (optional)\n"
        "  root/EPISURG/subjects/<id>/postop/<id>_postop-t1mri.nii.gz\n"
        "  root/EPISURG/subjects/<id>/postop/<id>_postop-seg-<rater>.nii.gz (optional)"
    )

    def __init__(
        self, root: TypePath, transform: Any = None, download: bool = False, **kwargs: Any
    ):
        root = Path(root).expanduser().absolute()
        if download and not (root / "EPISURG").is_dir():
            # Extract into a staging folder: only a complete extraction gets the final name.
            staging = root / ".EPISURG.download"
            shutil.rmtree(staging, ignore_errors=True)
            download_and_extract_archive(
                self.data_url, download_root=staging, md5=self.md5, remove_finished=True,
                layout=self.layout, filename="EPISURG.zip",
            )  # fmt: skip
            (staging / "EPISURG").rename(root / "EPISURG")
            shutil.rmtree(staging, ignore_errors=True)
        csv_path = root / "EPISURG" / "subjects.csv"
        if not csv_path.is_file():
            raise DatasetNotFoundError(
                f"EPISURG not found in {root}. Use download=True or download"
                f" {self.data_url} and extract it there.\nExpected layout:\n{self.layout}"
            )
        self.kwargs = kwargs
        super().__init__(self._get_subjects_list(root), transform=transform, **kwargs)

    def _get_subjects_list(self, root: Path) -> list[Subject]:
        subjects_dir = root / "EPISURG" / "subjects"
        subjects = []
        with (root / "EPISURG" / "subjects.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                subject_id = row["Subject"]
                items: dict[str, object] = {
                    "subject_id": subject_id,
                    "hemisphere": row["Hemisphere"],
                    "surgery_type": row["Type"],
                }
                preop = sorted((subjects_dir / subject_id / "preop").glob("*preop*"))
                if len(preop) > 1:
                    raise ValueError(f"Several pre-operative images for {subject_id}: {preop}")
                if preop:
                    items["preop_mri"] = ScalarImage(preop[0])
                postop_dir = subjects_dir / subject_id / "postop"
                postop = sorted(postop_dir.glob("*postop-t1mri*"))
                if not postop:
                    raise DatasetNotFoundError(
                        f"No post-operative MRI for {subject_id} in {postop_dir}."
                        f"\nExpected layout:\n{self.layout}"
                    )
                items["postop_mri"] = ScalarImage(postop[0])
                for seg_path in sorted(postop_dir.glob("*seg*")):
                    # ..._postop-seg-<rater>.nii.gz: the rater is the character before ".nii"
                    rater = seg_path.name.split(".")[0][-1]
                    items[f"seg_{rater}"] = LabelMap(seg_path)
                subjects.append(Subject(items))
        return subjects

    def _subset(self, subjects: list[Subject]) -> SubjectsDataset:
        return SubjectsDataset(subjects, transform=self._transform, **self.kwargs)

    def _with_key(self, text: str) -> list[Subject]:
        return [s for s in self._subjects if any(text in name for name in s)]

    def get_labeled(self) -> SubjectsDataset:
        """Subjects with at least one manual segmentation."""
        return self._subset(self._with_key("seg"))

    def get_unlabeled(self) -> SubjectsDataset:
        """Subjects without manual segmentations."""
        labeled = {id(s) for s in self._with_key("seg")}
        return self._subset([s for s in self._subjects if id(s) not in labeled])

    def get_paired(self) -> SubjectsDataset:
        """Subjects with both pre- and post-operative MRI."""
        return self._subset(self._with_key("preop"))
