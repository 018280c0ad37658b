"""BITE: MR images of brain tumour patients before and after resection (MNI)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..data.dataset import SubjectsDataset
from ..data.image import Image, LabelMap, ScalarImage
from ..data.subject import Subject
from ..types import TypePath
from .download import DatasetNotFoundError, download_and_extract_archive

__all__ = ["BITE3"]


class BITE3(SubjectsDataset):
    """Group 3 of BITE: pre- and post-resection MRI of 13 patients, in MINC.

    Each subject holds ``preop`` and ``postop`` (ScalarImage) and a label map
    per tumour segmentation file, named after the file's stem without its
    ``NN_`` prefix. Subject 13 has no MRI and is skipped, as in TorchIO. See
    the BITE website of the Montreal Neurological Institute for the terms of
    use.

    Expected layout::

        root/group3/01/01_preop_mri.mnc
        root/group3/01/01_postop_mri.mnc
        root/group3/01/01_..tumor...mnc      (any number, optional)
        ... up to root/group3/14 (no 13)

    Args:
        root: Folder holding ``group3``.
        transform: Applied to each subject.
        download: Download and extract ``group3.tar.gz`` if ``root/group3`` is missing.
        **kwargs: Passed to :class:`SubjectsDataset`.

    Raises:
        DatasetNotFoundError: If an image is missing and cannot be downloaded.
    """

    base_url = "http://www.bic.mni.mcgill.ca/uploads/Services/"
    dirname = "group3"
    md5 = "e415b63887c40b727c45552614b44634"
    #: Subjects of group 3 that have MRI (number 13 has none).
    subject_numbers = tuple(n for n in range(1, 15) if n != 13)
    layout = (
        "  root/group3/<NN>/<NN>_preop_mri.mnc\n"
        "  root/group3/<NN>/<NN>_postop_mri.mnc\n"
        "  root/group3/<NN>/<NN>_*tumor*.mnc (optional)\n"
        "  for NN = 01 to 14, without 13"
    )

    def __init__(
        self, root: TypePath, transform: Any = None, download: bool = False, **kwargs: Any
    ):
        root = Path(root).expanduser().absolute()
        if download and not (root / self.dirname).is_dir():
            self._download(root)
        self.kwargs = kwargs
        super().__init__(self._get_subjects_list(root), transform=transform, **kwargs)

    @property
    def url(self) -> str:
        """Where the archive of the group is downloaded from."""
        return f"{self.base_url}{self.dirname}.tar.gz"

    def _download(self, root: Path) -> None:
        # Extract into a staging folder: only a complete extraction gets the final name.
        staging = root / f".{self.dirname}.download"
        shutil.rmtree(staging, ignore_errors=True)
        download_and_extract_archive(
            self.url, download_root=staging, md5=self.md5, remove_finished=True,
            layout=self.layout, filename=f"{self.dirname}.tar.gz",
        )  # fmt: skip
        (staging / self.dirname).rename(root / self.dirname)
        shutil.rmtree(staging, ignore_errors=True)

    def _get_subjects_list(self, root: Path) -> list[Subject]:
        subjects = []
        for number in self.subject_numbers:
            subject_id = f"{number:02d}"
            folder = root / self.dirname / subject_id
            images: dict[str, Image] = {}
            for name in ("preop", "postop"):
                path = folder / f"{subject_id}_{name}_mri.mnc"
                if not path.is_file():
                    raise DatasetNotFoundError(
                        f"BITE3 image not found: {path}. Use download=True or download"
                        f" {self.url} and extract it in {root}.\nExpected layout:\n{self.layout}"
                    )
                images[name] = ScalarImage(path)
            for path in sorted(folder.glob("*tumor*")):
                # "01_tumor1.mnc" -> "tumor1"
                images[Path(path.name).stem[len(subject_id) + 1 :]] = LabelMap(path)
            subjects.append(Subject(images))
        return subjects
