"""When to keep data on disk instead of reading it into memory."""

from __future__ import annotations

import os
from pathlib import Path

#: Files at least this large open lazily (dask) unless told otherwise.
LAZY_THRESHOLD_BYTES = int(float(os.environ.get("NAPARI_SPINES_LAZY_MB", "300")) * 2**20)


def path_size_bytes(path: Path) -> int:
    """Size of a file, or the total size of the files under a folder (Zarr).

    Parameters
    ----------
    path
        A file, or a folder such as a Zarr store.

    Returns
    -------
    int
        Size in bytes.
    """
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def should_open_lazily(path: Path, lazy: bool | None) -> bool:
    """``lazy`` when given, else True for files of at least ``LAZY_THRESHOLD_BYTES``.

    Parameters
    ----------
    path
        The file or folder to be read.
    lazy
        The caller's choice; None: decide by size (``$NAPARI_SPINES_LAZY_MB`` sets the
        threshold in MiB, default 300).

    Returns
    -------
    bool
    """
    if lazy is not None:
        return lazy
    return path_size_bytes(path) >= LAZY_THRESHOLD_BYTES
