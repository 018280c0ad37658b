"""Command-line apps run with typer's CliRunner on real files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

import torchvox as tio
from torchvox.cli import apply_transform, main, print_info

runner = CliRunner()


@pytest.fixture
def image_path(tmp_path: Path) -> Path:
    generator = torch.Generator().manual_seed(3)
    data = torch.rand(1, 9, 10, 11, generator=generator) * 100
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = (5, -6, 7)
    path = tmp_path / "t1.nii.gz"
    tio.ScalarImage(tensor=data, affine=affine).save(path)
    return path


@pytest.fixture
def label_path(tmp_path: Path) -> Path:
    data = torch.zeros(1, 9, 10, 11, dtype=torch.uint8)
    data[0, 2:6, 3:7, 4:8] = 1
    data[0, 3:5, 4:6, 5:7] = 2
    path = tmp_path / "seg.nii.gz"
    tio.LabelMap(tensor=data, affine=np.diag([1.0, 2.0, 3.0, 1.0])).save(path)
    return path


def test_transform_applies_and_writes(tmp_path: Path, image_path: Path) -> None:
    output = tmp_path / "flipped.nii.gz"
    args = [str(image_path), "Flip", str(output), "--kwargs", "axes=(0,)", "--hide-progress"]
    result = runner.invoke(apply_transform.app, args)
    assert result.exit_code == 0, result.output
    original = nib.load(image_path)
    flipped = nib.load(output)
    assert np.allclose(flipped.get_fdata(), original.get_fdata()[::-1], atol=1e-4)
    assert np.allclose(flipped.affine, original.affine)


def test_transform_unknown_name_fails_with_message(tmp_path: Path, image_path: Path) -> None:
    output = tmp_path / "out.nii.gz"
    result = runner.invoke(apply_transform.app, [str(image_path), "NoSuchTransform", str(output)])
    assert result.exit_code != 0
    assert 'Transform "NoSuchTransform" not found' in result.output
    assert not output.exists()


def test_transform_bad_kwargs_fail(tmp_path: Path, image_path: Path) -> None:
    output = tmp_path / "out.nii.gz"
    result = runner.invoke(
        apply_transform.app, [str(image_path), "Flip", str(output), "-k", "axes"]
    )
    assert result.exit_code != 0
    assert "key=value" in result.output


def test_transform_missing_input_fails(tmp_path: Path) -> None:
    result = runner.invoke(
        apply_transform.app, [str(tmp_path / "nope.nii"), "Flip", str(tmp_path / "o.nii")]
    )
    assert result.exit_code == 2  # click's usage error: the path does not exist


def test_transform_seed_is_reproducible(tmp_path: Path, image_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        output = tmp_path / f"{name}.nii.gz"
        args = [str(image_path), "RandomFlip", str(output), "-k", "axes=(0,1,2)", "--seed", "7"]
        result = runner.invoke(apply_transform.app, [*args, "--verbose", "-P"])
        assert result.exit_code == 0, result.output
        outputs.append(nib.load(output).get_fdata())
    assert np.array_equal(*outputs)


def test_transform_label_class(tmp_path: Path, label_path: Path) -> None:
    output = tmp_path / "seg_out.nii.gz"
    args = [str(label_path), "Flip", str(output), "-k", "axes=(1,)", "--imclass", "LabelMap"]
    result = runner.invoke(apply_transform.app, args)
    assert result.exit_code == 0, result.output
    flipped = tio.LabelMap(output)
    assert torch.equal(flipped.data, tio.LabelMap(label_path).data.flip(2))


def test_info_prints_repr(image_path: Path, label_path: Path) -> None:
    result = runner.invoke(print_info.app, [str(image_path)])
    assert result.exit_code == 0, result.output
    assert "ScalarImage(shape: (1, 9, 10, 11); spacing: (1.00, 2.00, 3.00)" in result.output
    assert f'path: "{image_path}"' in result.output
    loaded = runner.invoke(print_info.app, [str(image_path), "--load"])
    assert "dtype: torch.FloatTensor" in loaded.output and "memory: 3.9 KiB" in loaded.output
    label = runner.invoke(print_info.app, [str(label_path), "--label"])
    assert label.output.startswith("LabelMap(shape: (1, 9, 10, 11)")


def test_info_missing_file_fails(tmp_path: Path) -> None:
    result = runner.invoke(print_info.app, [str(tmp_path / "missing.nii.gz")])
    assert result.exit_code != 0


def test_umbrella_has_info_and_transform(tmp_path: Path, image_path: Path) -> None:
    info = runner.invoke(main.app, ["info", str(image_path)])
    assert info.exit_code == 0 and "ScalarImage(" in info.output
    output = tmp_path / "o.nii.gz"
    args = ["transform", str(image_path), "Flip", str(output), "-k", "axes=(0,)", "-P"]
    done = runner.invoke(main.app, args)
    assert done.exit_code == 0, done.output
    assert output.is_file()
    help_text = runner.invoke(main.app, ["--help"]).output
    for command in ("demo", "info", "transform", "plot", "preprocess"):
        assert command in help_text


def test_plot_command_writes_png_and_gif(tmp_path: Path, image_path: Path, label_path) -> None:
    png, gif = tmp_path / "fig.png", tmp_path / "anim.gif"
    args = ["plot", str(image_path), "-o", str(png), "--label-map", str(label_path)]
    result = runner.invoke(main.app, [*args, "--gif", str(gif), "--gif-axis", "1"])
    assert result.exit_code == 0, result.output
    with PILImage.open(png) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels.std() > 5
    with PILImage.open(gif) as animation:
        assert animation.n_frames == 10


def test_plot_command_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(main.app, ["plot", str(tmp_path / "nope.nii.gz"), "-o", "x.png"])
    assert result.exit_code != 0
