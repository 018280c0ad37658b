"""Downloading and unpacking dataset files: urllib, MD5 checks, zip/tar extraction.

Every failure (no network, HTTP error, wrong checksum, missing files) ends in a
:class:`DatasetNotFoundError` that names the URL and the folder layout the dataset
class expects, so data fetched by hand on another machine can be put in place.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..types import TypePath

__all__ = [
    "DatasetNotFoundError",
    "calculate_md5",
    "check_integrity",
    "check_md5",
    "download_and_extract_archive",
    "download_url",
    "extract_archive",
    "require_files",
]

#: Seconds to wait for a server before giving up.
TIMEOUT = 60
_CHUNK = 1 << 20


class DatasetNotFoundError(FileNotFoundError, RuntimeError):
    """The data of a dataset are missing and could not be downloaded.

    Subclasses both ``FileNotFoundError`` and ``RuntimeError`` (what TorchIO raises
    for a dataset that is not found).
    """


def calculate_md5(fpath: TypePath, chunk_size: int = _CHUNK) -> str:
    """Hex MD5 digest of a file, read in chunks (TorchIO's argument names)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(fpath, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(fpath: TypePath, md5: str, **kwargs: Any) -> bool:
    """Whether the file's MD5 digest is ``md5`` (case-insensitive); ``kwargs`` go to
    :func:`calculate_md5`."""
    return calculate_md5(fpath, **kwargs) == md5.lower()


def check_integrity(fpath: TypePath, md5: str | None = None) -> bool:
    """Whether the file exists and, if ``md5`` is given, has that digest."""
    if not Path(fpath).is_file():
        return False
    return md5 is None or check_md5(fpath, md5)


def _layout_message(layout: str | None) -> str:
    return f"\nExpected layout:\n{layout}" if layout else ""


def download_url(
    url: str,
    root: TypePath,
    filename: str | None = None,
    md5: str | None = None,
    layout: str | None = None,
) -> Path:
    """Download ``url`` into ``root/filename`` unless a file with the right MD5 is there.

    The data go to a temporary file that is renamed once complete and checked, so an
    interrupted download never looks finished.

    Args:
        url: Address of the file.
        root: Folder to write into (created if needed).
        filename: Name of the file; the last part of the URL path if ``None``.
        md5: Expected MD5 digest; not checked if ``None``.
        layout: Description of the expected files, for the error message.

    Returns:
        The path of the downloaded file.

    Raises:
        DatasetNotFoundError: If the download fails or the checksum does not match.
    """
    root = Path(root).expanduser()
    if filename is None:
        filename = Path(urllib.request.url2pathname(url.split("?")[0])).name
    path = root / filename
    if check_integrity(path, md5):
        return path
    root.mkdir(parents=True, exist_ok=True)
    temporary = root / f".{filename}.{uuid.uuid4().hex}.part"
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "torchvox"})
        with (
            urllib.request.urlopen(request, timeout=TIMEOUT) as response,
            open(temporary, "wb") as handle,
        ):
            shutil.copyfileobj(response, handle, _CHUNK)
        if md5 is not None and not check_md5(temporary, md5):
            raise DatasetNotFoundError(
                f"The file downloaded from {url} has MD5 {calculate_md5(temporary)}, expected"
                f" {md5}; the download is corrupt or the file changed on the server."
                f" Download it by hand to {path}.{_layout_message(layout)}"
            )
        os.replace(temporary, path)
    except (urllib.error.URLError, OSError, ValueError) as error:
        if isinstance(error, DatasetNotFoundError):
            raise
        raise DatasetNotFoundError(
            f"Could not download {url} ({error})."
            + (
                f" Without network access, download it on another machine and put it at {path}."
                f"{_layout_message(layout)}"
                if layout is not None
                else ""
            )
        ) from error
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _safe_members(names: Iterable[str], destination: Path) -> None:
    """Refuse archive members that would be written outside ``destination``."""
    base = destination.resolve()
    for name in names:
        target = (base / name).resolve()
        if target != base and base not in target.parents:
            raise DatasetNotFoundError(f'Archive member "{name}" points outside {base}')


def extract_archive(
    from_path: TypePath, to_path: TypePath | None = None, remove_finished: bool = False
) -> Path:
    """Extract a ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz`` or ``.gz`` file.

    Args:
        from_path: Archive to extract.
        to_path: Destination folder; the archive's folder if ``None``.
        remove_finished: Delete the archive afterwards.

    Returns:
        The destination folder.

    Raises:
        DatasetNotFoundError: For an unknown or corrupt archive, or unsafe member paths.
    """
    source = Path(from_path)
    destination = Path(to_path) if to_path is not None else source.parent
    destination.mkdir(parents=True, exist_ok=True)
    name = source.name.lower()
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                _safe_members(archive.namelist(), destination)
                archive.extractall(destination)
        elif name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2")) or (
            tarfile.is_tarfile(source)
        ):
            with tarfile.open(source) as archive:
                _safe_members(archive.getnames(), destination)
                archive.extractall(destination, filter="data")
        elif name.endswith(".gz"):
            with gzip.open(source, "rb") as packed, open(destination / source.stem, "wb") as out:
                shutil.copyfileobj(packed, out, _CHUNK)
        else:
            raise DatasetNotFoundError(f'Extraction of "{source}" is not supported')
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as error:
        if isinstance(error, DatasetNotFoundError):
            raise
        raise DatasetNotFoundError(f'Could not extract "{source}": {error}') from error
    if remove_finished:
        source.unlink()
    return destination


def download_and_extract_archive(
    url: str,
    download_root: TypePath,
    extract_root: TypePath | None = None,
    filename: str | None = None,
    md5: str | None = None,
    remove_finished: bool = False,
    layout: str | None = None,
) -> Path:
    """Download an archive (see :func:`download_url`) and extract it.

    Returns:
        The folder the archive was extracted into.
    """
    archive = download_url(url, download_root, filename=filename, md5=md5, layout=layout)
    return extract_archive(archive, extract_root or download_root, remove_finished)


def require_files(paths: Iterable[Path], url: str | None, layout: str) -> None:
    """Raise :class:`DatasetNotFoundError` naming ``url`` and ``layout`` if a path is missing."""
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        source = f"Download it from {url} or use" if url else "Use"
        raise DatasetNotFoundError(
            f"Dataset files not found: {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}. {source} download=True where the"
            f" class offers it.{_layout_message(layout)}"
        )
