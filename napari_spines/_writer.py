"""npe2 writers: Labels → TIFF with voxel size; Points → CSV with voxels, µm and properties."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from napari_spines.errors import DataWarning
from napari_spines.io.labels_tiff import write_labels_tiff
from napari_spines.io.points_csv import write_points_csv
from napari_spines.voxel_size import assumed_size_warning


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write a Labels layer as a TIFF whose metadata carries the layer's scale in µm."""
    labels = np.asarray(data[0] if meta.get("multiscale") else data)
    n_spatial = min(labels.ndim, 3)
    voxel = _spatial_scale(meta, labels.ndim, n_spatial)
    _warn_if_assumed(meta, path, voxel)
    axes = (meta.get("metadata") or {}).get("axes")
    axes = axes if isinstance(axes, str) and len(axes) == labels.ndim else None
    return [str(write_labels_tiff(path, labels, voxel, axes=axes))]


def write_points(path: str, data: Any, meta: dict) -> list[str]:
    """Write a Points layer as CSV: voxel and µm coordinates plus every feature column."""
    coords = np.asarray(data, dtype=float)
    ndim = coords.shape[1] if coords.ndim == 2 else len(meta.get("scale", ())) or 3
    n_spatial = min(ndim, 3)
    features = meta.get("features")
    if features is None or len(features) == 0:
        features = meta.get("properties") or {}
    properties = {str(k): np.asarray(features[k]) for k in features}
    voxel = _spatial_scale(meta, ndim, n_spatial)
    _warn_if_assumed(meta, path, voxel)
    return [str(write_points_csv(path, coords.reshape(-1, ndim), voxel, properties))]


def _spatial_scale(meta: dict, ndim: int, n_spatial: int) -> tuple[float, ...]:
    scale = tuple(float(s) for s in meta.get("scale", (1.0,) * ndim))
    return scale[-n_spatial:]


def _warn_if_assumed(meta: dict, path: str, voxel: tuple[float, ...]) -> None:
    """Warn (a napari notification) when the layer's voxel size was assumed, not read."""
    if (meta.get("metadata") or {}).get("voxel_size_known", True) is False:
        warnings.warn(f"{path}: {assumed_size_warning(voxel)}", DataWarning, stacklevel=3)
