"""Label volumes to TIFF with their voxel size, readable in Fiji with µm units.

A labels TIFF may carry its proofreading edit log (JSON) in a private tag, `EDIT_LOG_TAG`, so
that labels and log are saved by one atomic rename and can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from napari_spines.io.atomic import atomic_path

#: Private TIFF tag (type UNDEFINED, first page) holding the edit log as UTF-8 JSON.
EDIT_LOG_TAG = 65419


def write_labels_tiff(
    path: str | Path,
    labels: np.ndarray,
    voxel_size_um: Sequence[float],
    axes: str | None = None,
    edit_log: str | None = None,
) -> Path:
    """Write labels atomically as an ImageJ TIFF (uint8/uint16) or an OME-TIFF (larger ids).

    ImageJ TIFF stores only 8- and 16-bit integers, so label volumes with ids above 65535 are
    written as uint32 OME-TIFF, which Fiji opens through Bio-Formats with the same µm scale.

    Parameters
    ----------
    path
        Destination ``.tif``.
    labels
        Integer array, ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Z, Y, X)``.
    voxel_size_um
        Voxel size of the spatial axes (last two or three), in µm.
    axes
        Axis letters; default ``YX``, ``ZYX`` or ``TZYX`` by dimension.
    edit_log
        The edit log as JSON text, stored in the `EDIT_LOG_TAG` tag (`read_edit_log`); None:
        none.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        ``labels`` are not integers, are negative, or do not fit ``axes``.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers, not {labels.dtype}")
    if labels.min(initial=0) < 0:
        raise ValueError("labels must not be negative")
    axes = axes or "TZYX"[-labels.ndim :]
    if len(axes) != labels.ndim:
        raise ValueError(f"axes {axes!r} do not fit a {labels.ndim}D array")
    sizes = dict(zip("ZYX"[-len(voxel_size_um) :], map(float, voxel_size_um), strict=True))
    resolution = (1.0 / sizes["X"], 1.0 / sizes["Y"])
    high = int(labels.max(initial=0))
    extratags = []
    if edit_log is not None:
        data = edit_log.encode("utf-8")
        extratags.append((EDIT_LOG_TAG, 7, len(data), data, True))
    with atomic_path(path) as tmp:
        if high <= np.iinfo(np.uint16).max:
            dtype = np.uint8 if high <= 255 else np.uint16
            tifffile.imwrite(
                tmp,
                labels.astype(dtype, copy=False),
                imagej=True,
                resolution=resolution,
                compression="zlib",
                metadata={"axes": axes, "unit": "um", "spacing": sizes.get("Z", 1.0)},
                extratags=extratags,
            )
        else:
            metadata = {
                "axes": axes,
                **{f"PhysicalSize{a}": s for a, s in sizes.items()},
                **{f"PhysicalSize{a}Unit": "µm" for a in sizes},
            }
            tifffile.imwrite(
                tmp,
                labels.astype(np.uint32, copy=False),
                ome=True,
                compression="zlib",
                metadata=metadata,
                extratags=extratags,
            )
    return Path(path)


def read_edit_log(path: str | Path) -> str | None:
    """The edit log stored in a labels TIFF by `write_labels_tiff`, as JSON text.

    Parameters
    ----------
    path
        A ``.tif`` or ``.tiff``.

    Returns
    -------
    str or None
        The JSON text; None when the TIFF carries no edit log.
    """
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags.get(EDIT_LOG_TAG)
        if tag is None:
            return None
        value = tag.value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
