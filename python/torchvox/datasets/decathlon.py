"""Folders in the Medical Segmentation Decathlon / nnU-Net raw layout, as a SubjectsDataset."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..data.dataset import SubjectsDataset
from ..data.image import LabelMap, ScalarImage
from ..data.subject import Subject
from ..types import TypePath
from .download import DatasetNotFoundError

__all__ = ["DecathlonDataset"]

_SPLITS = {"train": "training", "training": "training", "test": "test", "testing": "test"}
_LAYOUT = (
    "  root/dataset.json   (MSD: 'training' [{'image', 'label'}], 'test', 'modality',\n"
    "                       'labels' {value: name}; nnU-Net v2: 'channel_names',\n"
    "                       'labels' {name: value}, 'file_ending')\n"
    "  root/imagesTr/<case>.nii.gz (MSD, channels in a 4D file) or\n"
    "  root/imagesTr/<case>_0000.nii.gz, <case>_0001.nii.gz ... (nnU-Net, one file per channel)\n"
    "  root/labelsTr/<case>.nii.gz\n"
    "  root/imagesTs/... (test images, same naming)"
)


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix


class DecathlonDataset(SubjectsDataset):
    """A Medical Segmentation Decathlon task, or an nnU-Net raw dataset, from a folder.

    Both layouts are recognised (see below): MSD's ``dataset.json`` listing the
    training pairs and test images (``./imagesTr/la_003.nii.gz``), and nnU-Net's one
    file per channel (``imagesTr/la_003_0000.nii.gz``) with or without a list. Each
    subject holds ``image`` (:class:`ScalarImage`; several channel files are
    concatenated along the channels, in channel order), ``label`` (:class:`LabelMap`,
    training split only) and ``case_id``.

    Expected layout::

        root/dataset.json
        root/imagesTr/  root/labelsTr/  root/imagesTs/

    Args:
        root: The task folder (e.g. ``Task02_Heart`` or ``Dataset002_Heart``).
        split: ``'training'`` (or ``'train'``) or ``'test'`` (or ``'testing'``).
        transform: Applied to each subject.
        **kwargs: Passed to :class:`SubjectsDataset`.

    Attributes:
        labels: ``{label value: name}``.
        channel_names: ``{channel index: modality name}``.
        metadata: The parsed ``dataset.json`` (empty if there is none).

    Raises:
        ValueError: For an unknown split, or a channel missing for a case.
        DatasetNotFoundError: If the folder, an image or a label is missing.
    """

    def __init__(
        self, root: TypePath, split: str = "training", transform: Any = None, **kwargs: Any
    ):
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {tuple(_SPLITS)}, got {split!r}")
        self.root = Path(root).expanduser()
        self.split = _SPLITS[split]
        images_dir = self.root / ("imagesTr" if self.split == "training" else "imagesTs")
        if not images_dir.is_dir():
            raise DatasetNotFoundError(
                f"{images_dir} not found. Download the task (e.g. from"
                f" http://medicaldecathlon.com) and extract it.\nExpected layout:\n{_LAYOUT}"
            )
        json_path = self.root / "dataset.json"
        self.metadata: dict[str, Any] = (
            json.loads(json_path.read_text()) if json_path.is_file() else {}
        )
        self.channel_names = {
            int(k): str(v)
            for k, v in (
                self.metadata.get("channel_names") or self.metadata.get("modality") or {}
            ).items()
        }
        self.labels = self._parse_labels(self.metadata.get("labels") or {})
        listed = self.metadata.get(self.split)
        cases = self._cases_from_list(listed) if listed else self._cases_from_folder(images_dir)
        if not cases:
            raise DatasetNotFoundError(f"No images in {images_dir}.\nExpected layout:\n{_LAYOUT}")
        subjects = []
        for case_id, image_paths in cases:
            missing = [p for p in image_paths if not p.is_file()]
            if missing:
                raise DatasetNotFoundError(
                    f"Image of case {case_id} not found: {missing[0]}.\nExpected layout:\n{_LAYOUT}"
                )
            items: dict[str, object] = {
                "case_id": case_id,
                "image": ScalarImage(image_paths[0] if len(image_paths) == 1 else image_paths),
            }
            if self.split == "training":
                label_path = self.root / "labelsTr" / f"{case_id}{_suffix(image_paths[0])}"
                if not label_path.is_file():
                    raise DatasetNotFoundError(
                        f"Label of case {case_id} not found: {label_path}."
                        f"\nExpected layout:\n{_LAYOUT}"
                    )
                items["label"] = LabelMap(label_path)
            subjects.append(Subject(items))
        super().__init__(subjects, transform=transform, **kwargs)

    @staticmethod
    def _parse_labels(labels: dict[str, Any]) -> dict[int, str]:
        parsed: dict[int, str] = {}
        for key, value in labels.items():
            if isinstance(value, int | list):  # nnU-Net v2: {name: value or [values]}
                for number in value if isinstance(value, list) else [value]:
                    parsed[int(number)] = str(key)
            else:  # MSD: {"0": "background"}
                parsed[int(key)] = str(value)
        return dict(sorted(parsed.items()))

    def _channel_files(self, path: Path) -> list[Path]:
        """The file itself (MSD), else its ``_XXXX`` channel files (nnU-Net v1 lists)."""
        if path.is_file():
            return [path]
        suffix = _suffix(path)
        stem = path.name[: -len(suffix)]
        pattern = re.compile(rf"{re.escape(stem)}_(\d{{4}}){re.escape(suffix)}$")
        channels = sorted(
            (int(m.group(1)), p)
            for p in path.parent.glob(f"{stem}_*")
            if (m := pattern.match(p.name))
        )
        return [p for _, p in channels] or [path]

    def _cases_from_list(self, listed: list[Any]) -> list[tuple[str, list[Path]]]:
        cases = []
        for entry in listed:
            relative = entry["image"] if isinstance(entry, dict) else entry
            path = (self.root / relative).resolve()
            if self.split == "test" and not path.exists():
                # MSD lists test images as ./imagesTs even for nnU-Net copies.
                path = self.root / "imagesTs" / path.name
            suffix = _suffix(path)
            cases.append((path.name[: -len(suffix)], self._channel_files(path)))
        return cases

    def _cases_from_folder(self, images_dir: Path) -> list[tuple[str, list[Path]]]:
        ending = self.metadata.get("file_ending", ".nii.gz")
        pattern = re.compile(rf"(.+)_(\d{{4}}){re.escape(ending)}$")
        grouped: dict[str, dict[int, Path]] = defaultdict(dict)
        plain: list[Path] = []
        for path in sorted(images_dir.iterdir()):
            if path.name.startswith(".") or not path.name.endswith(ending):
                continue
            match = pattern.match(path.name)
            if match:
                grouped[match.group(1)][int(match.group(2))] = path
            else:
                plain.append(path)
        cases = [(p.name[: -len(ending)], [p]) for p in plain]
        expected = len(self.channel_names) or None
        for case_id, channels in sorted(grouped.items()):
            count = expected or max(channels) + 1
            if sorted(channels) != list(range(count)):
                raise ValueError(
                    f"Case {case_id} has channels {sorted(channels)}, expected 0..{count - 1}"
                    f" ({images_dir})"
                )
            cases.append((case_id, [channels[i] for i in range(count)]))
        return sorted(cases)
