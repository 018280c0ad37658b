"""TorchIO's ``torchio.download`` import path; see :mod:`torchvox.datasets.download`."""

from .datasets.download import (
    calculate_md5,
    check_integrity,
    check_md5,
    download_and_extract_archive,
    download_url,
    extract_archive,
)

__all__ = [
    "calculate_md5",
    "check_integrity",
    "check_md5",
    "download_and_extract_archive",
    "download_url",
    "extract_archive",
]
