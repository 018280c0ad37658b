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
