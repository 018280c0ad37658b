"""``torchvox-transform``: apply one transform to an image file (TorchIO's ``tiotr``).

Example:
    torchvox-transform t1.nii.gz RandomMotion out.nii.gz --kwargs "degrees=(-5,15) num_transforms=3"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(add_completion=False)


def parse_kwargs(kwargs: str | None) -> dict[str, Any]:
    """Turn ``"key=value key2=value2"`` into a dict, values parsed as Python literals.

    Raises:
        ValueError: If a token is not of the form ``key=value``.
    """
    from ..utils import guess_type

    parameters: dict[str, Any] = {}
    for token in (kwargs or "").split():
        key, separator, value = token.partition("=")
        if not separator or not key:
            raise ValueError(f'Cannot parse "{token}" in --kwargs "{kwargs}": expected key=value')
        parameters[key] = guess_type(value)
    return parameters


def get_transform_class(name: str) -> type:
    """Return the transform class called ``name`` in :mod:`torchvox.transforms`.

    Raises:
        ValueError: If there is no such transform.
    """
    from .. import transforms

    transform_class = getattr(transforms, name, None)
    if not isinstance(transform_class, type):
        raise ValueError(f'Transform "{name}" not found in torchvox.transforms')
    return transform_class


@app.command()
def main(
    input_path: Path = typer.Argument(..., exists=True, readable=True, help="Image to read."),
    transform_name: str = typer.Argument(..., help="Transform class name, e.g. RandomAffine."),
    output_path: Path = typer.Argument(..., dir_okay=False, help="Image to write."),
    kwargs: str | None = typer.Option(
        None, "--kwargs", "-k", help='Transform arguments, e.g. "degrees=(-5,15) num_transforms=3".'
    ),
    imclass: str = typer.Option(
        "ScalarImage", "--imclass", "-c", help="Image class used to read the input."
    ),
    seed: int | None = typer.Option(None, "--seed", "-s", help="Seed of torch's RNG."),
    verbose: bool = typer.Option(False, help="Print the parameters the transform applied."),
    show_progress: bool = typer.Option(
        True, "--show-progress/--hide-progress", "-p/-P", help="Show a spinner while working."
    ),
) -> None:
    """Apply a transform to an image and save the result."""
    import torch
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from ..utils import apply_transform_to_file

    try:
        transform = get_transform_class(transform_name)(**parse_kwargs(kwargs))
    except (ValueError, TypeError) as error:
        # Unknown names and bad arguments are user errors: a message, not a traceback.
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    if seed is not None:
        torch.manual_seed(seed)
    columns = (SpinnerColumn(), TextColumn("[progress.description]{task.description}"))
    with Progress(*columns, transient=True, disable=not show_progress) as progress:
        progress.add_task(f"Applying {transform_name}", total=1)
        apply_transform_to_file(input_path, transform, output_path, class_=imclass, verbose=verbose)


if __name__ == "__main__":
    app()
