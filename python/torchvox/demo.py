"""The end-to-end demo behind ``make demo`` and ``torchvox demo``.

It runs what a training script does with torchvox, on the bundled sample (the
MNI152 2009a template from nilearn when installed, else the synthetic
:class:`~torchvox.datasets.Phantom`), times every step and writes its results:

1. load the subject;
2. preprocess: reorient to RAS, resample, crop or pad, z-normalise;
3. augment with one ``Compose`` that uses every family of transforms;
4. train-style patch sampling through a ``Queue`` and a ``SubjectsLoader``;
5. grid inference with a tiny PyTorch model and a ``GridAggregator``;
6. invert the augmentation on the prediction (test-time augmentation style);
7. write NIfTI files, a PNG figure and the timing table into the output folder.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import datasets
from .data import LabelMap, Subject

#: Names of the files the demo writes into its output folder.
OUTPUT_FILES = (
    "t1_preprocessed.nii.gz",
    "t1_augmented.nii.gz",
    "tissues_augmented.nii.gz",
    "prediction_augmented_space.nii.gz",
    "prediction_inverted.nii.gz",
    "original_vs_augmented.png",
    "timings.md",
)


@dataclass
class DemoReport:
    """What the demo did: the sample used, per-step timings and written files."""

    sample: str
    output_dir: Path
    timings_ms: dict[str, float] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    def timing_table(self) -> str:
        """Return the per-step timings as a Markdown table."""
        lines = ["| step | ms | details |", "|---|---|---|"]
        for step, milliseconds in self.timings_ms.items():
            lines.append(f"| {step} | {milliseconds:.1f} | {self.details.get(step, '')} |")
        lines.append(f"| total | {sum(self.timings_ms.values()):.1f} | |")
        return "\n".join(lines)

    def summary(self) -> str:
        """Return a short human-readable summary for the terminal."""
        return (
            f"torchvox demo on {self.sample}: {len(self.timings_ms)} steps in "
            f"{sum(self.timings_ms.values()) / 1000:.2f} s; outputs in {self.output_dir}/\n"
            + self.timing_table()
        )


class _Steps:
    """Runs named steps with a progress bar, recording the time of each."""

    def __init__(self, report: DemoReport, total: int, progress: bool) -> None:
        self.report = report
        self._progress: Any = None
        self._task: Any = None
        if progress:
            from rich.progress import Progress

            self._progress = Progress(transient=False)
            self._task = self._progress.add_task("torchvox demo", total=total)

    def __enter__(self) -> _Steps:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def run(self, name: str, function: Callable[[], Any]) -> Any:
        if self._progress is not None:
            self._progress.update(self._task, description=name)
        start = time.perf_counter()
        result = function()
        self.report.timings_ms[name] = (time.perf_counter() - start) * 1000
        if self._progress is not None:
            self._progress.advance(self._task)
        return result


def load_sample(force_phantom: bool = False, phantom_size: int = 128) -> tuple[Subject, str]:
    """Return the bundled sample subject and its name.

    Args:
        force_phantom: Use the phantom even when nilearn (and so MNI152) is installed.
        phantom_size: Voxels per axis of the phantom.

    Returns:
        A subject with a ``'t1'`` ScalarImage and a ``'tissues'`` LabelMap, and a name.
    """
    if not force_phantom:
        try:
            return datasets.MNI152(), "MNI152 2009a (nilearn)"
        except ImportError:
            pass
    return datasets.Phantom(size=phantom_size), f"Phantom {phantom_size}^3"


def preprocessing(spacing: float) -> Any:
    """The preprocessing pipeline: canonical orientation, spacing, shape, intensities."""
    import torchvox as tio

    return tio.Compose(
        [
            tio.ToCanonical(),
            tio.Resample(spacing),
            tio.EnsureShapeMultiple(8, method="crop"),
            tio.ZNormalization(masking_method=tio.ZNormalization.mean),
        ]
    )


def augmentation() -> Any:
    """One Compose using every family: spatial, k-space, intensity and label transforms."""
    import torchvox as tio

    return tio.Compose(
        [
            tio.RandomFlip(axes=("LR",)),
            tio.RandomAffine(scales=0.1, degrees=10, translation=5),
            tio.RandomElasticDeformation(num_control_points=7, max_displacement=4),
            tio.RandomMotion(degrees=5, translation=5, num_transforms=2),
            tio.RandomGhosting(intensity=(0.2, 0.5)),
            tio.RandomBiasField(coefficients=0.3),
            tio.RandomGamma(log_gamma=0.2),
            tio.RandomNoise(std=(0, 0.05)),
            tio.SequentialLabels(),
        ]
    )


class TinySegmenter(torch.nn.Module):
    """A three-layer 3D CNN standing in for a real segmentation network.

    Input ``(B, 1, I, J, K)``; output class probabilities ``(B, 3, I, J, K)``.
    """

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv3d(1, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv3d(8, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv3d(8, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).softmax(dim=1)


def sample_patches(subject: Subject, augment: Any, patch_size: int, batches: int) -> str:
    """Draw training batches of patches through a Queue; return a description."""
    import torchvox as tio

    dataset = tio.SubjectsDataset([subject] * 4, transform=augment)
    sampler = tio.LabelSampler(
        patch_size, label_name="tissues", label_probabilities={0: 1, 1: 2, 2: 2}
    )
    queue = tio.Queue(dataset, max_length=16, samples_per_volume=4, sampler=sampler, num_workers=0)
    loader = tio.SubjectsLoader(queue, batch_size=4, num_workers=0)
    shapes = []
    for index, batch in enumerate(loader):
        shapes.append(tuple(batch["t1"]["data"].shape))
        if index + 1 == batches:
            break
    return f"{len(shapes)} batches of shape {shapes[0]}"


@torch.no_grad()
def grid_inference(subject: Subject, model: torch.nn.Module, patch_size: int) -> torch.Tensor:
    """Predict tissue classes patch by patch and aggregate them into ``(1, I, J, K)`` labels."""
    import torchvox as tio

    sampler = tio.GridSampler(subject, patch_size, patch_overlap=8)
    aggregator = tio.GridAggregator(sampler, overlap_mode="hann")
    loader = tio.SubjectsLoader(sampler, batch_size=4)
    for batch in loader:
        probabilities = model(batch["t1"]["data"].float())
        aggregator.add_batch(probabilities, batch[tio.LOCATION])
    return aggregator.get_output_tensor().argmax(dim=0, keepdim=True).to(torch.uint8)


def write_figure(original: Subject, augmented: Subject, path: Path) -> None:
    """Save three orthogonal slices of the original and augmented subjects with labels."""
    import numpy as np

    from .visualization import import_pyplot, label_colormap

    plt = import_pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(10, 7))
    num_labels = int(max(original["tissues"].data.max(), augmented["tissues"].data.max()))
    cmap, norm = label_colormap(num_labels)
    for row, (title, subject) in enumerate((("preprocessed", original), ("augmented", augmented))):
        t1 = subject["t1"].data[0].float().numpy()
        labels = subject["tissues"].data[0].numpy()
        low, high = np.percentile(t1, (1, 99))
        centre = [size // 2 for size in t1.shape]
        views = {
            "sagittal": (t1[centre[0]], labels[centre[0]]),
            "coronal": (t1[:, centre[1]], labels[:, centre[1]]),
            "axial": (t1[:, :, centre[2]], labels[:, :, centre[2]]),
        }
        for column, (view, (image, label)) in enumerate(views.items()):
            axis = axes[row, column]
            axis.imshow(image.T, cmap="gray", origin="lower", vmin=low, vmax=high)
            axis.imshow(
                label.T, cmap=cmap, norm=norm, alpha=0.3, origin="lower", interpolation="nearest"
            )
            axis.set_title(f"{title} {view}")
            axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def run_demo(
    output_dir: Path | str = "demo-output",
    force_phantom: bool = False,
    phantom_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> DemoReport:
    """Run the end-to-end pipeline and write its outputs into ``output_dir``.

    Args:
        output_dir: Folder for the NIfTI files, the figure and the timing table.
        force_phantom: Use the synthetic phantom even if MNI152 is available.
        phantom_size: Voxels per axis of the phantom.
        seed: Seed of torch's RNG, which drives every random choice.
        progress: Show a progress bar.

    Returns:
        The report with timings and details of every step.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="torchvox")

    sample, name = load_sample(force_phantom, phantom_size)
    report = DemoReport(sample=name, output_dir=output_dir)
    spacing = 1.5 if "MNI" in name else 1.0
    with _Steps(report, total=8, progress=progress) as steps:
        steps.run("load", sample.load)
        report.details["load"] = f"t1 {tuple(sample['t1'].shape)}"

        preprocessed = steps.run("preprocess", lambda: preprocessing(spacing)(sample))
        report.details["preprocess"] = f"t1 {tuple(preprocessed['t1'].shape)}, {spacing} mm"
        # Patches must fit well inside the volume for the label sampler to have room.
        patch_size = max(8, min(48, min(preprocessed.spatial_shape) // 2 // 8 * 8))

        # Only the augmentation is to be inverted on the prediction, so the augmented
        # subject's history starts after preprocessing.
        preprocessed.clear_history()
        augment = augmentation()
        augmented = steps.run("augment", lambda: augment(preprocessed))
        report.details["augment"] = f"{len(augmented.history)} transforms recorded"

        details = steps.run(
            "patches (Queue)", lambda: sample_patches(preprocessed, augment, patch_size, 3)
        )
        report.details["patches (Queue)"] = details

        model = TinySegmenter().eval()
        prediction = steps.run(
            "grid inference", lambda: grid_inference(augmented, model, patch_size)
        )
        report.details["grid inference"] = f"prediction {tuple(prediction.shape)}"

        def invert() -> Subject:
            augmented.add_image(
                LabelMap(tensor=prediction, affine=augmented["t1"].affine), "prediction"
            )
            return augmented.apply_inverse_transform(warn=False)

        inverted = steps.run("invert augmentation", invert)
        report.details["invert augmentation"] = "prediction back in preprocessed space"

        def write() -> None:
            preprocessed["t1"].save(output_dir / "t1_preprocessed.nii.gz")
            augmented["t1"].save(output_dir / "t1_augmented.nii.gz")
            augmented["tissues"].save(output_dir / "tissues_augmented.nii.gz")
            augmented["prediction"].save(output_dir / "prediction_augmented_space.nii.gz")
            inverted["prediction"].save(output_dir / "prediction_inverted.nii.gz")
            write_figure(preprocessed, augmented, output_dir / "original_vs_augmented.png")

        steps.run("write outputs", write)
        steps.run("check", lambda: _check_outputs(output_dir, preprocessed, inverted))
    (output_dir / "timings.md").write_text(report.timing_table() + "\n")
    return report


def _check_outputs(output_dir: Path, preprocessed: Subject, inverted: Subject) -> None:
    """Fail loudly if an output is missing or the inverted prediction is off-grid."""
    missing = [name for name in OUTPUT_FILES[:-1] if not (output_dir / name).is_file()]
    if missing:
        raise RuntimeError(f"the demo did not write {missing} into {output_dir}")
    if inverted["prediction"].spatial_shape != preprocessed["t1"].spatial_shape:
        raise RuntimeError(
            "the inverted prediction is not on the preprocessed grid: "
            f"{inverted['prediction'].spatial_shape} != {preprocessed['t1'].spatial_shape}"
        )
