"""Reference subjects fetched on first use: MNI templates, FPG, 3D Slicer and ITK-SNAP samples.

Each class is a :class:`Subject` whose files live in ``~/.cache/torchvox/<name>``. If
the files are missing they are downloaded (and extracted) there; when that fails, e.g.
without network access, a :class:`~torchvox.datasets.download.DatasetNotFoundError`
names the URL and the files expected, so they can be copied in place by hand.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..constants import DATA_REPO
from ..data.image import LabelMap, ScalarImage
from ..data.io import read_matrix
from ..data.subject import Subject
from ..utils import get_torchvox_cache_dir
from .download import (
    DatasetNotFoundError,
    download_and_extract_archive,
    download_url,
    require_files,
)

__all__ = [
    "FPG",
    "T1T2",
    "AorticValve",
    "BrainTumor",
    "Colin27",
    "ICBM2009CNonlinearSymmetric",
    "Pediatric",
    "Sheep",
    "Slicer",
    "SubjectITKSNAP",
    "SubjectMNI",
]


def _first_existing(candidates: Sequence[Path]) -> Path:
    """The first existing path, else the first candidate (reported as missing later)."""
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


def _nifti(folder: Path, stem: str) -> Path:
    """``stem.nii.gz`` or ``stem.nii``, whichever exists."""
    return _first_existing([folder / f"{stem}.nii.gz", folder / f"{stem}.nii"])


def _layout(paths: Sequence[Path]) -> str:
    return "\n".join(f"  {path}" for path in paths)


def _fetch_archive(
    folder: Path,
    url: str,
    filename: str,
    required: Callable[[], list[Path]],
    md5: str | None = None,
    after_extraction: Callable[[], None] | None = None,
) -> list[Path]:
    """Make sure ``required()`` files exist in ``folder``, downloading the archive if not.

    The archive is extracted into a staging folder whose content is then moved into
    ``folder``, so an interrupted download leaves no half-extracted dataset behind.
    """
    paths = required()
    if all(path.exists() for path in paths):
        return paths
    staging = folder.parent / f".{folder.name}.download"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        try:
            download_and_extract_archive(
                url, download_root=staging, filename=filename, md5=md5, remove_finished=True
            )
        except DatasetNotFoundError as error:
            raise DatasetNotFoundError(
                f"{error}\nWithout network access, download {url} on another machine and"
                f" extract it into {folder}.\nExpected layout:\n{_layout(paths)}"
            ) from error
        folder.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if after_extraction is not None:
        after_extraction()
    paths = required()
    require_files(paths, url, _layout(paths))
    return paths


class SubjectMNI(Subject):
    """Base class of the templates of the Montreal Neurological Institute."""

    url_base = "http://packages.bic.mni.mcgill.ca/mni-models/"

    @staticmethod
    def cache_folder(name: str) -> Path:
        """``~/.cache/torchvox/<name>``."""
        return get_torchvox_cache_dir() / name


#: Tissue classes of the 2008 Colin27 label map.
TISSUES_2008 = {
    1: "Cerebro-spinal fluid",
    2: "Gray Matter",
    3: "White Matter",
    4: "Fat",
    5: "Muscles",
    6: "Skin and Muscles",
    7: "Skull",
    9: "Fat 2",
    10: "Dura",
    11: "Marrow",
    12: "Vessels",
}


class Colin27(SubjectMNI):
    """The Colin27 average brain (MNI), version 1998 (1 mm) or 2008 (0.5 mm).

    Images: 1998: ``t1``, ``head`` and ``brain`` masks; 2008: ``t1``, ``t2``, ``pd`` and
    ``cls`` (tissue classes, :data:`TISSUES_2008`, as ``cls['labels']``).

    Expected layout (``~/.cache/torchvox/mni_colin27_<version>_nifti``; ``.nii`` or
    ``.nii.gz``): 1998: ``colin27_t1_tal_lin.nii``, ``colin27_t1_tal_lin_headmask.nii``,
    ``colin27_t1_tal_lin_mask.nii``; 2008: ``colin27_{t1,t2,pd,cls}_tal_hires.nii``.

    Args:
        version: 1998 or 2008.

    Raises:
        ValueError: For another version.
        DatasetNotFoundError: If the files are missing and cannot be downloaded.
    """

    NAME_TO_LABEL = {name: label for label, name in TISSUES_2008.items()}

    def __init__(self, version: int = 1998):
        if version not in (1998, 2008):
            raise ValueError(f'Version must be 1998 or 2008, not "{version}"')
        self.version = version
        self.name = f"mni_colin27_{version}_nifti"
        self.filename = f"{self.name}.zip"
        self.url = urllib.parse.urljoin(
            urllib.parse.urljoin(self.url_base, "colin27/"), self.filename
        )
        folder = self.cache_folder(self.name)
        if version == 1998:
            stems = [f"colin27_t1_tal_lin{s}" for s in ("", "_headmask", "_mask")]
        else:
            stems = [f"colin27_{n}_tal_hires" for n in ("t1", "t2", "pd", "cls")]

        def required() -> list[Path]:
            return [_nifti(folder, stem) for stem in stems]

        def round_labels() -> None:
            # The 2008 class map is stored as floats; labels are integers.
            if version == 2008:
                path = _nifti(folder, "colin27_cls_tal_hires")
                labels = LabelMap(path)
                labels.set_data(labels.data.round().to(torch.uint8))
                labels.save(path)

        paths = _fetch_archive(folder, self.url, self.filename, required, None, round_labels)
        if version == 1998:
            t1, head, brain = paths
            super().__init__(t1=ScalarImage(t1), head=LabelMap(head), brain=LabelMap(brain))
        else:
            t1, t2, pd, cls = paths
            super().__init__(
                t1=ScalarImage(t1),
                t2=ScalarImage(t2),
                pd=ScalarImage(pd),
                cls=LabelMap(cls, labels=TISSUES_2008),
            )


class ICBM2009CNonlinearSymmetric(SubjectMNI):
    """The ICBM 2009c nonlinear symmetric template (MNI), 1 mm.

    Images: ``t1``, ``eyes``, ``face``, ``brain`` (masks), ``t2``, ``pd`` and either
    ``tissues`` (grey matter, white matter and CSF probability maps as three channels)
    or ``gm``, ``wm`` and ``csf``. (TorchIO 1.2.1 reads the CSF map as ``pd``; here
    ``pd`` is the PD-weighted template.)

    Expected layout (``.nii`` or ``.nii.gz``)::

        ~/.cache/torchvox/mni_icbm152_nlin_sym_09c_nifti/mni_icbm152_nlin_sym_09c/
            mni_icbm152_{t1,t2,pd,gm,wm,csf}_tal_nlin_sym_09c.nii
            mni_icbm152_t1_tal_nlin_sym_09c_{eye_mask,face_mask,mask}.nii

    Args:
        load_4d_tissues: Put the three tissue maps in one 3-channel ``tissues`` image.
    """

    url_base = "http://www.bic.mni.mcgill.ca/~vfonov/icbm/2009/"

    def __init__(self, load_4d_tissues: bool = True):
        self.name = "mni_icbm152_nlin_sym_09c_nifti"
        self.filename = f"{self.name}.zip"
        self.url = urllib.parse.urljoin(self.url_base, self.filename)
        folder = self.cache_folder(self.name)
        files = folder / "mni_icbm152_nlin_sym_09c"
        keys = ["t1", "eyes", "face", "brain", "t2", "pd", "gm", "wm", "csf"]
        stems = [
            "mni_icbm152_t1_tal_nlin_sym_09c",
            "mni_icbm152_t1_tal_nlin_sym_09c_eye_mask",
            "mni_icbm152_t1_tal_nlin_sym_09c_face_mask",
            "mni_icbm152_t1_tal_nlin_sym_09c_mask",
            "mni_icbm152_t2_tal_nlin_sym_09c",
            "mni_icbm152_pd_tal_nlin_sym_09c",
            "mni_icbm152_gm_tal_nlin_sym_09c",
            "mni_icbm152_wm_tal_nlin_sym_09c",
            "mni_icbm152_csf_tal_nlin_sym_09c",
        ]
        paths = dict(
            zip(keys, _fetch_archive(folder, self.url, self.filename,
                                     lambda: [_nifti(files, s) for s in stems]))
        )  # fmt: skip
        items: dict[str, object] = {
            "t1": ScalarImage(paths["t1"]),
            "eyes": LabelMap(paths["eyes"]),
            "face": LabelMap(paths["face"]),
            "brain": LabelMap(paths["brain"]),
            "t2": ScalarImage(paths["t2"]),
            "pd": ScalarImage(paths["pd"]),
        }
        if load_4d_tissues:
            items["tissues"] = LabelMap([paths["gm"], paths["wm"], paths["csf"]])
        else:
            for key in ("gm", "wm", "csf"):
                items[key] = LabelMap(paths[key])
        super().__init__(items)


class Sheep(SubjectMNI):
    """Population-averaged sheep brain T1 template (MNI ovine atlas, 0.5 mm); key ``t1``.

    Expected layout: ``~/.cache/torchvox/NIFTI_ovine_05mm/ovine_model_05.nii`` (or
    ``.nii.gz``).
    """

    def __init__(self) -> None:
        self.name = "NIFTI_ovine_05mm"
        self.filename = f"{self.name}.zip"
        self.url = urllib.parse.urljoin(
            urllib.parse.urljoin(self.url_base, "sheep/"), self.filename
        )
        folder = self.cache_folder(self.name)
        [t1] = _fetch_archive(
            folder, self.url, self.filename, lambda: [_nifti(folder, "ovine_model_05")]
        )
        super().__init__(t1=ScalarImage(t1))


#: Age ranges (years) of the NIHPD pediatric templates.
SUPPORTED_YEARS = ((4.5, 18.5), (4.5, 8.5), (7, 11), (7.5, 13.5), (10, 14), (13, 18.5))


def _format_age(age: float) -> str:
    """``'04.5'`` for 4.5, ``'18.5'`` for 18.5."""
    integer = int(age)
    return f"{integer:02d}.{round(10 * (age - integer))}"


class Pediatric(SubjectMNI):
    """The NIHPD pediatric MRI templates (MNI): ``t1``, ``t2``, ``pd`` and a brain ``mask``.

    Expected layout (``.nii`` or ``.nii.gz``)::

        ~/.cache/torchvox/nihpd_<asym|sym>_<a>-<b>_nifti/nihpd_<asym|sym>_<a>-<b>_{t1w,t2w,pdw,mask}.nii

    with ages formatted as ``04.5``.

    Args:
        years: One of :data:`SUPPORTED_YEARS`, e.g. ``(4.5, 8.5)``.
        symmetric: Use the left-right symmetric templates instead of the natural ones.

    Raises:
        ValueError: For an unsupported age range.
    """

    url_dir = "http://www.bic.mni.mcgill.ca/~vfonov/nihpd/obj1/"

    def __init__(self, years: tuple[float, float], symmetric: bool = False):
        if not isinstance(years, tuple) or years not in SUPPORTED_YEARS:
            raise ValueError(f"Years must be a tuple in {SUPPORTED_YEARS}, got {years!r}")
        first, last = years
        self.file_id = f"{'sym' if symmetric else 'asym'}_{_format_age(first)}-{_format_age(last)}"
        self.name = f"nihpd_{self.file_id}_nifti"
        self.filename = f"{self.name}.zip"
        self.url = urllib.parse.urljoin(self.url_dir, self.filename)
        folder = self.cache_folder(self.name)
        suffixes = ("t1w", "t2w", "pdw", "mask")
        t1, t2, pd, mask = _fetch_archive(
            folder,
            self.url,
            self.filename,
            lambda: [_nifti(folder, f"nihpd_{self.file_id}_{suffix}") for suffix in suffixes],
        )
        super().__init__(
            t1=ScalarImage(t1), t2=ScalarImage(t2), pd=ScalarImage(pd), mask=LabelMap(mask)
        )


#: Colours of the GIF parcellation labels of :class:`FPG` (0-255 RGB).
GIF_COLORS: dict[int, tuple[int, int, int]] = {
    0: (0, 0, 0), 1: (0, 0, 0), 5: (127, 255, 212), 12: (240, 230, 140), 16: (176, 48, 96),
    24: (48, 176, 96), 31: (48, 176, 96), 32: (103, 255, 255), 33: (103, 255, 255),
    35: (238, 186, 243), 36: (119, 159, 176), 37: (122, 186, 220), 38: (122, 186, 220),
    39: (96, 204, 96), 40: (96, 204, 96), 41: (220, 247, 164), 42: (220, 247, 164),
    43: (205, 62, 78), 44: (205, 62, 78), 45: (225, 225, 225), 46: (225, 225, 225),
    47: (60, 60, 60), 48: (220, 216, 20), 49: (220, 216, 20), 50: (196, 58, 250),
    51: (196, 58, 250), 52: (120, 18, 134), 53: (120, 18, 134), 54: (255, 165, 0),
    55: (255, 165, 0), 56: (12, 48, 255), 57: (12, 48, 225), 58: (236, 13, 176),
    59: (236, 13, 176), 60: (0, 118, 14), 61: (0, 118, 14), 62: (165, 42, 42),
    63: (165, 42, 42), 64: (160, 32, 240), 65: (160, 32, 240), 66: (56, 192, 255),
    67: (56, 192, 255), 70: (255, 225, 225), 72: (184, 237, 194), 73: (180, 231, 250),
    74: (225, 183, 231), 76: (180, 180, 180), 77: (180, 180, 180), 81: (245, 255, 200),
    82: (255, 230, 255), 83: (245, 245, 245), 84: (220, 255, 220), 85: (220, 220, 220),
    86: (200, 255, 255), 87: (250, 220, 200), 89: (245, 255, 200), 90: (255, 230, 255),
    91: (245, 245, 245), 92: (220, 255, 220), 93: (220, 220, 220), 94: (200, 255, 255),
    96: (140, 125, 255), 97: (140, 125, 255), 101: (255, 62, 150), 102: (255, 62, 150),
    103: (160, 82, 45), 104: (160, 82, 45), 105: (165, 42, 42), 106: (165, 42, 42),
    107: (205, 91, 69), 108: (205, 91, 69), 109: (100, 149, 237), 110: (100, 149, 237),
    113: (135, 206, 235), 114: (135, 206, 235), 115: (250, 128, 114), 116: (250, 128, 114),
    117: (255, 255, 0), 118: (255, 255, 0), 119: (221, 160, 221), 120: (221, 160, 221),
    121: (0, 238, 0), 122: (0, 238, 0), 123: (205, 92, 92), 124: (205, 92, 92),
    125: (176, 48, 96), 126: (176, 48, 96), 129: (152, 251, 152), 130: (152, 251, 152),
    133: (50, 205, 50), 134: (50, 205, 50), 135: (0, 100, 0), 136: (0, 100, 0),
    137: (173, 216, 230), 138: (173, 216, 230), 139: (153, 50, 204), 140: (153, 50, 204),
    141: (160, 32, 240), 142: (160, 32, 240), 143: (0, 206, 208), 144: (0, 206, 208),
    145: (51, 50, 135), 146: (51, 50, 135), 147: (135, 50, 74), 148: (135, 50, 74),
    149: (218, 112, 214), 150: (218, 112, 214), 151: (240, 230, 140), 152: (240, 230, 140),
    153: (255, 255, 0), 154: (255, 255, 0), 155: (255, 110, 180), 156: (255, 110, 180),
    157: (0, 255, 255), 158: (0, 255, 255), 161: (100, 50, 100), 162: (100, 50, 100),
    163: (178, 34, 34), 164: (178, 34, 34), 165: (255, 0, 255), 166: (255, 0, 255),
    167: (39, 64, 139), 168: (39, 64, 139), 169: (255, 99, 71), 170: (255, 99, 71),
    171: (255, 69, 0), 172: (255, 69, 0), 173: (210, 180, 140), 174: (210, 180, 140),
    175: (0, 255, 127), 176: (0, 255, 127), 177: (74, 155, 60), 178: (74, 155, 60),
    179: (255, 215, 0), 180: (255, 215, 0), 181: (238, 0, 0), 182: (238, 0, 0),
    183: (46, 139, 87), 184: (46, 139, 87), 185: (238, 201, 0), 186: (238, 201, 0),
    187: (102, 205, 170), 188: (102, 205, 170), 191: (255, 218, 185), 192: (255, 218, 185),
    193: (238, 130, 238), 194: (238, 130, 238), 195: (255, 165, 0), 196: (255, 165, 0),
    197: (255, 192, 203), 198: (255, 192, 203), 199: (244, 222, 179), 200: (244, 222, 179),
    201: (208, 32, 144), 202: (208, 32, 144), 203: (34, 139, 34), 204: (34, 139, 34),
    205: (125, 255, 212), 206: (127, 255, 212), 207: (0, 0, 128), 208: (0, 0, 128),
}  # fmt: skip


class FPG(Subject):
    """A 3T T1 brain MRI with its GIF parcellation and transforms to MNI space.

    Images ``t1`` and ``seg`` carry ``rigid_matrix`` and ``affine_matrix`` (4x4 RAS
    tensors read from ITK transform files); ``load_all`` adds ``t2``, ``fmri``, ``dmri``.

    Expected layout: ``~/.cache/torchvox/fpg/`` with ``t1.nii.gz``,
    ``t1_seg_gif.nii.gz``, ``t1_to_mni.tfm``, ``t1_to_mni_affine.h5`` (and ``t2.nii.gz``,
    ``fmri.nrrd``, ``dmri.nrrd``), each downloaded from the TorchIO data repository.

    Args:
        load_all: Also load the T2, functional and diffusion images.
    """

    GIF_COLORS = GIF_COLORS
    repo_dir = urllib.parse.urljoin(DATA_REPO, "fernando/")

    def __init__(self, load_all: bool = False):
        self.filenames = {
            "t1": "t1.nii.gz",
            "seg": "t1_seg_gif.nii.gz",
            "rigid": "t1_to_mni.tfm",
            "affine": "t1_to_mni_affine.h5",
        }
        if load_all:
            self.filenames.update(t2="t2.nii.gz", fmri="fmri.nrrd", dmri="dmri.nrrd")
        folder = get_torchvox_cache_dir() / "fpg"
        layout = _layout([folder / name for name in self.filenames.values()])
        for filename in self.filenames.values():
            url = urllib.parse.urljoin(self.repo_dir, filename)
            download_url(url, folder, filename=filename, layout=layout)
        rigid = read_matrix(folder / self.filenames["rigid"])
        affine = read_matrix(folder / self.filenames["affine"])
        matrices = {"rigid_matrix": rigid, "affine_matrix": affine}
        items: dict[str, object] = {
            "t1": ScalarImage(folder / self.filenames["t1"], **matrices),
            "seg": LabelMap(folder / self.filenames["seg"], **matrices),
        }
        if load_all:
            for key in ("t2", "fmri", "dmri"):
                items[key] = ScalarImage(folder / self.filenames[key])
        super().__init__(items)
        self.gif_colors = self.GIF_COLORS

    def plot(self, return_fig: bool = False, **kwargs: Any) -> Any:
        """Plot with the parcellation's own colours (see :meth:`Subject.plot`)."""
        colors = {label: tuple(c / 255 for c in rgb) for label, rgb in self.gif_colors.items()}
        kwargs.setdefault("cmap_dict", {"seg": colors})
        return super().plot(return_fig=return_fig, **kwargs)


SLICER_URL = "https://github.com/Slicer/SlicerTestingData/releases/download/"
#: Sample name -> (file names, URL paths under :data:`SLICER_URL`).
URLS_DICT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "MRHead": (
        ("MRHead.nrrd",),
        ("SHA256/cc211f0dfd9a05ca3841ce1141b292898b2dd2d3f08286affadf823a7e58df93",),
    ),
    "DTIBrain": (
        ("DTI-Brain.nrrd",),
        ("SHA256/5c78d00c86ae8d968caa7a49b870ef8e1c04525b1abc53845751d8bce1f0b91a",),
    ),
    "DTIVolume": (
        ("DTIVolume.raw.gz", "DTIVolume.nhdr"),
        (
            "SHA256/d785837276758ddd9d21d76a3694e7fd866505a05bc305793517774c117cb38d",
            "SHA256/67564aa42c7e2eec5c3fd68afb5a910e9eab837b61da780933716a3b922e50fe",
        ),
    ),
    "CTChest": (
        ("CT-chest.nrrd",),
        ("SHA256/4507b664690840abb6cb9af2d919377ffc4ef75b167cb6fd0f747befdb12e38e",),
    ),
    "CTACardio": (
        ("CTA-cardio.nrrd",),
        ("SHA256/3b0d4eb1a7d8ebb0c5a89cc0504640f76a030b4e869e33ff34c564c3d3b88ad2",),
    ),
}


class Slicer(Subject):
    """A sample volume of 3D Slicer's SampleData module.

    The subject has one :class:`ScalarImage` named after the file (``MRHead``,
    ``DTI_Brain``, ``DTIVolume``, ``CT_chest``, ``CTA_cardio``).

    Expected layout: ``~/.cache/torchvox/slicer/<file name with '-' -> '_'>``.

    Args:
        name: One of the keys of :data:`URLS_DICT`.

    Raises:
        ValueError: For an unknown name.
    """

    def __init__(self, name: str = "MRHead"):
        if name not in URLS_DICT:
            raise ValueError(f'Invalid name "{name}". Valid names are: {", ".join(URLS_DICT)}')
        filenames, url_files = URLS_DICT[name]
        folder = get_torchvox_cache_dir() / "slicer"
        local = [filename.replace("-", "_") for filename in filenames]
        layout = _layout([folder / filename for filename in local])
        for filename, url_file in zip(local, url_files):
            url = urllib.parse.urljoin(SLICER_URL, url_file)
            download_url(url, folder, filename=filename, layout=layout)
        last = local[-1]
        super().__init__({last.split(".")[0]: ScalarImage(folder / last)})


class SubjectITKSNAP(Subject):
    """Base class of the sample data of ITK-SNAP (downloaded from NITRC).

    Expected layout: ``~/.cache/torchvox/<name>/<name>/<files>``.
    """

    url_base = "https://www.nitrc.org/frs/download.php/"
    #: ``(key, file name, is label map)`` of each image.
    files: tuple[tuple[str, str, bool], ...] = ()

    def __init__(self, name: str, code: str):
        self.name = name
        self.filename = f"{name}.zip"
        self.url = urllib.parse.urljoin(
            urllib.parse.urljoin(self.url_base, f"{code}/"), self.filename
        )
        self.download_root = get_torchvox_cache_dir() / name
        inner = self.download_root / name
        paths = _fetch_archive(
            self.download_root,
            self.url,
            self.filename,
            lambda: [inner / filename for _, filename, _ in self.files],
        )
        items = {
            key: (LabelMap(path) if is_label else ScalarImage(path))
            for (key, _, is_label), path in zip(self.files, paths)
        }
        super().__init__(items)


class BrainTumor(SubjectITKSNAP):
    """BRATS case HG0015: ``t1``, ``t1c``, ``t2``, ``flair`` and the tumour ``seg``."""

    files = tuple(
        (key, f"BRATS_HG0015_{name}.mha", key == "seg")
        for key, name in (("t1", "T1"), ("t1c", "T1C"), ("t2", "T2"), ("flair", "FLAIR"),
                          ("seg", "truth"))
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__("braintumor", "6161")


class T1T2(SubjectITKSNAP):
    """ASHS test data: a whole-brain 3T ``mprage`` and a hippocampal T2 ``tse``."""

    files = (("mprage", "mprage_3T_bet_dr.nii", False), ("tse", "tse_3t_dr.nii", False))

    def __init__(self) -> None:
        super().__init__("ashs_test", "10983")


class AorticValve(SubjectITKSNAP):
    """3D ultrasound of a bicuspid aortic valve: frames ``b14``, ``b25`` and their segmentations."""

    files = (
        ("b14", "bav_frame_14.nii.gz", False),
        ("b14_seg", "bav_frame_14_manseg.nii.gz", True),
        ("b25", "bav_frame_25.nii.gz", False),
        ("b25_seg", "bav_frame_25_manseg.nii.gz", True),
    )

    def __init__(self) -> None:
        super().__init__("bav_example", "11021")
