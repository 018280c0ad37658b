"""CT-RATE: chest CT volumes with radiology reports and abnormality labels (Hugging Face)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.dataset import SubjectsDataset
from ..data.image import ScalarImage
from ..data.subject import Subject
from ..types import TypePath
from .download import DatasetNotFoundError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CtRate"]

#: The columns that identify an image, parsed from its file name.
_INDEX_COLUMNS = ["subject_id", "scan_id", "reconstruction_id"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as error:
        raise ImportError(
            "CtRate reads the dataset's tables with pandas: pip install pandas (or torchvox[csv])"
        ) from error
    return pandas


class CtRate(SubjectsDataset):
    """The CT-RATE dataset (``ibrahimhamamci/CT-RATE`` on Hugging Face), downloaded beforehand.

    One subject per patient, holding one :class:`ScalarImage` per scan and
    reconstruction, named ``scan_<scan>_reconstruction_<n>``. Each image
    carries its row of the metadata table, its 18 abnormality labels, and its
    English report (a dict of :attr:`REPORT_KEYS`) under ``report_key``. The
    joined table is :attr:`metadata`, indexed by subject, scan and
    reconstruction.

    Expected layout (``<split>`` is ``train`` or ``valid``, ``<table>`` is
    ``train`` or ``validation``)::

        root/dataset/metadata/<table>_metadata.csv
        root/dataset/radiology_text_reports/<table>_reports.csv
        root/dataset/multi_abnormality_labels/<split>_predicted_labels.csv
        root/dataset/<split>_fixed/<split>_<patient>/<split>_<patient>_<scan>/<name>.nii.gz
        (or root/dataset/<split>/... for the files without fixed metadata)

    Args:
        root: Folder the dataset was downloaded to.
        split: ``'train'``, or ``'valid'`` (``'validation'`` is accepted too).
        num_subjects: Keep only the first ``num_subjects`` patients of the table.
        report_key: Name of the report dict in each image.
        sizes: In-plane sizes (``Rows``) of the images to keep; all three of
            512, 768 and 1024 if ``None``.
        load_fixed: Read the files whose spatial metadata the dataset's
            maintainers corrected (``<split>_fixed``) rather than the originals.
        verify_paths: Check at construction that every image file exists.
        **kwargs: Passed to :class:`SubjectsDataset` (e.g. ``transform``).

    Raises:
        ValueError: For an unknown split.
        DatasetNotFoundError: If a table of the layout is missing.
        ImportError: If pandas is not installed.
    """

    _REPO_ID = "ibrahimhamamci/CT-RATE"
    _FILENAME_KEY = "VolumeName"
    _SIZES = [512, 768, 1024]
    url = f"https://huggingface.co/datasets/{_REPO_ID}"
    #: Columns of the abnormality labels table.
    ABNORMALITIES = [
        "Medical material",
        "Arterial wall calcification",
        "Cardiomegaly",
        "Pericardial effusion",
        "Coronary artery wall calcification",
        "Hiatal hernia",
        "Lymphadenopathy",
        "Emphysema",
        "Atelectasis",
        "Lung nodule",
        "Lung opacity",
        "Pulmonary fibrotic sequela",
        "Pleural effusion",
        "Mosaic attenuation pattern",
        "Peribronchial thickening",
        "Consolidation",
        "Bronchiectasis",
        "Interlobular septal thickening",
    ]
    #: Columns of the reports table gathered into each image's report dict.
    REPORT_KEYS = ["ClinicalInformation_EN", "Findings_EN", "Impressions_EN", "Technique_EN"]

    def __init__(
        self,
        root: TypePath,
        split: str = "train",
        *,
        num_subjects: int | None = None,
        report_key: str = "report",
        sizes: list[int] | None = None,
        load_fixed: bool = True,
        verify_paths: bool = False,
        **kwargs: Any,
    ):
        self._root_dir = Path(root)
        self._split = self._parse_split(split)
        self._num_subjects = num_subjects
        self._report_key = report_key
        self._sizes = list(self._SIZES if sizes is None else sizes)
        self._load_fixed = load_fixed
        self._verify_paths = verify_paths
        self.metadata = self._get_metadata()
        super().__init__(self._get_subjects_list(self.metadata), **kwargs)

    @staticmethod
    def _parse_split(split: str) -> str:
        """``'train'`` or ``'valid'`` (from ``'validation'`` too).

        Raises:
            ValueError: For any other name.
        """
        if split in ("valid", "validation"):
            return "valid"
        if split != "train":
            raise ValueError(f"Invalid split '{split}'. Use 'train' or 'valid'")
        return split

    def _table(self, folder: str, name: str) -> pd.DataFrame:
        path = self._root_dir / "dataset" / folder / name
        if not path.is_file():
            raise DatasetNotFoundError(
                f"{path} not found. Download CT-RATE from {self.url} into {self._root_dir}."
                "\nExpected layout:\n  root/dataset/metadata/<table>_metadata.csv\n"
                "  root/dataset/radiology_text_reports/<table>_reports.csv\n"
                "  root/dataset/multi_abnormality_labels/<split>_predicted_labels.csv\n"
                "  root/dataset/<split>_fixed/<split>_<patient>/<split>_<patient>_<scan>/"
                "<name>.nii.gz"
            )
        return _pandas().read_csv(path)

    def _get_metadata(self) -> pd.DataFrame:
        """The metadata of the kept images, joined with their reports and labels."""
        # The metadata and reports tables spell the validation split in full.
        table = "validation" if self._split == "valid" else "train"
        metadata = self._table("metadata", f"{table}_metadata.csv")
        metadata = metadata[metadata["Rows"].astype(int).isin(self._sizes)].copy()
        # "train_12_a_2.nii.gz" -> patient 12, scan a, reconstruction 2.
        names = metadata[self._FILENAME_KEY].str.extract(r"^[^_]+_(\d+)_([^_]+)_(\d+)\.nii\.gz$")
        metadata[_INDEX_COLUMNS] = names.to_numpy()
        if self._num_subjects is not None:
            kept = metadata["subject_id"].unique()[: self._num_subjects]
            metadata = metadata[metadata["subject_id"].isin(kept)]
        pandas = _pandas()
        for extra in (
            self._table("radiology_text_reports", f"{table}_reports.csv"),
            self._table("multi_abnormality_labels", f"{self._split}_predicted_labels.csv"),
        ):
            metadata = pandas.merge(metadata, extra, on=self._FILENAME_KEY, how="left")
        return metadata.set_index(_INDEX_COLUMNS)

    def _get_subjects_list(self, metadata: pd.DataFrame) -> list[Subject]:
        """One subject per patient, in the order of their (string) identifiers."""
        return [
            self._get_subject(str(subject_id), rows)
            for subject_id, rows in metadata.reset_index().groupby("subject_id")
        ]

    def _get_subject(self, subject_id: str, rows: pd.DataFrame) -> Subject:
        items: dict[str, object] = {"subject_id": subject_id}
        for _, row in rows.iterrows():
            key = f"scan_{row['scan_id']}_reconstruction_{row['reconstruction_id']}"
            items[key] = self._instantiate_image(row)
        return Subject(items)

    def _instantiate_image(self, row: pd.Series) -> ScalarImage:
        """The image of one metadata row, carrying the row and its report."""
        values = {str(key): value for key, value in row.to_dict().items()}
        filename = values[self._FILENAME_KEY]
        if not isinstance(filename, str):
            raise TypeError(f"Expected {self._FILENAME_KEY} to be a string, not {type(filename)!r}")
        report = {}
        for key in self.REPORT_KEYS:
            text = values.pop(key)
            if not isinstance(text, str):
                raise TypeError(f"Expected report field {key!r} to be a string, not {type(text)!r}")
            report[key] = text
        values[self._report_key] = report
        path = self._root_dir / self._get_image_path(filename, load_fixed=self._load_fixed)
        return ScalarImage(path, verify_path=self._verify_paths, **values)

    @staticmethod
    def _get_image_path(filename: str, load_fixed: bool) -> Path:
        """Where ``filename`` sits in the dataset, relative to its root.

        Example: ``train_2_a_1.nii.gz`` is in
        ``dataset/train_fixed/train_2/train_2_a/`` (``dataset/train/...`` if
        not ``load_fixed``).
        """
        split, patient, scan = filename.split("_")[:3]
        split_folder = f"{split}_fixed" if load_fixed else split
        patient_folder = f"{split}_{patient}"
        return Path("dataset", split_folder, patient_folder, f"{patient_folder}_{scan}", filename)
