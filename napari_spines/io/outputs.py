"""Network outputs on disk: float32 OME-TIFF with voxel size, or a chunked Zarr array.

Both are all-or-nothing: written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_spines.io.atomic import atomic_folder, atomic_path


def write_float_tiff(
    path: str | Path, array: Any, axes: str, voxel_size_um: Sequence[float], dtype: Any = np.float32
) -> Path:
    """Write ``array`` (e.g. ``CZYX``) atomically as OME-TIFF with the voxel size in µm.

    Network outputs are float32 (the default ``dtype``); stacks keep their own with ``dtype``.

    Parameters
    ----------
    path
        Destination file, e.g. ``result.ome.tif``.
    array
        Array-like with axes ``axes``; it is read whole into memory.
    axes
        Axis letters of ``array``, e.g. ``"CZYX"``.
    voxel_size_um
        Voxel size in µm; its last values are used, one per ``Z``, ``Y``, ``X`` in ``axes``.
    dtype
        Data type written; default float32.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    spatial = [a for a in axes if a in "ZYX"]
    sizes = dict(zip(spatial, (float(v) for v in voxel_size_um[-len(spatial) :]), strict=True))
    metadata = {
        "axes": axes,
        **{f"PhysicalSize{a}": s for a, s in sizes.items()},
        **{f"PhysicalSize{a}Unit": "µm" for a in sizes},
    }
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            np.asarray(array, dtype=dtype),
            ome=True,
            metadata=metadata,
            compression="zlib",
            bigtiff=np.asarray(array).nbytes > 2**31,
        )
    return Path(path)


@contextlib.contextmanager
def zarr_output(
    path: str | Path, shape: Sequence[int], axes: str, voxel_size_um: Sequence[float]
) -> Iterator[Any]:
    """A zero-filled float32 Zarr array to predict into, swapped in for ``path`` at the end.

    The array lives in a temporary folder beside ``path`` (`atomic_folder`): only when the
    block succeeds does it replace ``path``, so an earlier output there survives a failure or
    a kill, and a half-written one is never seen. Use the array inside the block only.

    Parameters
    ----------
    path
        Folder of the Zarr array; an existing array there is replaced when the block succeeds.
    shape
        Shape of the output, e.g. ``(C_out, Z, Y, X)``.
    axes
        Axis letters of ``shape``, stored in the ``axes`` attribute.
    voxel_size_um
        Voxel size in µm, stored in the ``voxel_size`` attribute (``unit`` micrometer).

    Yields
    ------
    zarr.Array
        Uncompressed chunks of one ``C`` / ``T`` entry, up to 64 in ``Z`` and 256 in ``Y``, ``X``.
    """
    import zarr

    chunks = tuple(
        1 if a in "CT" else min(n, 64 if a == "Z" else 256)
        for a, n in zip(axes, shape, strict=True)
    )
    attributes = {
        "axes": axes,
        "voxel_size": [float(v) for v in voxel_size_um],
        "unit": "micrometer",
    }
    with atomic_folder(path) as tmp:
        # float32 network outputs barely compress, and every tile is read back and rewritten
        # once per overlapping neighbour: uncompressed chunks keep that cheap
        yield zarr.create_array(
            str(tmp),
            shape=tuple(shape),
            dtype="float32",
            chunks=chunks,
            fill_value=0,
            compressors=None,
            attributes=attributes,
        )
