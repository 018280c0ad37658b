"""Display: plots written to PNG headless, histograms, GIFs, videos, HTML and viewers."""

from __future__ import annotations

import base64
import io
import os
import stat
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import torchvox as tio
from torchvox import visualization


def _blob(shape=(20, 24, 16)) -> torch.Tensor:
    """A smooth non-constant volume: a Gaussian blob plus a ramp."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    blob = np.exp(-sum(g**2 for g in grids) * 3) + 0.2 * grids[0] + 0.1 * grids[1] + 0.1 * grids[2]
    return torch.from_numpy(blob[np.newaxis].astype(np.float32))


@pytest.fixture
def scalar() -> tio.ScalarImage:
    return tio.ScalarImage(tensor=_blob(), affine=np.diag([1.0, 1.5, 2.0, 1.0]))


@pytest.fixture
def subject(scalar: tio.ScalarImage) -> tio.Subject:
    label = (scalar.data > 0.5).to(torch.uint8) + (scalar.data > 0.8).to(torch.uint8)
    return tio.Subject(t1=scalar, seg=tio.LabelMap(tensor=label, affine=scalar.affine))


def _png(path: Path) -> np.ndarray:
    with PILImage.open(path) as picture:
        assert picture.format == "PNG"
        return np.asarray(picture.convert("RGB"))


def _assert_not_blank(pixels: np.ndarray, min_colors: int = 10) -> None:
    assert pixels.std() > 5
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) >= min_colors


def test_image_plot_writes_png(tmp_path: Path, scalar: tio.ScalarImage) -> None:
    path = tmp_path / "slices.png"
    figure = scalar.plot(return_fig=True, show=False, output_path=path, figsize=(6, 2))
    assert figure is not None and len(figure.axes) == 3
    pixels = _png(path)
    dpi = figure.dpi
    assert pixels.shape[:2] == (round(2 * dpi), round(6 * dpi))
    _assert_not_blank(pixels)
    assert scalar.plot(show=False) is None  # returns nothing without return_fig


def test_plot_2d_image_is_a_picture(tmp_path: Path) -> None:
    rgb = torch.zeros(3, 40, 30, 1)
    rgb[0, :20] = 255  # left half red
    rgb[2, 20:] = 255  # right half blue
    path = tmp_path / "picture.png"
    figure = tio.ScalarImage(tensor=rgb).plot(return_fig=True, show=False, output_path=path)
    assert len(figure.axes) == 1
    shown = figure.axes[0].images[0].get_array()
    assert shown.shape == (30, 40, 3)  # rows = second axis, columns = first axis
    assert np.allclose(shown[:, :20, 0], 1) and np.allclose(shown[:, 20:, 2], 1)
    pixels = _png(path)
    red = (pixels[..., 0] > 200) & (pixels[..., 2] < 50)
    blue = (pixels[..., 2] > 200) & (pixels[..., 0] < 50)
    assert red.sum() > 100 and blue.sum() > 100
    # The red half is on the left of the blue one.
    assert np.nonzero(red)[1].mean() < np.nonzero(blue)[1].mean()


def test_subject_plot_and_label_colors(tmp_path: Path, subject: tio.Subject) -> None:
    path = tmp_path / "subject.png"
    figure = subject.plot(return_fig=True, show=False, output_path=path)
    assert len(figure.axes) == 6
    pixels = _png(path)
    _assert_not_blank(pixels)
    # The label colours of labels 1 and 2 appear in the figure.
    for color in visualization.LABEL_COLORS[:2]:
        rgb = np.round(np.asarray(color) * 255)
        assert (np.abs(pixels.astype(int) - rgb).max(axis=-1) <= 2).sum() > 10


def test_label_colormap_custom_colors() -> None:
    cmap, norm = visualization.label_colormap(3, {2: (0.0, 1.0, 0.0)})
    assert cmap(norm(0))[3] == 0  # background transparent
    assert np.allclose(cmap(norm(2))[:3], (0, 1, 0))
    assert np.allclose(cmap(norm(1))[:3], visualization.LABEL_COLORS[0])


def test_hist(tmp_path: Path, scalar: tio.ScalarImage) -> None:
    figure = scalar.hist(show=False)
    patches = figure.axes[0].patches
    values = scalar.data.numpy().ravel()
    assert len(patches) == visualization.get_num_bins(values)
    assert sum(p.get_height() for p in patches) == values.size
    figure.savefig(tmp_path / "hist.png")
    _assert_not_blank(_png(tmp_path / "hist.png"), min_colors=2)


def test_get_num_bins_matches_numpy_fd() -> None:
    values = np.random.default_rng(0).normal(size=5000)
    assert (
        abs(visualization.get_num_bins(values) - len(np.histogram_bin_edges(values, "fd")) + 1) <= 1
    )


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_to_gif_frames(tmp_path: Path, scalar: tio.ScalarImage, axis: int) -> None:
    path = tmp_path / "anim.gif"
    scalar.to_gif(axis=axis, duration=1.0, output_path=path, loop=2)
    with PILImage.open(path) as gif:
        assert gif.n_frames == scalar.spatial_shape[axis]
        assert gif.info["loop"] == 2
        assert gif.info["duration"] == pytest.approx(1000 / scalar.spatial_shape[axis], abs=10)
        sizes = set()
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            sizes.add(gif.size)
            frames.append(np.asarray(gif.convert("L"), dtype=float))
    other = [s for a, s in enumerate(scalar.spatial_shape) if a != axis]
    assert sizes == {(other[0], other[1])}
    # Frames are the slices, rescaled to [0, 255] and shown with the 2nd axis upwards.
    middle = scalar.spatial_shape[axis] // 2
    volume = np.moveaxis(scalar.data.numpy()[0], axis, 0)
    expected = (volume - volume.min()) / (volume.max() - volume.min()) * 255
    assert np.abs(frames[middle] - expected[middle].T[::-1]).max() <= 2


def test_to_gif_reverse_and_fps_clamp(tmp_path: Path, scalar: tio.ScalarImage) -> None:
    forward, backward = tmp_path / "f.gif", tmp_path / "b.gif"
    scalar.to_gif(0, 2.0, forward)
    scalar.to_gif(0, 2.0, backward, reverse=True)
    with PILImage.open(forward) as first, PILImage.open(backward) as second:
        first.seek(0)
        a = np.asarray(first.convert("L"))
        second.seek(second.n_frames - 1)
        b = np.asarray(second.convert("L"))
    assert np.array_equal(a, b)
    with pytest.warns(RuntimeWarning, match="100 fps"):
        scalar.to_gif(0, 0.05, tmp_path / "fast.gif")
    with pytest.raises(ValueError, match="axis"):
        scalar.to_gif(3, 1.0, tmp_path / "bad.gif")


def test_repr_html_is_base64_png(scalar: tio.ScalarImage, subject: tio.Subject) -> None:
    for obj in (scalar, subject):
        html = obj._repr_html_()
        assert html.startswith('<img src="data:image/png;base64,')
        payload = html.split(",", 1)[1].rsplit('"', 1)[0]
        with PILImage.open(io.BytesIO(base64.b64decode(payload))) as picture:
            assert picture.format == "PNG" and picture.size[0] > 100


def _fake_viewer(tmp_path: Path) -> Path:
    record = tmp_path / "viewer-args.txt"
    script = tmp_path / "viewer.sh"
    script.write_text(f'#!/bin/sh\necho "$@" > "{record}"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="shell script viewer")
def test_show_runs_viewer_on_saved_file(tmp_path: Path, subject: tio.Subject) -> None:
    viewer = _fake_viewer(tmp_path)
    process = visualization.show_in_viewer(subject["seg"], viewer)
    process.wait(timeout=30)
    shown = Path((tmp_path / "viewer-args.txt").read_text().strip())
    assert shown.name.endswith(".seg.nrrd")
    loaded = tio.LabelMap(shown)
    assert torch.equal(loaded.data, subject["seg"].data)
    subject["t1"].show(viewer_path=viewer)  # the method runs the same code


def test_show_without_viewer_is_clear(monkeypatch: pytest.MonkeyPatch, scalar) -> None:
    monkeypatch.delenv("SITK_SHOW_COMMAND", raising=False)
    monkeypatch.setattr("torchvox.utils.guess_external_viewer", lambda: None)
    with pytest.raises(RuntimeError, match="ITK-SNAP or 3D Slicer"):
        scalar.show()


def test_video_without_ffmpeg_names_install(monkeypatch, tmp_path: Path, scalar) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(RuntimeError, match="imageio-ffmpeg"):
        scalar.to_video(tmp_path / "video.mp4")


def test_video_argument_errors(tmp_path: Path, scalar) -> None:
    with pytest.raises(ValueError, match="direction"):
        scalar.to_video(tmp_path / "v.mp4", direction="X")
    with pytest.raises(ValueError, match="mp4"):
        scalar.to_video(tmp_path / "v.avi")
    two = tio.ScalarImage(tensor=torch.rand(2, 8, 8, 8))
    with pytest.raises(ValueError, match="single-channel"):
        two.to_video(tmp_path / "v.mp4")


def test_to_video_encodes_frames(tmp_path: Path, scalar: tio.ScalarImage) -> None:
    try:
        executable = visualization.get_ffmpeg_executable()
    except RuntimeError:
        pytest.skip("no ffmpeg available")
    import subprocess

    path = tmp_path / "video.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scalar.to_video(path, seconds=2.0, direction="I")
    assert path.stat().st_size > 0
    # Decode back with ffmpeg: one frame per axial slice, frames 2-pixel even sized.
    probe = subprocess.run(
        [executable, "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    )
    # After reorientation to IPL, in-plane spacing (1.5 x 1) is resampled to 1 x 1 mm:
    # rows = P axis (24 * 1.5 = 36), columns = L axis (20).
    height, width = 36, 20
    frames = np.frombuffer(probe.stdout, np.uint8).reshape(-1, height, width)
    assert len(frames) == scalar.spatial_shape[2]
    assert frames.std() > 10
    assert os.path.getsize(path) < frames.nbytes  # really compressed


def test_color_labels_and_rotate() -> None:
    labels = np.array([[0, 1], [2, 7]])
    rgb = visualization.color_labels(labels, {7: (255, 0, 0)})
    assert rgb.shape == (2, 2, 3)
    assert np.array_equal(rgb[0, 0], [0, 0, 0])
    assert np.allclose(rgb[0, 1], visualization.LABEL_COLORS[0])
    assert np.allclose(rgb[1, 1], (1, 0, 0))
    square = np.arange(4).reshape(2, 2)
    assert np.array_equal(visualization.rotate(square, radiological=False, n=1), np.rot90(square))
    assert np.array_equal(visualization.rotate(square), np.fliplr(np.rot90(square, -1)))


def test_subject_plot_overlay(tmp_path: Path, subject: tio.Subject) -> None:
    path = tmp_path / "overlay.png"
    figure = subject.plot(return_fig=True, show=False, output_path=path, overlay=True)
    assert len(figure.axes) == 3  # one row: the labels are drawn over the T1
    assert all(len(axis.images) == 2 for axis in figure.axes)
    assert figure.axes[0].get_ylabel() == "t1 + seg"
    pixels = _png(path)
    _assert_not_blank(pixels)
    rgb = np.round(np.asarray(visualization.LABEL_COLORS[0]) * 255)
    # Blended with the grey image below: reddish pixels, red well above green and blue.
    reddish = (pixels[..., 0].astype(int) - pixels[..., 1] > 60) & (pixels[..., 2] < 150)
    assert reddish.sum() > 20 and rgb[0] > rgb[1]
    with pytest.raises(ValueError, match="overlay_alpha"):
        subject.plot(show=False, overlay=True, overlay_alpha=2)
