"""Plots of images and subjects: three orthogonal slices, label overlays, histograms.

matplotlib is an optional dependency (``pip install torchvox[plot]``); every
function raises an ImportError naming the extra when it is missing. Figures are
drawn with the Agg backend when no display is available, so they can be written
to PNG on headless machines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .data.image import Image
    from .data.subject import Subject

#: Distinct colours for label values 1, 2, ... (0, background, stays transparent).
LABEL_COLORS = (
    (0.90, 0.10, 0.10),
    (0.10, 0.60, 0.95),
    (0.20, 0.80, 0.20),
    (0.95, 0.75, 0.10),
    (0.65, 0.30, 0.90),
    (0.10, 0.85, 0.85),
    (0.95, 0.45, 0.10),
    (0.95, 0.40, 0.75),
    (0.55, 0.55, 0.20),
    (0.40, 0.40, 0.95),
)


def import_pyplot() -> Any:
    """Import matplotlib's pyplot, choosing Agg when there is no display.

    Raises:
        ImportError: If matplotlib is not installed, with the extra that installs it.
    """
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "Plotting needs matplotlib: pip install 'torchvox[plot]' (or pip install matplotlib)"
        ) from error
    import os

    if not os.environ.get("DISPLAY") and matplotlib.get_backend().lower() not in ("agg", "pdf"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_colormap(
    num_labels: int, colors: Mapping[int, Sequence[float]] | None = None
) -> tuple[Any, Any]:
    """Return a categorical colormap and norm for labels ``0..num_labels``.

    Args:
        num_labels: Largest label value to show.
        colors: Optional ``{label: (r, g, b)}`` overriding the default palette.

    Returns:
        ``(cmap, norm)`` for ``imshow``; label 0 is fully transparent.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap

    palette = [(0.0, 0.0, 0.0, 0.0)]
    for label in range(1, num_labels + 1):
        rgb = (colors or {}).get(label, LABEL_COLORS[(label - 1) % len(LABEL_COLORS)])
        palette.append((*tuple(rgb)[:3], 1.0))
    cmap = ListedColormap(palette)
    norm = BoundaryNorm(np.arange(-0.5, num_labels + 1.5), cmap.N)
    return cmap, norm


def _slices(
    array: np.ndarray, indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sagittal (J, K), coronal (I, K) and axial (I, J) slices of an (I, J, K) array."""
    i, j, k = indices
    return array[i, :, :], array[:, j, :], array[:, :, k]


def _aspects(spacing: Sequence[float]) -> tuple[float, float, float]:
    si, sj, sk = spacing
    return sk / sj, sk / si, sj / si


def plot_volume(
    image: Image,
    radiological: bool = True,
    channel: int | None = None,
    axes: Sequence[Any] | None = None,
    cmap: Any = None,
    output_path: str | Path | None = None,
    show: bool = True,
    xlabels: bool = True,
    percentiles: tuple[float, float] = (0, 100),
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    reorient: bool = True,
    indices: Sequence[int] | None = None,
    rgb: bool = True,
    savefig_kwargs: dict[str, Any] | None = None,
    **imshow_kwargs: Any,
) -> Any:
    """Plot sagittal, coronal and axial slices of an image.

    Args:
        image: A ScalarImage or LabelMap ``(C, W, H, D)``.
        radiological: Show the patient's left on the right of axial/coronal views.
        channel: Channel to show; the first one if ``None`` (or RGB if ``rgb`` and C == 3).
        axes: Three matplotlib axes to draw into; a new figure if ``None``.
        cmap: Colormap name, or ``{label: color}`` for label maps.
        output_path: Save the figure there (format from the suffix).
        show: Call ``plt.show()`` at the end.
        xlabels: Label the horizontal axes with the anatomical directions.
        percentiles: Intensity percentiles mapped to the ends of the colormap.
        figsize: Size of a new figure in inches.
        title: Figure title.
        reorient: Reorient to RAS (without resampling) before slicing.
        indices: Voxel indices ``(i, j, k)`` of the slices; the centre if ``None``.
        rgb: Show 3-channel images as colour.
        savefig_kwargs: Extra arguments for ``savefig``.
        **imshow_kwargs: Extra arguments for ``imshow``.

    Returns:
        The matplotlib figure.
    """
    plt = import_pyplot()
    from .constants import LABEL

    if reorient:
        from .transforms import ToCanonical

        image = ToCanonical()(image)
    data = image.data.float().numpy() if image.type != LABEL else image.data.numpy()
    is_rgb = rgb and data.shape[0] == 3 and channel is None and image.type != LABEL
    if is_rgb:
        volume = np.moveaxis(data, 0, -1)
        low, high = np.percentile(volume, percentiles)
        volume = np.clip((volume - low) / max(high - low, 1e-12), 0, 1)
    else:
        volume = data[channel or 0]
    spatial_shape = volume.shape[:3]
    indices = tuple(indices) if indices is not None else tuple(s // 2 for s in spatial_shape)
    if axes is None:
        figure, axes = plt.subplots(1, 3, figsize=figsize or (10, 4))
    else:
        figure = axes[0].figure
    is_label = image.type == LABEL
    if is_label:
        num_labels = int(max(volume.max(), 1))
        colors = cmap if isinstance(cmap, Mapping) else None
        label_cmap, norm = label_colormap(num_labels, colors)
        imshow_kwargs = {"cmap": label_cmap, "norm": norm, "interpolation": "nearest", **imshow_kwargs}
    elif not is_rgb:
        low, high = np.percentile(volume, percentiles)
        imshow_kwargs = {"cmap": cmap or "gray", "vmin": low, "vmax": high, **imshow_kwargs}
    names = ("Sagittal", "Coronal", "Axial")
    horizontal = ("A", "R" if radiological else "L", "R" if radiological else "L")
    vertical = ("S", "S", "A")
    for axis, name, plane, aspect, h_label, v_label in zip(
        axes, names, _slices(volume, indices), _aspects(image.spacing), horizontal, vertical
    ):
        # Slices are (row = first voxel axis, column = second); show them with the second
        # axis pointing up, which is what radiologists expect for RAS volumes.
        shown = np.swapaxes(plane, 0, 1)
        if name != "Sagittal" and radiological:
            shown = shown[:, ::-1]
        axis.imshow(shown, origin="lower", aspect=aspect, **imshow_kwargs)
        axis.set_title(name)
        if xlabels:
            axis.set_xlabel(h_label)
            axis.set_ylabel(v_label)
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if output_path is not None:
        figure.savefig(output_path, **(savefig_kwargs or {}))
    if show:
        plt.show()
    return figure


def plot_subject(
    subject: Subject,
    cmap_dict: dict[str, Any] | None = None,
    show: bool = True,
    output_path: str | Path | None = None,
    figsize: tuple[float, float] | None = None,
    clear_axes: bool = True,
    savefig_kwargs: dict[str, Any] | None = None,
    **plot_volume_kwargs: Any,
) -> Any:
    """Plot every image of a subject, one row of three orthogonal slices per image.

    Args:
        subject: The subject to plot.
        cmap_dict: ``{image_name: cmap}``.
        show: Call ``plt.show()`` at the end.
        output_path: Save the figure there.
        figsize: Figure size in inches.
        clear_axes: Remove ticks from every axis.
        savefig_kwargs: Extra arguments for ``savefig``.
        **plot_volume_kwargs: Passed to :func:`plot_volume` for every image.

    Returns:
        The matplotlib figure.
    """
    plt = import_pyplot()
    images = subject.get_images_dict(intensity_only=False)
    figure, axes = plt.subplots(
        len(images), 3, figsize=figsize or (10, 3.3 * len(images)), squeeze=False
    )
    for row, (name, image) in enumerate(images.items()):
        cmap = (cmap_dict or {}).get(name)
        plot_volume(image, axes=axes[row], show=False, cmap=cmap, **plot_volume_kwargs)
        axes[row, 0].set_ylabel(name)
        if clear_axes:
            for axis in axes[row]:
                axis.set_xticks([])
                axis.set_yticks([])
    figure.tight_layout()
    if output_path is not None:
        figure.savefig(output_path, **(savefig_kwargs or {}))
    if show:
        plt.show()
    return figure


def get_num_bins(values: np.ndarray) -> int:
    """Number of histogram bins by the Freedman-Diaconis rule (at least 1)."""
    values = np.asarray(values).ravel()
    if values.size < 2:
        return 1
    q25, q75 = np.percentile(values, [25, 75])
    width = 2 * (q75 - q25) / np.cbrt(values.size)
    if width <= 0:
        return 1
    return max(1, int(np.ceil((values.max() - values.min()) / width)))


def plot_histogram(values: Any, show: bool = True, **kwargs: Any) -> Any:
    """Plot a histogram of ``values`` (array or tensor) with Freedman-Diaconis bins.

    Returns:
        The matplotlib figure.
    """
    plt = import_pyplot()
    array = np.asarray(values, dtype=np.float64).ravel()
    kwargs.setdefault("bins", get_num_bins(array))
    figure, axis = plt.subplots()
    axis.hist(array, **kwargs)
    axis.set_xlabel("intensity")
    axis.set_ylabel("voxels")
    if show:
        plt.show()
    return figure
