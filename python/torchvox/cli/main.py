"""The ``torchvox`` umbrella command.

Examples:
    torchvox demo --output demo-output
    torchvox demo --phantom --size 96
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="torchvox",
    help="Fast 3D medical image preprocessing, augmentation and patch sampling.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def demo(
    output: Path = typer.Option(Path("demo-output"), help="Folder for the demo's outputs."),
    phantom: bool = typer.Option(
        False, "--phantom", help="Use the synthetic phantom even when nilearn's MNI152 is there."
    ),
    size: int = typer.Option(128, help="Phantom size in voxels per axis (with --phantom)."),
    seed: int = typer.Option(0, help="torch seed for the random augmentations and patches."),
) -> None:
    """Run the end-to-end pipeline on the bundled sample and write its outputs."""
    from ..demo import run_demo

    report = run_demo(output, force_phantom=phantom, phantom_size=size, seed=seed)
    typer.echo(report.summary())


@app.command()
def plot(
    input_path: Path = typer.Argument(..., exists=True, readable=True, help="Image to plot."),
    output: Path | None = typer.Option(
        None, "--output", "-o", dir_okay=False, help="Write the figure (PNG, PDF, SVG...)."
    ),
    label_map: Path | None = typer.Option(
        None, "--label-map", "-l", exists=True, help="Label map shown in a second row."
    ),
    label: bool = typer.Option(False, "--label", help="Read INPUT_PATH as a label map."),
    gif: Path | None = typer.Option(
        None, "--gif", dir_okay=False, help="Also write an animated GIF of the slices."
    ),
    gif_axis: int = typer.Option(2, help="Spatial axis the GIF moves along (0, 1 or 2)."),
    gif_seconds: float = typer.Option(5.0, help="Duration of the GIF in seconds."),
) -> None:
    """Plot an image (three orthogonal slices, or the picture of a 2D image)."""
    from .. import LabelMap, ScalarImage, Subject
    from ..visualization import import_pyplot

    plt = import_pyplot()
    image = (LabelMap if label else ScalarImage)(input_path)
    show = output is None and gif is None
    if label_map is not None:
        subject = Subject(image=image, label=LabelMap(label_map))
        figure = subject.plot(return_fig=True, show=show, output_path=output)
    else:
        figure = image.plot(return_fig=True, show=show, output_path=output)
    plt.close(figure)
    if gif is not None:
        image.to_gif(axis=gif_axis, duration=gif_seconds, output_path=gif)
    for path in (output, gif):
        if path is not None:
            typer.echo(f"Wrote {path}")


@app.command()
def preprocess(
    inputs: Path = typer.Argument(
        ..., exists=True, help="Folder of images, CSV of subjects, or a single image."
    ),
    transform: str = typer.Argument(
        ..., help="Transform class name (e.g. RescaleIntensity) or YAML/JSON config file."
    ),
    output_dir: Path = typer.Argument(..., file_okay=False, help="Root of the output tree."),
    kwargs: str | None = typer.Option(
        None, "--kwargs", "-k", help='Transform arguments, e.g. "out_min_max=(0,1)".'
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-j", help="Local worker processes (default: all CPUs; 0: none)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (e.g. tcp://host:8786)."
    ),
    imclass: str = typer.Option("ScalarImage", "--imclass", "-c", help="Class to read inputs."),
    label_pattern: str | None = typer.Option(
        None, "--label-pattern", help="Glob of files (or CSV columns) read as label maps."
    ),
    suffix: str | None = typer.Option(None, help="Output suffix, e.g. .nii.gz."),
    seed: int = typer.Option(0, "--seed", "-s", help="Base seed of per-subject seeds."),
    overwrite: bool = typer.Option(False, help="Recompute outputs that exist."),
    report: Path | None = typer.Option(None, help="Write a JSON report there."),
    batch_size: int = typer.Option(1, help="Subjects sent to a worker at a time."),
    show_progress: bool = typer.Option(
        True, "--show-progress/--hide-progress", "-p/-P", help="Show a progress bar."
    ),
) -> None:
    """Apply a transform to every image of a folder (or CSV) into a mirrored tree.

    Resumable: finished outputs are skipped and outputs are written atomically. Inputs
    that fail (e.g. corrupt files) are listed at the end; the exit code is then 1.
    """
    from ..processing import preprocess as run_preprocess
    from .apply_transform import parse_kwargs

    is_config = transform.lower().endswith((".yaml", ".yml", ".json"))
    client = None
    if scheduler is not None:
        try:
            from dask.distributed import Client
        except ImportError as error:
            raise ImportError("--scheduler needs Dask: pip install 'dask[distributed]'") from error
        try:
            client = Client(scheduler, timeout=30)
        except OSError as error:
            typer.echo(f"Error: cannot reach the Dask scheduler at {scheduler}: {error}", err=True)
            raise typer.Exit(code=2) from error
    try:
        result = run_preprocess(
            inputs,
            Path(transform) if is_config else transform,
            output_dir,
            client=client,
            transform_kwargs=parse_kwargs(kwargs) if kwargs else None,
            image_class=imclass,
            label_pattern=label_pattern,
            suffix=suffix,
            num_workers=workers,
            seed=seed,
            overwrite=overwrite,
            progress=show_progress,
            report_path=report,
            tasks_per_batch=batch_size,
        )
    finally:
        if client is not None:
            client.close()
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(code=1)


def _register_subapps() -> None:
    from .apply_transform import main as transform_command
    from .print_info import main as info_command

    app.command("transform", help="Apply a transform to an image file.")(transform_command)
    app.command("info", help="Print what an image file holds.")(info_command)


_register_subapps()


@app.callback()
def _main() -> None:
    """torchvox: TorchIO's API with a Rust core."""


if __name__ == "__main__":
    app()
