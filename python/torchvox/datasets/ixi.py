"""The IXI dataset (brain MRI of ~600 healthy subjects) and IXITiny (its small version)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.dataset import SubjectsDataset
from ..data.image import LabelMap, ScalarImage
from ..data.subject import Subject
from ..types import TypePath
from .download import DatasetNotFoundError, download_and_extract_archive

__all__ = ["IXI", "IXITiny"]


def _sorted_glob(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


def _subject_id(path: Path) -> str:
    """``'IXI002-Guys-0828'`` for ``IXI002-Guys-0828-T1.nii.gz``."""
    return "-".join(path.name.split("-")[:-1])


class IXI(SubjectsDataset):
    """The IXI dataset: T1, T2, PD, MRA and DTI brain MRI of healthy subjects (CC BY-SA 3.0).

    Each subject holds one :class:`ScalarImage` per modality (keys ``'T1'``, ``'T2'``...)
    and ``subject_id``. Subjects lacking one of the requested modalities are skipped.

    Expected layout (what ``download=True`` creates, one tar per modality)::

        root/T1/IXI002-Guys-0828-T1.nii.gz
        root/T2/IXI002-Guys-0828-T2.nii.gz
        ...

    Args:
        root: Folder holding one sub-folder per modality.
        download: Download (several GB) the modalities whose folder is missing.
        modalities: Some of ``('T1', 'T2', 'PD', 'MRA', 'DTI')``.
        **kwargs: Passed to :class:`SubjectsDataset` (e.g. ``transform``).

    Raises:
        ValueError: For an unknown modality.
        DatasetNotFoundError: If a modality folder is missing and cannot be downloaded.
    """

    base_url = "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI/IXI-{modality}.tar"
    md5_dict = {
        "T1": "34901a0593b41dd19c1a1f746eac2d58",
        "T2": "e3140d78730ecdd32ba92da48c0a9aaa",
        "PD": "88ecd9d1fa33cb4a2278183b42ffd749",
        "MRA": "29be7d2fee3998f978a55a9bdaf3407e",
        "DTI": "636573825b1c8b9e8c78f1877df3ee66",
    }

    def __init__(
        self,
        root: TypePath,
        download: bool = False,
        modalities: Sequence[str] = ("T1", "T2"),
        **kwargs: Any,
    ):
        if isinstance(modalities, str):
            modalities = (modalities,)
        if not modalities:
            raise ValueError("modalities must name at least one modality")
        for modality in modalities:
            if modality not in self.md5_dict:
                raise ValueError(f'Modality "{modality}" must be one of {tuple(self.md5_dict)}')
        root = Path(root).expanduser()
        if download:
            self._download(root, modalities)
        missing = [m for m in modalities if not (root / m).is_dir()]
        if missing:
            urls = ", ".join(self.base_url.format(modality=m) for m in missing)
            raise DatasetNotFoundError(
                f"IXI not found in {root} (missing {', '.join(missing)}). Use download=True"
                f" or download {urls} and extract each tar into root/<modality>/."
                f"\nExpected layout:\n{self.layout(root, modalities)}"
            )
        subjects = self._get_subjects_list(root, modalities)
        if not subjects:
            raise DatasetNotFoundError(
                f"No IXI subjects with all of {tuple(modalities)} in {root}."
                f"\nExpected layout:\n{self.layout(root, modalities)}"
            )
        super().__init__(subjects, **kwargs)

    @staticmethod
    def layout(root: Path, modalities: Sequence[str]) -> str:
        """Text description of the expected files."""
        return "\n".join(f"  {root}/{m}/IXI<number>-<site>-<id>-{m}.nii.gz" for m in modalities)

    @staticmethod
    def _get_subjects_list(root: Path, modalities: Sequence[str]) -> list[Subject]:
        first, *others = modalities
        subjects = []
        for path in _sorted_glob(root / first, "*.nii.gz"):
            subject_id = _subject_id(path)
            items: dict[str, object] = {"subject_id": subject_id, first: ScalarImage(path)}
            for modality in others:
                found = _sorted_glob(root / modality, f"{subject_id}-{modality}.nii.gz")
                if len(found) != 1:
                    break
                items[modality] = ScalarImage(found[0])
            else:
                subjects.append(Subject(items))
        return subjects

    def _download(self, root: Path, modalities: Sequence[str]) -> None:
        for modality in modalities:
            folder = root / modality
            if folder.is_dir():
                continue
            url = self.base_url.format(modality=modality)
            staging = root / f".{modality}.download"
            download_and_extract_archive(
                url,
                download_root=staging,
                md5=self.md5_dict[modality],
                remove_finished=True,
                layout=self.layout(root, [modality]),
            )
            staging.rename(folder)  # only a complete extraction gets the final name


class IXITiny(SubjectsDataset):
    """566 T1 brain MRI (83 x 44 x 55 voxels) of IXI with brain masks: a medical "MNIST".

    Subjects hold ``image`` (:class:`ScalarImage`), ``label`` (:class:`LabelMap`) and
    ``subject_id``.

    Expected layout::

        root/image/IXI002-Guys-0828_image.nii.gz
        root/label/IXI002-Guys-0828_label.nii.gz

    Args:
        root: Dataset folder.
        transform: Applied to each subject.
        download: Download the data if ``root`` does not exist.
        **kwargs: Passed to :class:`SubjectsDataset`.

    Raises:
        DatasetNotFoundError: If the files are missing and cannot be downloaded.
    """

    url = "https://www.dropbox.com/s/ogxjwjxdv5mieah/ixi_tiny.zip?dl=1"
    md5 = "bfb60f4074283d78622760230bfa1f98"
    layout = "  root/image/<subject>_image.nii.gz\n  root/label/<subject>_label.nii.gz"

    def __init__(
        self,
        root: TypePath,
        transform: Any = None,
        download: bool = False,
        **kwargs: Any,
    ):
        root = Path(root).expanduser()
        if download:
            self._download(root)
        images = _sorted_glob(root / "image", "*.nii.gz")
        labels = _sorted_glob(root / "label", "*.nii.gz")
        if not images or len(images) != len(labels):
            raise DatasetNotFoundError(
                f"IXITiny not found in {root} ({len(images)} images, {len(labels)} labels)."
                f" Use download=True or download {self.url} and extract it there."
                f"\nExpected layout:\n{self.layout}"
            )
        subjects = [
            Subject(
                image=ScalarImage(image),
                label=LabelMap(label),
                subject_id=_subject_id(image),
            )
            for image, label in zip(images, labels)
        ]
        super().__init__(subjects, transform=transform, **kwargs)

    def _download(self, root: Path) -> None:
        if (root / "image").is_dir() and (root / "label").is_dir():
            return
        staging = root.parent / f".{root.name}.download"
        download_and_extract_archive(
            self.url, download_root=staging, filename="ixi_tiny.zip", md5=self.md5,
            remove_finished=True, layout=self.layout,
        )  # fmt: skip
        extracted = staging / "ixi_tiny"
        root.mkdir(parents=True, exist_ok=True)
        for name in ("image", "label"):
            (extracted / name).rename(root / name)
        shutil.rmtree(staging)
