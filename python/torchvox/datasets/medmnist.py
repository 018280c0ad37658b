"""The 3D MedMNIST v2 datasets: 28 x 28 x 28 volumes with classification labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.dataset import SubjectsDataset
from ..data.image import ScalarImage
from ..data.subject import Subject
from ..types import TypePath
from ..utils import get_torchvox_cache_dir
from .download import DatasetNotFoundError, download_url

__all__ = [
    "AdrenalMNIST3D",
    "FractureMNIST3D",
    "MedMNIST",
    "NoduleMNIST3D",
    "OrganMNIST3D",
    "SynapseMNIST3D",
    "VesselMNIST3D",
]


class MedMNIST(SubjectsDataset):
    """Base class of the 3D MedMNIST v2 datasets (Yang et al. 2023; CC BY 4.0).

    Each subject holds ``image`` (a ``(1, 28, 28, 28)`` :class:`ScalarImage`) and
    ``labels`` (a tensor of class indices). The ``.npz`` file of the dataset (e.g.
    ``organmnist3d.npz``, with arrays ``train_images``, ``train_labels``,
    ``val_images``...) is downloaded from Zenodo into ``root`` on first use.

    Expected layout::

        root/organmnist3d.npz        (root defaults to ~/.cache/torchvox/MedMNIST)

    Args:
        split: ``'train'``/``'training'``, ``'val'``/``'validation'`` or
            ``'test'``/``'testing'``.
        root: Folder of the ``.npz`` files.
        download: Download the file if it is missing.
        **kwargs: Passed to :class:`SubjectsDataset`.

    Raises:
        ValueError: For an unknown split.
        DatasetNotFoundError: If the file is missing and cannot be downloaded.
    """

    BASE_URL = "https://zenodo.org/record/5208230/files"
    SPLITS = ("train", "training", "val", "validation", "test", "testing")
    _ALIASES = {"training": "train", "validation": "val", "testing": "test"}

    def __init__(
        self, split: str, *, root: TypePath | None = None, download: bool = True, **kwargs: Any
    ):
        if type(self) is MedMNIST:
            raise TypeError("Use one of the MedMNIST subclasses, e.g. OrganMNIST3D")
        if split not in self.SPLITS:
            raise ValueError(f"The split must be one of {self.SPLITS}, got {split!r}")
        split = self._ALIASES.get(split, split)
        folder = Path(root).expanduser() if root is not None else self.default_root()
        path = folder / self.filename
        if not path.is_file():
            layout = f"  {path} (arrays {split}_images (N, 28, 28, 28), {split}_labels (N, k))"
            if not download:
                raise DatasetNotFoundError(
                    f"{path} not found. Download {self.url} there, or use download=True."
                    f"\nExpected layout:\n{layout}"
                )
            download_url(self.url, folder, filename=self.filename, layout=layout)
        with np.load(path) as arrays:
            images = arrays[f"{split}_images"]
            labels = arrays[f"{split}_labels"]
        subjects = [
            Subject(
                image=ScalarImage(tensor=np.ascontiguousarray(image[np.newaxis])),
                labels=torch.from_numpy(np.asarray(label)),
            )
            for image, label in zip(images, labels)
        ]
        super().__init__(subjects, **kwargs)

    @staticmethod
    def default_root() -> Path:
        """``~/.cache/torchvox/MedMNIST``."""
        return get_torchvox_cache_dir() / "MedMNIST"

    @property
    def filename(self) -> str:
        """Name of the dataset's ``.npz`` file, e.g. ``'organmnist3d.npz'``."""
        return f"{type(self).__name__.lower()}.npz"

    @property
    def url(self) -> str:
        """Download address of the ``.npz`` file."""
        return f"{self.BASE_URL}/{self.filename}?download=1"


class OrganMNIST3D(MedMNIST):
    """Abdominal CT organs (11 classes). See :class:`MedMNIST`."""


class NoduleMNIST3D(MedMNIST):
    """Lung nodules in chest CT (benign/malignant). See :class:`MedMNIST`."""


class AdrenalMNIST3D(MedMNIST):
    """Adrenal gland shapes (normal/mass). See :class:`MedMNIST`."""


class FractureMNIST3D(MedMNIST):
    """Rib fractures in CT (3 classes). See :class:`MedMNIST`."""


class VesselMNIST3D(MedMNIST):
    """Brain vessel shapes (vessel/aneurysm). See :class:`MedMNIST`."""


class SynapseMNIST3D(MedMNIST):
    """Electron microscopy synapses (excitatory/inhibitory). See :class:`MedMNIST`."""
