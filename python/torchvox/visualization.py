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

    palette: list[tuple[float, ...]] = [(0.0, 0.0, 0.0, 0.0)]
    for label in range(1, num_labels + 1):
        rgb = (colors or {}).get(label, LABEL_COLORS[(label - 1) % len(LABEL_COLORS)])
        palette.append((*tuple(rgb)[:3], 1.0))
    cmap = ListedColormap(palette)
    norm = BoundaryNorm(np.arange(-0.5, num_labels + 1.5), cmap.N)
    return cmap, norm


def _slices(array: np.ndarray, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        imshow_kwargs = {
            "cmap": label_cmap,
            "norm": norm,
            "interpolation": "nearest",
            **imshow_kwargs,
        }
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
    overlay: bool = False,
    overlay_alpha: float = 0.5,
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
        overlay: Draw the label maps over the rows of the other images (background
            transparent) instead of in rows of their own. The images must share
            their spatial shape.
        overlay_alpha: Opacity of overlaid labels, in [0, 1].
        **plot_volume_kwargs: Passed to :func:`plot_volume` for every image.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: If ``overlay_alpha`` is not in [0, 1].
    """
    from .constants import LABEL

    if not 0 <= overlay_alpha <= 1:
        raise ValueError(f"overlay_alpha must be in [0, 1], got {overlay_alpha!r}")
    plt = import_pyplot()
    images = subject.get_images_dict(intensity_only=False)
    labels = {name: image for name, image in images.items() if image.type == LABEL}
    rows = images
    if overlay:
        rows = {name: image for name, image in images.items() if name not in labels} or images
    figure, axes = plt.subplots(
        len(rows), 3, figsize=figsize or (10, 3.3 * len(rows)), squeeze=False
    )
    for row, (name, image) in enumerate(rows.items()):
        cmap = (cmap_dict or {}).get(name)
        plot_volume(image, axes=axes[row], show=False, cmap=cmap, **plot_volume_kwargs)
        title = name
        if overlay and name not in labels:
            for label_name, label in labels.items():
                plot_volume(
                    label,
                    axes=axes[row],
                    show=False,
                    cmap=(cmap_dict or {}).get(label_name),
                    alpha=overlay_alpha,
                    **plot_volume_kwargs,
                )
            title = " + ".join([name, *labels])
        axes[row, 0].set_ylabel(title)
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


def plot_image_2d(
    image: Image,
    channel: int | None = None,
    cmap: Any = None,
    percentiles: tuple[float, float] = (0, 100),
    output_path: str | Path | None = None,
    show: bool = True,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    savefig_kwargs: dict[str, Any] | None = None,
    **imshow_kwargs: Any,
) -> Any:
    """Show a 2D image (last spatial size 1) as a picture, like a photograph.

    The first spatial axis runs horizontally and the second one vertically, from the
    top, which is how :meth:`Image.as_pil` and the 2D readers lay out PNG/JPEG files.

    Args:
        image: Image of shape ``(C, W, H, 1)``; 3 or 4 channels are shown as colour.
        channel: Channel to show (grey levels); all channels as colour if ``None`` and
            there are 3 or 4 of them.
        cmap: Colormap for single-channel intensity images (``'gray'`` by default), or
            ``{label: color}`` for label maps.
        percentiles: Intensity percentiles mapped to black and white.
        output_path: Save the figure there.
        show: Call ``plt.show()`` at the end.
        figsize: Figure size in inches.
        title: Axis title.
        savefig_kwargs: Extra arguments for ``savefig``.
        **imshow_kwargs: Extra arguments for ``imshow``.

    Returns:
        The matplotlib figure.

    Raises:
        RuntimeError: If the image is not 2D.
    """
    plt = import_pyplot()
    from .constants import LABEL

    image.check_is_2d()
    data = image.data[..., 0].numpy()  # (C, W, H)
    is_label = image.type == LABEL
    figure, axis = plt.subplots(figsize=figsize or (5, 5))
    if channel is None and data.shape[0] in (3, 4) and not is_label:
        picture = np.moveaxis(data.astype(np.float64), 0, -1).transpose(1, 0, 2)
        low, high = np.percentile(picture[..., :3], percentiles)
        picture = np.clip((picture - low) / max(high - low, 1e-12), 0, 1)
        if picture.shape[-1] == 4:
            picture[..., 3] = np.clip(data[3].T / max(float(data[3].max()), 1e-12), 0, 1)
        axis.imshow(picture, **imshow_kwargs)
    else:
        plane = data[channel or 0].T
        if is_label:
            colors = cmap if isinstance(cmap, Mapping) else None
            label_cmap, norm = label_colormap(int(max(plane.max(), 1)), colors)
            kwargs = {"cmap": label_cmap, "norm": norm, "interpolation": "nearest"}
        else:
            low, high = np.percentile(plane, percentiles)
            kwargs = {"cmap": cmap or "gray", "vmin": low, "vmax": high}
        axis.imshow(plane, **{**kwargs, **imshow_kwargs})
    axis.set_axis_off()
    if title:
        axis.set_title(title)
    figure.tight_layout()
    if output_path is not None:
        figure.savefig(output_path, **(savefig_kwargs or {}))
    if show:
        plt.show()
    return figure


def figure_to_html(figure: Any) -> str:
    """Encode a matplotlib figure as an HTML ``<img>`` holding a base64 PNG, and close it."""
    import base64
    import io

    plt = import_pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}"/>'


def _to_uint8(array: np.ndarray, rescale: bool) -> np.ndarray:
    """Map an array to uint8: min-max to [0, 255] if ``rescale``, else clamp to [0, 255]."""
    values = array.astype(np.float64, copy=False)
    if rescale:
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        values = (values - low) * scale
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def make_gif(
    tensor: Any,
    axis: int,
    duration: float,
    output_path: str | Path,
    loop: int = 0,
    optimize: bool = True,
    rescale: bool = True,
    reverse: bool = False,
) -> int:
    """Write an animated GIF whose frames are the slices of a volume along ``axis``.

    Args:
        tensor: ``(C, W, H, D)`` tensor or array with 1 (grey) or 3 (RGB) channels.
        axis: Spatial axis (0, 1 or 2) to move through.
        duration: Duration of the whole animation, in seconds.
        output_path: GIF file to write.
        loop: Times the animation repeats; 0 loops forever.
        optimize: Let Pillow shrink the palette.
        rescale: Map the intensity range to [0, 255] (else values are clamped).
        reverse: Play the slices in reverse order.

    Returns:
        The number of slices. (Pillow merges identical consecutive slices into one
        longer frame, so the file may hold fewer frames; the duration is kept.)

    Raises:
        ValueError: For an axis not in 0-2, a non-positive duration or a channel count
            other than 1 or 3.
        RuntimeError: If Pillow is not installed.
    """
    import warnings

    try:
        from PIL import Image as ImagePIL
    except ImportError as error:
        raise RuntimeError("Image.to_gif() needs Pillow: pip install Pillow") from error
    array = np.asarray(tensor)
    if array.ndim != 4:
        raise ValueError(f"tensor must be 4D (C, W, H, D), got shape {array.shape}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    if array.shape[0] not in (1, 3):
        raise ValueError(f"Only 1 or 3 channels can be written to a GIF, got {array.shape[0]}")
    array = _to_uint8(array, rescale)
    # Frames along `axis`; each frame shown with the next spatial axis vertical (flipped
    # so that it points up) and the remaining one horizontal.
    frames_first = np.moveaxis(array, axis + 1, 0)  # (N, C, a, b)
    images = []
    for frame in frames_first:
        picture = np.ascontiguousarray(np.moveaxis(frame, 0, -1).transpose(1, 0, 2)[::-1])
        if picture.shape[-1] == 1:
            images.append(ImagePIL.fromarray(picture[..., 0], mode="L").convert("P"))
        else:
            images.append(ImagePIL.fromarray(picture, mode="RGB"))
    if reverse:
        images.reverse()
    frame_ms = duration * 1000 / len(images)
    if frame_ms < 10:
        # The GIF format counts delays in hundredths of a second: 100 fps at most.
        warnings.warn(
            f"{len(images)} frames in {duration} s exceed the 100 fps GIFs allow; the"
            f" animation will last {len(images) / 100:.2f} s instead",
            RuntimeWarning,
            stacklevel=2,
        )
        frame_ms = 10
    images[0].save(
        output_path,
        save_all=True,
        append_images=images[1:],
        optimize=optimize,
        duration=frame_ms,
        loop=loop,
    )
    return len(images)


def get_ffmpeg_executable() -> str:
    """Path of an ffmpeg executable: the one on ``PATH``, else the one imageio-ffmpeg ships.

    Raises:
        RuntimeError: If neither is available, naming what to install.
    """
    import shutil

    found = shutil.which("ffmpeg")
    if found is not None:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        imageio_ffmpeg = None
    if imageio_ffmpeg is not None:
        try:
            return str(imageio_ffmpeg.get_ffmpeg_exe())
        except RuntimeError:
            pass
    raise RuntimeError(
        "Writing videos needs ffmpeg: install the executable (e.g. apt-get install ffmpeg)"
        " or the Python package that ships one: pip install 'torchvox[video]'"
        " (pip install imageio-ffmpeg)"
    )


#: Orientation that puts the frames along the first axis for each video direction.
VIDEO_ORIENTATIONS = {"I": "IPL", "S": "SPL", "A": "AIL", "P": "PIL", "R": "RIP", "L": "LIP"}
VIDEO_VERBOSITIES = ("quiet", "panic", "fatal", "error", "warning", "info", "verbose", "debug")


def make_video(
    image: Image,
    output_path: str | Path,
    seconds: float | None = None,
    frame_rate: float | None = None,
    direction: str = "I",
    verbosity: str = "error",
) -> int:
    """Encode the slices of a single-channel image as an H.265 MP4 video with ffmpeg.

    The image is reoriented so that frames run along ``direction`` (``'I'``: axial,
    top to bottom; ``'S'``, ``'A'``, ``'P'``, ``'R'``, ``'L'`` likewise) and look as in
    radiological viewers; frames are resampled to square pixels and cropped to even
    sizes, which the encoder requires; intensities are mapped to [0, 255].

    Args:
        image: Single-channel image ``(1, W, H, D)``.
        output_path: ``.mp4`` file to write.
        seconds: Duration of the whole video (exclusive with ``frame_rate``).
        frame_rate: Frames per second.
        direction: Anatomical direction of travel.
        verbosity: ffmpeg log level (``'error'``, ``'warning'``, ``'info'``...).

    Returns:
        The number of frames written.

    Raises:
        ValueError: For bad arguments or a multi-channel image.
        RuntimeError: If ffmpeg is missing or fails.
    """
    import subprocess

    import torch

    from .transforms import ToOrientation

    if (seconds is None) == (frame_rate is None):
        raise ValueError(
            f"Give exactly one of seconds and frame_rate, got seconds={seconds!r},"
            f" frame_rate={frame_rate!r}"
        )
    rate_or_seconds = seconds if seconds is not None else frame_rate
    if not isinstance(rate_or_seconds, int | float) or not rate_or_seconds > 0:
        raise ValueError(f"seconds/frame_rate must be positive, got {rate_or_seconds!r}")
    if image.num_channels != 1:
        raise ValueError(
            f"Only single-channel images can be written as videos, got {image.num_channels}"
        )
    direction = str(direction).upper()
    if direction not in VIDEO_ORIENTATIONS:
        raise ValueError(f"direction must be one of I, S, A, P, R, L, got {direction!r}")
    if verbosity not in VIDEO_VERBOSITIES:
        raise ValueError(f"verbosity must be one of {VIDEO_VERBOSITIES}, got {verbosity!r}")
    if Path(output_path).suffix.lower() != ".mp4":
        raise ValueError(f"Only .mp4 output is supported, got {output_path!r}")
    executable = get_ffmpeg_executable()
    oriented = ToOrientation(VIDEO_ORIENTATIONS[direction])(image)
    volume = oriented.data[0].to(torch.float32)  # (frames, rows, columns)
    _, row_spacing, column_spacing = oriented.spacing
    if not np.isclose(row_spacing, column_spacing):
        # Square pixels: resample both in-plane axes to the finer spacing.
        size = min(row_spacing, column_spacing)
        rows = max(1, round(volume.shape[1] * row_spacing / size))
        columns = max(1, round(volume.shape[2] * column_spacing / size))
        volume = torch.nn.functional.interpolate(
            volume[:, None], size=(rows, columns), mode="bilinear", align_corners=False
        )[:, 0]
    frames = _to_uint8(volume.numpy(), rescale=True)
    # yuv420p needs even sizes: crop one row/column at the far edge if needed.
    num_frames, rows, columns = frames.shape
    frames = np.ascontiguousarray(frames[:, : rows - rows % 2, : columns - columns % 2])
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"Frames of {rows} x {columns} pixels are too small for a video")
    fps = frame_rate if frame_rate is not None else num_frames / float(seconds or 1)
    command = [
        executable,
        "-y",
        "-loglevel",
        verbosity,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "gray",
        "-s",
        f"{frames.shape[2]}x{frames.shape[1]}",
        "-r",
        f"{fps}",
        "-i",
        "-",
        "-vcodec",
        "libx265",
        "-pix_fmt",
        "yuv420p",
        "-tag:v",
        "hvc1",
        str(output_path),
    ]
    completed = subprocess.run(command, input=frames.tobytes(), capture_output=True, check=False)
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"ffmpeg failed with exit code {completed.returncode}: {message}")
    return num_frames


def show_in_viewer(image: Image, viewer_path: str | Path | None = None) -> Any:
    """Open an image in an external viewer (ITK-SNAP, 3D Slicer...).

    The image is written to a temporary file (``.nii.gz``, or ``.seg.nrrd`` for label
    maps so that 3D Slicer loads them as segmentations) and the viewer is started on it
    without waiting for it to close.

    Args:
        image: The image to show.
        viewer_path: Viewer executable; else ``SITK_SHOW_COMMAND`` or a guess.

    Returns:
        The ``subprocess.Popen`` of the viewer.

    Raises:
        RuntimeError: If no viewer is found or it cannot be started.
    """
    import subprocess
    import tempfile

    from .constants import LABEL
    from .utils import guess_external_viewer

    viewer = Path(viewer_path) if viewer_path is not None else guess_external_viewer()
    if viewer is None:
        raise RuntimeError(
            "No external viewer was found. Install ITK-SNAP or 3D Slicer, set the"
            " SITK_SHOW_COMMAND environment variable to a viewer, or pass viewer_path"
        )
    suffix = ".seg.nrrd" if image.type == LABEL else ".nii.gz"
    folder = Path(tempfile.mkdtemp(prefix="torchvox-show-"))
    path = folder / f"{image.get('stem') or 'image'}{suffix}"
    image.save(path)
    try:
        return subprocess.Popen([str(viewer), str(path)])
    except OSError as error:
        raise RuntimeError(f'Could not start the viewer "{viewer}": {error}') from error


#: TorchIO's name for :func:`figure_to_html`.
_figure_to_html = figure_to_html


def rotate(image: np.ndarray, *, radiological: bool = True, n: int = -1) -> np.ndarray:
    """Rotate a 2D slice by ``n`` quarter turns (counter-clockwise), for display.

    Args:
        image: Array whose first two axes are the slice (extra axes, e.g. RGB, follow).
        radiological: Mirror the result left-right, as radiological views do.
        n: Number of 90-degree counter-clockwise rotations (negative: clockwise).

    Returns:
        The rotated (and mirrored) view of ``image``.
    """
    rotated = np.rot90(image, n)
    return np.fliplr(rotated) if radiological else rotated


def color_labels(
    array: np.ndarray, colors: Mapping[int, Sequence[float]] | None = None
) -> np.ndarray:
    """Map a label array to RGB colours (background 0 stays black).

    Args:
        array: Integer labels of any shape.
        colors: ``{label: (r, g, b)}`` in [0, 1] (or 0-255 integers); labels not listed
            take the default palette :data:`LABEL_COLORS`.

    Returns:
        Float array of shape ``array.shape + (3,)`` with values in [0, 1].
    """
    labels = np.asarray(array)
    rgb = np.zeros((*labels.shape, 3), dtype=np.float64)
    for label in np.unique(labels):
        value = int(label)
        if value == 0:
            continue
        default = LABEL_COLORS[(value - 1) % len(LABEL_COLORS)]
        color = np.asarray((colors or {}).get(value, default), dtype=np.float64)[:3]
        if color.max() > 1:
            color = color / 255
        rgb[labels == label] = color
    return rgb
