"""``torchvox-info``: print what an image file holds (TorchIO's ``tiohd``).

Example:
    torchvox-info t1.nii.gz --load
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False)


@app.command()
def main(
    input_path: Path = typer.Argument(..., exists=True, readable=True, help="Image to read."),
    plot: bool = typer.Option(False, "--plot/--no-plot", "-p/-P", help="Plot the image."),
    show: bool = typer.Option(
        False, "--show/--no-show", "-s/-S", help="Open the image in an external viewer."
    ),
    label: bool = typer.Option(
        False, "--label/--scalar", "-l/-s", help="Read the image as a label map."
    ),
    load: bool = typer.Option(False, help="Load the data to report its dtype and memory."),
) -> None:
    """Print the shape, spacing, orientation (and, with --load, dtype and memory) of an image."""
    from .. import LabelMap, ScalarImage

    image_class = LabelMap if label else ScalarImage
    image = image_class(input_path)
    if load:
        image.load()
    typer.echo(repr(image))
    if plot:
        image.plot()
    if show:
        image.show()


if __name__ == "__main__":
    app()
