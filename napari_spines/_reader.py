"""npe2 reader: image stacks (TIFF, HDF5, Zarr) and point tables (CSV) into napari layers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari_spines.io.layers import (
    LayerData,
    placement,
    spine_points_style,
    volume_to_layer_data,
)
from napari_spines.io.points_csv import looks_like_points_csv, read_points_csv
from napari_spines.io.read import read_volumes, reader_for
from napari_spines.io.volume import VolumeReadError

#: What napari treats as "this file is empty": nothing added, no error dialog.
_NOTHING: list = [(None,)]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list] | None:
    """Return a reader for the paths we can read, None for any other path."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or not all(reader_for(p) or looks_like_points_csv(p) for p in paths):
        return None
    return read_paths


def read_paths(path: str | list[str]) -> list:
    """Read each path into layer data; a bad file gives one notification, never a traceback."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        try:
            layers += layer_data_for(p)
        except VolumeReadError as exc:
            from napari.utils.notifications import show_error

            show_error(f"napari-spines could not open {exc}")
    return layers or _NOTHING


def layer_data_for(path: str | Path) -> list[LayerData]:
    """Layer data of one stack or spine table; raises `VolumeReadError` for a bad file."""
    if looks_like_points_csv(path):
        return points_layer_data(path)
    return [ld for v in read_volumes(path) for ld in volume_to_layer_data(v)]


def points_layer_data(path: str | Path) -> list[LayerData]:
    """A points CSV as a Points layer with its properties and µm scale."""
    coords, voxel_size_um, properties = read_points_csv(path)
    axes = "T" * (coords.shape[1] > len(voxel_size_um)) + "ZYX"[-len(voxel_size_um) :]
    meta = {
        **placement(axes, voxel_size_um),
        "name": Path(path).stem,
        "features": properties,
        **spine_points_style(voxel_size_um),
        "metadata": {"axes": axes},
    }
    return [(coords, meta, "points")]
