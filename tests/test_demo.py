"""The end-to-end demo runs on the phantom and writes every output it promises."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from torchvox.cli.main import app
from torchvox.demo import OUTPUT_FILES, run_demo


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    report = run_demo(output, force_phantom=True, phantom_size=48, progress=False)
    return output, report


def test_demo_writes_every_output(demo_output):
    output, report = demo_output
    for name in OUTPUT_FILES:
        assert (output / name).stat().st_size > 0, name
    assert report.sample.startswith("Phantom")
    expected_steps = {"load", "preprocess", "augment", "patches (Queue)", "grid inference"}
    assert expected_steps <= set(report.timings_ms)
    assert "| total |" in (output / "timings.md").read_text()


def test_inverted_prediction_is_on_the_preprocessed_grid(demo_output):
    output, _ = demo_output
    preprocessed = nib.load(output / "t1_preprocessed.nii.gz")
    inverted = nib.load(output / "prediction_inverted.nii.gz")
    assert inverted.shape[:3] == preprocessed.shape[:3]
    np.testing.assert_allclose(inverted.affine, preprocessed.affine, atol=1e-5)
    labels = np.unique(np.asarray(inverted.dataobj))
    assert set(labels.tolist()) <= {0, 1, 2}


def test_demo_figure_is_not_blank(demo_output):
    from PIL import Image as PILImage

    output, _ = demo_output
    picture = np.asarray(PILImage.open(output / "original_vs_augmented.png").convert("L"))
    assert picture.shape[0] > 300 and picture.shape[1] > 500
    assert picture.std() > 20


def test_demo_command_line(tmp_path):
    result = CliRunner().invoke(
        app, ["demo", "--phantom", "--size", "40", "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "torchvox demo on Phantom 40^3" in result.output
