"""When to keep data on disk instead of reading it into memory: by its decompressed size."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.io.volume import VolumeReadError
from napari_spines.validation import format_bytes, memory_bytes

#: Data at least this large (decompressed) opens lazily (dask) unless told otherwise.
LAZY_THRESHOLD_BYTES = int(float(os.environ.get("NAPARI_SPINES_LAZY_MB", "300")) * 2**20)


def decompressed_bytes(shape: Sequence[int], dtype: Any) -> int:
    """Bytes an array of ``shape`` and ``dtype`` takes in memory (not on disk).

    Parameters
    ----------
    shape
        The array's shape.
    dtype
        Its data type.

    Returns
    -------
    int

    Examples
    --------
    >>> decompressed_bytes((60, 4096, 4096), "uint16") / 2**30
    1.875
    """
    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize


def path_size_bytes_on_disk(path: Path) -> int:
    """Size on disk of a file, or of the files under a folder (Zarr): shown by ``info``.

    Parameters
    ----------
    path
        A file or a folder.

    Returns
    -------
    int
        Bytes.
    """
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def should_open_lazily(nbytes: int, lazy: bool | None, name: str = "the data") -> bool:
    """``lazy`` when given, else True for data of at least ``LAZY_THRESHOLD_BYTES``.

    The size is the decompressed one: a compressed file or a sparse Zarr store of a few KB
    can hold gigabytes.

    Parameters
    ----------
    nbytes
        Decompressed size of the data (`decompressed_bytes`).
    lazy
        The caller's choice; None: decide by size (``$NAPARI_SPINES_LAZY_MB`` sets the
        threshold in MiB, default 300).
    name
        The file, named in the error.

    Returns
    -------
    bool

    Raises
    ------
    VolumeReadError
        ``lazy`` is False and the data is larger than this machine's memory.
    """
    if lazy is None:
        return nbytes >= LAZY_THRESHOLD_BYTES
    if not lazy and nbytes > memory_bytes():
        raise VolumeReadError(
            f"{name}: {format_bytes(nbytes)} does not fit in memory "
            f"({format_bytes(memory_bytes())}); open it lazily"
        )
    return lazy
