"""The MNI ICBM152 2009a nonlinear symmetric template, from the files nilearn ships."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
import torch

from ..data.image import LabelMap, ScalarImage
from ..data.io import nib_to_sitk, read_image, sitk_to_nib, write_image
from ..data.subject import Subject
from ..utils import get_torchvox_cache_dir

__all__ = ["MNI152", "get_mni152_paths"]

_PREFIX = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
#: Format version of the cached tissue map; bump it if the derivation changes.
_TISSUES_VERSION = 1


def get_mni152_paths() -> dict[str, Path]:
    """Paths of the T1 and the grey/white matter probability maps inside nilearn.

    Returns:
        ``{'t1': ..., 'gm': ..., 'wm': ...}``.

    Raises:
        ImportError: If nilearn is not installed.
        FileNotFoundError: If the installed nilearn does not ship the templates.
    """
    try:
        import nilearn
    except ImportError as error:
        raise ImportError(
            "The MNI152 dataset reads the ICBM152 2009a templates shipped with nilearn."
            " Install it with: pip install nilearn"
        ) from error
    data_dir = Path(nilearn.__file__).parent / "datasets" / "data"
    paths = {name: data_dir / _PREFIX.format(name) for name in ("t1", "gm", "wm")}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(
                f'The MNI152 template file "{path}" was not found in the installed nilearn'
                f" ({nilearn.__version__})"
            )
    return paths


def _compute_tissues(paths: dict[str, Path], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Derive a (1, W, H, D) uint8 map (0 background, 1 GM, 2 WM) on the T1 grid."""
    t1_tensor, t1_affine = read_image(paths["t1"])
    t1_shape = tuple(t1_tensor.shape[1:])
    reference: sitk.Image | None = None
    maps = []
    for name in ("gm", "wm"):
        tensor, affine = read_image(paths[name])
        probabilities = tensor.numpy().astype(np.float32)
        if tuple(probabilities.shape[1:]) != t1_shape or not np.allclose(affine, t1_affine):
            # Resample linearly onto the T1 grid so the labels align with it.
            if reference is None:
                reference = nib_to_sitk(t1_tensor.numpy()[:1], t1_affine)
            moving = nib_to_sitk(probabilities, affine)
            resampled = sitk.Resample(moving, reference, sitk.Transform(), sitk.sitkLinear, 0.0)
            probabilities = sitk_to_nib(resampled)[0].astype(np.float32)
        maps.append(probabilities[0])
    gm, wm = maps
    # The files store probabilities scaled to [0, 255].
    scale = max(float(gm.max()), float(wm.max()), 1.0)
    scale = 255.0 if scale > 1.0 else 1.0
    gm /= scale
    wm /= scale
    tissues = np.where(wm > gm, 2, 1).astype(np.uint8)
    # Background where brain tissue is less likely than the threshold.
    tissues[(gm + wm) < threshold] = 0
    return tissues[np.newaxis], t1_affine


def _cached_tissues_path(paths: dict[str, Path], threshold: float) -> Path:
    stat = paths["gm"].stat()
    key = f"v{_TISSUES_VERSION}_t{threshold:g}_{stat.st_size}_{int(stat.st_mtime)}"
    return get_torchvox_cache_dir() / "mni152" / f"tissues_{key}.nii.gz"


class MNI152(Subject):
    """The ICBM152 2009a nonlinear symmetric MNI template, as a :class:`Subject`.

    Images (197 x 233 x 189 voxels, 1 mm, RAS+):

    - ``t1``: :class:`ScalarImage`, the T1-weighted template (uint8, read lazily);
    - ``tissues``: :class:`LabelMap` (uint8) with 0 for background, 1 for grey matter
      and 2 for white matter: each voxel takes the more probable of the two tissues,
      and becomes background where their summed probability is below
      ``tissue_threshold``.

    The files come from nilearn's wheel, so nothing is downloaded. The tissue map is
    computed once and cached in ``~/.cache/torchvox/mni152``.

    Args:
        tissue_threshold: Minimum grey + white matter probability for a voxel to be
            labelled as tissue, in (0, 1].

    Raises:
        ImportError: If nilearn is not installed (``pip install nilearn``).
        ValueError: If ``tissue_threshold`` is not in (0, 1].
    """

    def __init__(self, tissue_threshold: float = 0.5):
        if not isinstance(tissue_threshold, int | float) or not 0 < tissue_threshold <= 1:
            raise ValueError(f"tissue_threshold must be in (0, 1], got {tissue_threshold!r}")
        paths = get_mni152_paths()
        cached = _cached_tissues_path(paths, float(tissue_threshold))
        if cached.is_file():
            tissues = LabelMap(cached)
        else:
            data, affine = _compute_tissues(paths, float(tissue_threshold))
            tissues = LabelMap(tensor=torch.from_numpy(data), affine=affine)
            if _write_cache(tissues, cached):
                # The same Subject on the first and every later call: backed by the file.
                tissues = LabelMap(cached)
        super().__init__(t1=ScalarImage(paths["t1"]), tissues=tissues)


def _write_cache(image: LabelMap, path: Path) -> bool:
    """Write atomically (other processes may read or write the same file); best effort.

    Returns:
        Whether the cache file now exists.
    """
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(suffix=".nii.gz", dir=path.parent)
        os.close(handle)
        write_image(image.data, image.affine, temporary)
        os.replace(temporary, path)
        temporary = None
    except (OSError, RuntimeError):
        return False  # A read-only home directory only costs recomputing next time.
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
    return True
