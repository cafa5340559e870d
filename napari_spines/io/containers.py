"""HDF5 and Zarr readers: pick the image and label datasets of a hierarchical container."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.io.lazy import decompressed_bytes, should_open_lazily
from napari_spines.io.units import unit_to_um
from napari_spines.io.volume import SPATIAL_AXES, Volume, VolumeReadError, guess_axes

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
ZARR_SUFFIXES = (".zarr", ".ome.zarr")

IMAGE_NAMES = ("raw", "volumes/raw", "stack", "image", "data", "volumes/image")
LABEL_NAMES = ("labels", "label", "gt", "groundtruth", "segmentation", "seg")
_SIZE_ATTRS_UM = ("element_size_um",)
_SIZE_ATTRS = ("resolution", "voxel_size", "spacing", "pixel_size")


def pick_datasets(shapes: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[str, list[str]]:
    """Choose the image dataset and the label datasets among ``{name: (shape, dtype)}``.

    The image is the first of `IMAGE_NAMES` present, else the largest dataset with at least
    three dimensions (two when there is nothing larger). Labels are integer datasets named like
    `LABEL_NAMES` or stored under ``volumes/labels/``.

    Parameters
    ----------
    shapes
        ``{dataset path: (shape, dtype)}`` of the numeric datasets of the container.

    Returns
    -------
    image
        Name of the image dataset.
    labels
        Names of the label datasets, in the order of ``shapes``.

    Raises
    ------
    VolumeReadError
        No dataset other than labels has two or more dimensions.

    Examples
    --------
    >>> u8, u32 = np.dtype("uint8"), np.dtype("uint32")
    >>> pick_datasets({"raw": ((8, 64, 64), u8), "labels": ((8, 64, 64), u32)})
    ('raw', ['labels'])
    """

    def is_labels(name: str) -> bool:
        leaf = name.rsplit("/", 1)[-1].lower()
        named = leaf in LABEL_NAMES or name.lower().startswith("volumes/labels/")
        return named and np.issubdtype(shapes[name][1], np.integer)

    labels = [n for n in shapes if is_labels(n)]
    images = {n: s for n, s in shapes.items() if n not in labels and len(s[0]) >= 2}
    for name in IMAGE_NAMES:
        if name in images:
            return name, labels
    for min_ndim in (3, 2):
        sized = [(int(np.prod(s[0])), n) for n, s in images.items() if len(s[0]) >= min_ndim]
        if sized:
            return max(sized)[1], labels
    raise VolumeReadError("no image dataset (2D or more) found")


def voxel_size_from_attrs(attrs: Mapping[str, Any], n_spatial: int) -> tuple[float, ...] | None:
    """Voxel size in µm from dataset attributes, or None when there is none.

    ``element_size_um`` is in µm. ``resolution``/``voxel_size``/``spacing`` use the ``unit``
    attribute when present; without one they are taken as nm when every value exceeds 2 (the
    CREMI/N5 convention, e.g. ``(40, 4, 4)``), else as µm.

    Parameters
    ----------
    attrs
        Attributes of a dataset or group (HDF5 or Zarr).
    n_spatial
        Number of spatial axes; the last ``n_spatial`` values of an attribute are used.

    Returns
    -------
    tuple of float or None
        ``n_spatial`` sizes in µm, in the order of the axes; None when no attribute gives
        positive sizes in a known unit.

    Examples
    --------
    >>> voxel_size_from_attrs({"resolution": (40, 4, 4)}, 3)  # no unit, all above 2: nm
    (0.04, 0.004, 0.004)
    >>> voxel_size_from_attrs({"resolution": (1.0, 0.2, 0.2), "unit": "um"}, 3)
    (1.0, 0.2, 0.2)
    """
    for key in (*_SIZE_ATTRS_UM, *_SIZE_ATTRS):
        if key not in attrs:
            continue
        values = np.atleast_1d(np.asarray(attrs[key], dtype=float))[-n_spatial:]
        if len(values) != n_spatial or not np.all(np.isfinite(values) & (values > 0)):
            continue
        if key in _SIZE_ATTRS_UM:
            return tuple(values.tolist())
        unit = attrs.get("unit", attrs.get("units"))
        if isinstance(unit, list | tuple | np.ndarray):
            unit = unit[-1] if len(unit) else None
        to_um = unit_to_um(unit) if unit is not None else (1e-3 if values.min() > 2 else 1.0)
        if to_um is not None:
            return tuple((values * to_um).tolist())
    return None


def _axes_from_attrs(attrs: Mapping[str, Any], shape: tuple[int, ...]) -> str:
    axes = attrs.get("axes")
    if isinstance(axes, bytes):
        axes = axes.decode()
    if isinstance(axes, list | tuple | np.ndarray):
        axes = "".join(str(a.decode() if isinstance(a, bytes) else a)[0] for a in axes)
    if isinstance(axes, str) and len(axes) == len(shape) and set(axes.upper()) <= set("TCZYX"):
        return axes.upper()
    return guess_axes(shape)


def _volume(
    array: Any, name: str, attrs: Mapping, group_attrs: Mapping, kind: str, lazy: bool | None
) -> Volume:
    axes = _axes_from_attrs(attrs, tuple(array.shape))
    n_spatial = sum(a in SPATIAL_AXES for a in axes)
    voxel = voxel_size_from_attrs(attrs, n_spatial) or voxel_size_from_attrs(group_attrs, n_spatial)
    if should_open_lazily(decompressed_bytes(array.shape, array.dtype), lazy, name):
        import dask.array as da

        data = da.from_array(array, chunks=getattr(array, "chunks", None) or "auto")
    else:
        data = np.asarray(array[()])
    return Volume(
        data,
        axes,
        voxel or (1.0,) * n_spatial,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        voxel_size_known=voxel is not None,
    )


def read_hdf5(path: str | Path, lazy: bool | None = None) -> list[Volume]:
    """Read the image and label datasets of an HDF5 file (see `pick_datasets`).

    Parameters
    ----------
    path
        The ``.h5`` / ``.hdf5`` file.
    lazy
        Keep the data on disk (dask); None decides by size (`should_open_lazily`).

    Returns
    -------
    list of Volume
        The image first, then the label volumes (see `inherit_voxel_size`).

    Raises
    ------
    VolumeReadError
        Not a readable HDF5 file, or no image dataset in it.
    """
    import h5py

    path = Path(path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise VolumeReadError(f"{path.name}: not a readable HDF5 file") from exc
    try:
        shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}

        def collect(name: str, node: object) -> None:  # returning a value would stop the visit
            if isinstance(node, h5py.Dataset) and node.dtype.kind in "biuf":
                shapes[name] = (node.shape, node.dtype)

        h5.visititems(collect)
        image, labels = pick_datasets(shapes)
        volumes = [
            _volume(
                h5[n],
                _layer_name(path, n),
                h5[n].attrs,
                h5.attrs,
                "labels" if n in labels else "image",
                lazy,
            )
            for n in [image, *labels]
        ]
    except VolumeReadError as exc:
        h5.close()
        raise VolumeReadError(f"{path.name}: {exc}") from exc
    if not any(v.lazy for v in volumes):
        h5.close()  # lazy volumes keep the file open; h5py closes it when they are collected
    return inherit_voxel_size(volumes)


def read_zarr(path: str | Path, lazy: bool | None = None) -> list[Volume]:
    """Read a Zarr array or group, or an OME-Zarr image (multiscale, with its labels).

    Parameters
    ----------
    path
        The Zarr folder.
    lazy
        Keep the data on disk (dask); None decides by size. OME-Zarr is always read lazily.

    Returns
    -------
    list of Volume
        The image first, then the label volumes.

    Raises
    ------
    VolumeReadError
        Not a readable Zarr store, or no image array in it.
    """
    import zarr

    path = Path(path)
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several unrelated types for a non-store
        raise VolumeReadError(f"{path.name}: not a readable Zarr store") from exc
    if isinstance(node, zarr.Array):
        return [_volume(node, _layer_name(path, ""), node.attrs, {}, "image", lazy)]
    multiscales = _ome_attrs(node.attrs).get("multiscales")
    if multiscales:
        return _read_ome_zarr(node, path)
    shapes = {n: (a.shape, a.dtype) for n, a in node.arrays()} | {
        f"{g}/{n}": (a.shape, a.dtype) for g, sub in node.groups() for n, a in sub.arrays()
    }
    try:
        image, labels = pick_datasets(shapes)
    except VolumeReadError as exc:
        raise VolumeReadError(f"{path.name}: {exc}") from exc
    return inherit_voxel_size(
        [
            _volume(
                node[n],
                _layer_name(path, n),
                node[n].attrs,
                node.attrs,
                "labels" if n in labels else "image",
                lazy,
            )
            for n in [image, *labels]
        ]
    )


def inherit_voxel_size(volumes: list[Volume]) -> list[Volume]:
    """Give label volumes without a voxel size the image's, when their spatial shapes match.

    Parameters
    ----------
    volumes
        The image first, then the label volumes found beside it.

    Returns
    -------
    list of Volume
        The same volumes, labels updated only where the image's voxel size is known.
    """
    image = volumes[0]
    spatial = [n for a, n in zip(image.axes, image.shape, strict=True) if a in SPATIAL_AXES]

    def fix(volume: Volume) -> Volume:
        own = [n for a, n in zip(volume.axes, volume.shape, strict=True) if a in SPATIAL_AXES]
        if volume.voxel_size_known or not image.voxel_size_known or own != spatial:
            return volume
        return dataclasses.replace(volume, voxel_size_um=image.voxel_size_um, voxel_size_known=True)

    return [image, *map(fix, volumes[1:])]


def _ome_attrs(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """OME-Zarr 0.5 nests its metadata under ``ome``; 0.4 keeps it at the top."""
    return attrs.get("ome", attrs)


def _read_ome_zarr(group: Any, path: Path, kind: str = "image") -> list[Volume]:
    import dask.array as da

    meta = _ome_attrs(group.attrs)["multiscales"][0]
    axes_meta = meta.get("axes") or list("tczyx"[-group[meta["datasets"][0]["path"]].ndim :])
    names = [a["name"] if isinstance(a, dict) else a for a in axes_meta]
    axes = "".join(n[0].upper() for n in names)
    levels = [da.from_zarr(group[d["path"]]) for d in meta["datasets"]]
    scale = next(
        (
            t["scale"]
            for t in meta["datasets"][0].get("coordinateTransformations", [])
            if t.get("type") == "scale"
        ),
        [1.0] * len(axes),
    )
    voxel = []
    for axis, value, axis_meta in zip(axes, scale, axes_meta, strict=False):
        if axis in SPATIAL_AXES:
            unit = axis_meta.get("unit") if isinstance(axis_meta, dict) else None
            voxel.append(float(value) * (unit_to_um(unit) or 1.0) if unit else float(value))
    known = any(isinstance(a, dict) and a.get("unit") for a in axes_meta)
    name = meta.get("name") or _layer_name(path, "")
    volumes = [
        Volume(
            levels if len(levels) > 1 else levels[0],
            axes,
            tuple(voxel),
            name=name,
            kind=kind,
            voxel_size_known=known,
        )
    ]  # type: ignore[arg-type]
    if kind == "image" and "labels" in group:
        for label_name in group["labels"].attrs.get("labels", []):
            volumes += _read_ome_zarr(group["labels"][label_name], path, kind="labels")
    return volumes


def _layer_name(path: Path, dataset: str) -> str:
    stem = path.name.split(".")[0]
    return f"{stem} [{dataset}]" if dataset else stem
