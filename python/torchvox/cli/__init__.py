"""Command-line entry points of torchvox (typer apps)."""
