"""One entry point for every supported file: format detection, reading and sanity checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_spines.io.atomic import recover_folder
from napari_spines.io.containers import HDF5_SUFFIXES, ZARR_SUFFIXES, read_hdf5, read_zarr
from napari_spines.io.tiff import TIFF_SUFFIXES, read_tiff
from napari_spines.io.volume import KNOWN_AXES, SPATIAL_AXES, Volume, VolumeReadError

Reader = Callable[..., list[Volume]]


def reader_for(path: str | Path) -> Reader | None:
    """The reader function for ``path``, or None when the path is not a format we read.

    Parameters
    ----------
    path
        File or folder, recognised by its suffix, or as a folder holding Zarr metadata.

    Returns
    -------
    Reader or None
        `~napari_spines.io.tiff.read_tiff`, `~napari_spines.io.containers.read_hdf5` or
        `~napari_spines.io.containers.read_zarr`, called as ``reader(path, lazy=...)``.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(TIFF_SUFFIXES):
        return read_tiff
    if name.endswith(HDF5_SUFFIXES):
        return read_hdf5
    if name.endswith(ZARR_SUFFIXES) or (
        path.is_dir() and any((path / f).exists() for f in (".zarray", ".zgroup", "zarr.json"))
    ):
        return read_zarr
    return None


def read_volumes(path: str | Path, lazy: bool | None = None) -> list[Volume]:
    """Read an image file (TIFF, OME-TIFF, ImageJ, HDF5, Zarr, OME-Zarr) as volumes.

    Parameters
    ----------
    path
        File or Zarr folder.
    lazy
        Keep data on disk (dask) instead of reading it; ``None`` decides by size.

    Returns
    -------
    list of Volume
        The image first, then any label volumes found beside it.

    Raises
    ------
    VolumeReadError
        With a one-line message, for a missing, unsupported, empty or unusable file.
    """
    path = Path(path)
    if not path.exists() and not recover_folder(path):  # a Zarr output killed mid-swap
        raise VolumeReadError(f"{path}: no such file")
    reader = reader_for(path)
    if reader is None:
        raise VolumeReadError(f"{path.name}: not a supported format (TIFF, HDF5 or Zarr)")
    if path.is_file() and path.stat().st_size == 0:
        raise VolumeReadError(f"{path.name}: the file is empty")
    volumes = [in_canonical_order(v) for v in reader(path, lazy=lazy)]
    for volume in volumes:
        check_volume(volume)
    return volumes


def in_canonical_order(volume: Volume) -> Volume:
    """``volume`` with its axes in ``TCZYX`` order (ImageJ writes ``TZCYX``, for example).

    Every consumer (the engine, the layers) can then rely on ``C`` just before ``Z, Y, X``.
    The data is transposed without a copy (a view, or a lazy dask transpose).

    Parameters
    ----------
    volume
        A volume as a reader returned it.

    Returns
    -------
    Volume
        The same volume when its axes already are in order.
    """
    order = sorted(range(len(volume.axes)), key=lambda i: KNOWN_AXES.index(volume.axes[i]))
    if order == list(range(len(volume.axes))):
        return volume
    axes = "".join(volume.axes[i] for i in order)
    spatial = [a for a in volume.axes if a in SPATIAL_AXES]
    sizes = dict(zip(spatial, volume.voxel_size_um, strict=True))
    levels = [level.transpose(order) for level in volume.levels]
    return dataclasses.replace(
        volume,
        data=levels if volume.multiscale else levels[0],
        axes=axes,
        voxel_size_um=tuple(sizes[a] for a in axes if a in SPATIAL_AXES),
    )


def check_volume(volume: Volume) -> None:
    """Raise `VolumeReadError` for data no viewer or model can use (1D, empty, all NaN).

    Parameters
    ----------
    volume
        A volume as a reader returned it.

    Raises
    ------
    VolumeReadError
        Fewer than two spatial axes longer than 1, a zero-length axis, or nothing but NaN and
        infinite values (for lazy data, in the middle plane).
    """
    sizes = zip(volume.axes, volume.shape, strict=True)
    n_spatial = sum(axis in SPATIAL_AXES and n > 1 for axis, n in sizes)
    if n_spatial < 2 and 0 not in volume.shape:
        raise VolumeReadError(f"{volume.name}: {n_spatial}D data; need an image of 2D or more")
    if 0 in volume.shape:
        raise VolumeReadError(f"{volume.name}: the data is empty (shape {volume.shape})")
    if volume.dtype.kind in "fc" and not np.isfinite(_sample(volume)).any():
        raise VolumeReadError(f"{volume.name}: every value is NaN or infinite")


def _sample(volume: Volume) -> np.ndarray:
    """All of in-memory data; the middle plane of lazy data (reading it all would be slow)."""
    data = volume.levels[-1] if volume.multiscale else volume.data
    if isinstance(data, np.ndarray):
        return data
    index = (*(n // 2 for n in data.shape[:-2]), slice(None), slice(None))
    plane = data[index]
    return np.asarray(plane.compute() if hasattr(plane, "compute") else plane)
