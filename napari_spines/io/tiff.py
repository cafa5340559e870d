"""TIFF reader: plain stacks, ImageJ hyperstacks and OME-TIFF, with voxel size in µm."""

from __future__ import annotations

import contextlib
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import tifffile

from napari_spines.errors import first_line
from napari_spines.io.lazy import decompressed_bytes, should_open_lazily
from napari_spines.io.units import unit_to_um
from napari_spines.io.volume import SPATIAL_AXES, Volume, VolumeReadError

TIFF_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".btf", ".tf8")

# tifffile's axis letters onto ours: RGB samples (S) are channels; generic stack letters
# (I, Q, ...) become Z, or T once Z is taken.
_AXIS_MAP = {"S": "C", "E": "C", "H": "C", "R": "T"}
_CORRUPTION_WORDS = ("invalid page offset", "corrupt", "failed to reshape", "truncated")


def read_tiff(path: str | Path, lazy: bool | None = None) -> list[Volume]:
    """Read a TIFF file as one image volume.

    Parameters
    ----------
    path
        File to read.
    lazy
        Keep the data on disk (dask); ``None`` decides by the decompressed size.

    Returns
    -------
    list of Volume
        One image volume; its voxel size is known when the file gave the ``y, x`` size.

    Raises
    ------
    VolumeReadError
        The file is not a readable TIFF.
    """
    path = Path(path)
    try:
        with _corruption_warnings() as problems, tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise VolumeReadError("truncated or empty: no image in the file")
            series = tif.series[0]
            _check_data_inside_file(series, path.stat().st_size)
            if problems:
                raise VolumeReadError(f"truncated or corrupt ({problems[0]})")
            _check_enough_voxels(series.shape)
            axes = _normalise_axes(series.axes)
            voxel_um, known = _voxel_size(tif, axes)
            nbytes = decompressed_bytes(series.shape, series.dtype)
            use_lazy = should_open_lazily(nbytes, lazy, path.name)
            if not use_lazy:
                data = series.asarray()
        if use_lazy:
            data = _lazy_array(path)
    except VolumeReadError as exc:
        raise VolumeReadError(f"{path.name}: {exc}") from exc
    except IndexError as exc:  # tifffile indexes past the end of a cut file
        raise VolumeReadError(
            f"{path.name}: truncated or not a TIFF ({path.stat().st_size} bytes)"
        ) from exc
    except (tifffile.TiffFileError, ValueError, OSError, KeyError) as exc:
        raise VolumeReadError(f"{path.name}: not a readable TIFF ({first_line(exc)})") from exc
    if data.shape != series.shape:  # tifffile squeezes on the array but not always on the series
        data = data.reshape(series.shape)
    return [
        Volume(data, axes, voxel_um, name=_stem(path), voxel_size_known=known),
    ]


@contextlib.contextmanager
def _corruption_warnings() -> Iterator[list[str]]:
    """Collect tifffile's log messages about broken files (errors, or warnings that say so).

    tifffile logs a truncated file's missing pages and reads on with fewer planes. Unchecked,
    that would show the user a partial stack without a word.
    """
    problems: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if record.levelno >= logging.ERROR or any(w in message for w in _CORRUPTION_WORDS):
                problems.append(message.split("> ", 1)[-1])

    tiff_logger = logging.getLogger("tifffile")
    handler = Collect(level=logging.WARNING)
    tiff_logger.addHandler(handler)
    propagate, tiff_logger.propagate = tiff_logger.propagate, False
    try:
        yield problems
    finally:
        tiff_logger.removeHandler(handler)
        tiff_logger.propagate = propagate


def _check_data_inside_file(series: tifffile.TiffPageSeries, file_size: int) -> None:
    """Raise when the image data of the series' last page ends past the end of the file."""
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        last = series.pages[-1] if len(series.pages) else None
        if last is None or not last.dataoffsets:
            return
        end = max(o + c for o, c in zip(last.dataoffsets, last.databytecounts, strict=True))
    if end > file_size:
        raise VolumeReadError(f"truncated: image data ends at byte {end}, the file at {file_size}")


def _check_enough_voxels(shape: tuple[int, ...]) -> None:
    """Raise for an image with fewer than two axes longer than 1 (tifffile names its axes oddly)."""
    long_axes = sum(n > 1 for n in shape)
    if long_axes < 2:
        raise VolumeReadError(
            f"{'×'.join(map(str, shape)) or 'no'} voxels ({long_axes}D data); "
            "need an image of 2D or more"
        )


def _lazy_array(path: Path):
    """Dask array over the TIFF's first series, read tile by tile on demand."""
    import dask.array as da
    import zarr

    store = tifffile.imread(path, aszarr=True)
    return da.from_zarr(zarr.open(store, mode="r"))


def _normalise_axes(tiff_axes: str) -> str:
    """Map tifffile's axis letters onto ``TCZYX``, one letter per axis."""
    axes = ""
    for letter in tiff_axes.upper():
        letter = _AXIS_MAP.get(letter, letter)
        if letter not in "TCZYX":
            letter = "Z" if "Z" not in tiff_axes.upper() and "Z" not in axes else "T"
        if letter in axes:
            raise VolumeReadError(f"unsupported TIFF axes {tiff_axes!r}")
        axes += letter
    return axes


def _voxel_size(tif: tifffile.TiffFile, axes: str) -> tuple[tuple[float, ...], bool]:
    """Voxel size in µm of the spatial axes present, and whether the file carried it."""
    sizes: dict[str, float] = {}
    if tif.is_ome and tif.ome_metadata:
        sizes = _ome_sizes(tif.ome_metadata)
    elif tif.is_imagej:
        sizes = _imagej_sizes(tif)
    else:
        sizes = _resolution_tag_sizes(tif.pages.first, to_um=_tiff_unit_to_um(tif.pages.first))
    present = [a for a in axes if a in SPATIAL_AXES]
    known = all(a in sizes for a in present if a in "YX")
    if tif.is_imagej and "Z" in present and "Z" not in sizes:
        known = known and "spacing" not in (tif.imagej_metadata or {})  # NaN, 0 or negative
    return tuple(sizes.get(a, 1.0) for a in present), known


def _imagej_sizes(tif: tifffile.TiffFile) -> dict[str, float]:
    meta = tif.imagej_metadata or {}
    to_um = unit_to_um(meta.get("unit")) or (None if meta.get("unit") else 1.0)
    if to_um is None:  # an unknown unit such as "pixel": no physical size
        return {}
    sizes = _resolution_tag_sizes(tif.pages.first, to_um=to_um)
    spacing = meta.get("spacing")
    if _positive(spacing):
        sizes["Z"] = float(spacing) * to_um
    return sizes


def _resolution_tag_sizes(page: tifffile.TiffPage, to_um: float | None) -> dict[str, float]:
    """Pixel size from the X/YResolution tags (pixels per unit) when the unit is known."""
    if to_um is None:
        return {}
    sizes = {}
    for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
        value = page.tags.get(tag)
        if value is None:
            continue
        num, den = value.value
        if num > 0 and den > 0 and not (num == den == 1):
            sizes[axis] = den / num * to_um
    return sizes


def _tiff_unit_to_um(page: tifffile.TiffPage) -> float | None:
    """µm per ResolutionUnit; inch (often a meaningless 72 dpi default) is not trusted."""
    unit = page.tags.get("ResolutionUnit")
    return 1e4 if unit is not None and int(unit.value) == 3 else None


def _ome_sizes(xml: str) -> dict[str, float]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
    if pixels is None:
        return {}
    sizes = {}
    for axis in SPATIAL_AXES:
        value = pixels.get(f"PhysicalSize{axis}")
        to_um = unit_to_um(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if _positive(value) and to_um is not None:
            sizes[axis] = float(value) * to_um
    return sizes


def _positive(value: object) -> bool:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number > 0


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(TIFF_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
