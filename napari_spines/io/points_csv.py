"""Points as CSV: an optional ``id``, voxel coordinates, µm coordinates, then every property.

Columns are ``[id,] [t,] z, y, x, z_um, y_um, x_um, <properties...>``; coordinates are in
voxels of the stack. Reading back recovers the voxel size from the µm columns, so a Points
layer comes back with the same scale.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.io.atomic import atomic_path
from napari_spines.io.volume import VolumeReadError

SPATIAL_COLUMNS = ("z", "y", "x")


def write_points_csv(
    path: str | Path,
    coords: np.ndarray,
    voxel_size_um: Sequence[float],
    properties: Mapping[str, Sequence] | None = None,
) -> Path:
    """Write points atomically.

    Parameters
    ----------
    path
        Destination ``.csv``.
    coords
        ``(N, 2..4)`` voxel coordinates; the last two or three axes are spatial, a leading
        fourth is time.
    voxel_size_um
        Voxel size of the spatial axes, in µm.
    properties
        Per-point columns (``id`` goes first when present).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        The coordinates' number of axes does not fit ``voxel_size_um``.
    """
    n_spatial = len(voxel_size_um)
    coords = np.asarray(coords, dtype=float)
    if coords.size == 0:  # no points: [], (0,) or (0, 0) as well as (0, 3)
        width = coords.shape[1] if coords.ndim == 2 and coords.shape[1] else n_spatial
        coords = np.zeros((0, width))
    else:
        coords = coords.reshape(len(coords), -1)
    if not 2 <= n_spatial <= 3 or coords.shape[1] not in (n_spatial, n_spatial + 1):
        raise ValueError(f"{coords.shape[1]} coordinate axes do not fit {n_spatial} voxel sizes")
    spatial = list(SPATIAL_COLUMNS[-n_spatial:])
    coord_names = (["t"] if coords.shape[1] > n_spatial else []) + spatial
    properties = {k: np.asarray(v) for k, v in (properties or {}).items()}
    first = ["id"] if "id" in properties else []
    rest = [k for k in properties if k != "id"]
    header = first + coord_names + [f"{a}_um" for a in spatial] + rest
    um = coords[:, -n_spatial:] * np.asarray(voxel_size_um, dtype=float)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(len(coords)):
            row = [_cell(properties["id"][i])] if first else []
            row += [_number(v) for v in coords[i]] + [_number(v) for v in um[i]]
            row += [_cell(properties[k][i]) for k in rest]
            writer.writerow(row)
    return Path(path)


def write_table_csv(path: str | Path, columns: Mapping[str, Sequence]) -> Path:
    """Write equally long columns as a CSV atomically, in the order given.

    Parameters
    ----------
    path
        Destination ``.csv``.
    columns
        Column name → values; numbers are written as their shortest exact text, None empty.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    names = list(columns)
    values = [list(columns[name]) for name in names]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in zip(*values, strict=True):
            writer.writerow(["" if v is None else _cell(v) for v in row])
    return Path(path)


PointsTable = tuple[np.ndarray, tuple[float, ...], dict[str, np.ndarray]]


def read_points_csv(path: str | Path) -> PointsTable:
    """Read a points CSV written by `write_points_csv` (or any CSV with z/y/x columns).

    Parameters
    ----------
    path
        The ``.csv`` file.

    Returns
    -------
    coords
        ``(N, D)`` voxel coordinates (``t`` first when present).
    voxel_size_um
        Spatial voxel size recovered from the ``*_um`` columns (1.0 where absent).
    properties
        Every other column, numeric where it parses as numbers.

    Raises
    ------
    VolumeReadError
        The file cannot be read, is empty, lacks y/x columns, or has a coordinate that is not
        a number.
    """
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise VolumeReadError(f"{path.name}: cannot read ({exc})") from exc
    if not rows:
        raise VolumeReadError(f"{path.name}: the file is empty")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r]
    columns = {
        h: np.array([row[i] if i < len(row) else "" for row in body]) for i, h in enumerate(header)
    }
    spatial = [a for a in SPATIAL_COLUMNS if a in columns]
    if len(spatial) < 2 or spatial != list(SPATIAL_COLUMNS[-len(spatial) :]):
        raise VolumeReadError(f"{path.name}: needs columns y, x (and z)")
    coord_names = (["t"] if "t" in columns else []) + spatial
    try:
        coords = (
            np.stack([columns[c].astype(float) for c in coord_names], axis=1)
            if body
            else np.zeros((0, len(coord_names)))
        )
    except ValueError as exc:
        raise VolumeReadError(f"{path.name}: a coordinate is not a number") from exc
    if not np.isfinite(coords).all():
        row, column = np.argwhere(~np.isfinite(coords))[0]
        raise VolumeReadError(
            f"{path.name}: row {row + 1}: {coord_names[column]} is {coords[row, column]}, "
            "not a finite number"
        )
    voxel = tuple(_voxel_size(columns[a], columns.get(f"{a}_um")) for a in spatial)
    used = set(coord_names) | {f"{a}_um" for a in spatial}
    properties = {h: _parse(columns[h]) for h in header if h not in used}
    return coords.reshape(len(body), len(coord_names)), voxel, properties


def looks_like_points_csv(path: str | Path) -> bool:
    """True for a ``.csv`` whose header has y and x columns.

    Parameters
    ----------
    path
        Any path; folders and unreadable files give False.

    Returns
    -------
    bool
    """
    path = Path(path)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    try:
        with open(path, newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return {"y", "x"} <= {h.strip() for h in header}


def _voxel_size(voxels: np.ndarray, um: np.ndarray | None) -> float:
    """Least-squares ratio µm / voxel; 1.0 when it cannot be recovered."""
    if um is None or voxels.size == 0:
        return 1.0
    try:
        v, u = voxels.astype(float), um.astype(float)
    except ValueError:
        return 1.0
    denominator = float(v @ v)
    size = float(v @ u) / denominator if denominator > 0 else 1.0
    return round(size, 9) if size > 0 else 1.0


def _parse(values: np.ndarray) -> np.ndarray:
    for dtype in (np.int64, np.float64):
        try:
            return values.astype(dtype)
        except ValueError:
            continue
    if set(np.unique(values)) <= {"True", "False"}:
        return values == "True"
    return values.astype(object)


def _number(value: float) -> str:
    return f"{value:.6g}" if abs(value) < 1e6 else repr(float(value))


def _cell(value: object) -> str:
    """Shortest text that reads back to the same value (float32 stays 0.4194, not 0.41940000…)."""
    if isinstance(value, np.floating):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_kept_points(
    path: str | Path,
    coords: np.ndarray,
    voxel_size_um: Sequence[float],
    properties: Mapping[str, Any],
    keep: np.ndarray,
) -> int:
    """Write the points ``keep`` selects, with their properties, atomically.

    Parameters
    ----------
    path
        Destination ``.csv``.
    coords
        ``(N, 3)`` voxel coordinates of every point.
    voxel_size_um
        ``(z, y, x)`` voxel size in µm.
    properties
        Column name → ``N`` values (e.g. a Points layer's features).
    keep
        Boolean mask of the ``N`` points to write (e.g. the reviewed ones shown).

    Returns
    -------
    int
        The number of points written.
    """
    keep = np.asarray(keep, bool)
    columns = {name: np.asarray(values)[keep] for name, values in properties.items()}
    write_points_csv(path, np.asarray(coords)[keep], voxel_size_um, columns)
    return int(keep.sum())
