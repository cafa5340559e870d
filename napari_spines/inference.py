"""Tiled sliding-window inference: one engine for every model, exact at tile seams.

How a volume is processed:

1. Normalise: percentile or mean/std statistics come from a strided sample of the volume. Each
   tile is normalised as it is read, so the volume is never copied.
2. Rescale: when the data's voxel size differs from the model's by more than `RESCALE_TOLERANCE`,
   tiles are cut in *model space*, and each tile is read by separable linear interpolation from
   the data. The outputs are mapped back the same way.
3. Tile: origins are multiples of the network's size multiple, so a U-Net's pooling grid lines
   up with the whole-volume run. Each tile carries a halo on every side, which is cropped away;
   a package's halo covers its network's receptive field
   (`napari_spines.training.unet.receptive_field`), so every voxel of a tile's core is what the
   whole-volume run computes there, and the result does not depend on the tile size. Cores
   therefore abut by default; cores made to overlap are blended with sin²/cos² ramps that add
   up to exactly one. Beyond the volume, tiles read the volume mirrored (reflection padding),
   the same for every tiling, so a tile at the border sees what the whole-volume run would.
4. Run in batches; report progress after each batch. A `Cancelled` raised by the progress
   callback stops the work within one batch.

Input may be numpy, dask, zarr or h5py: tiles are read region by region, so a volume larger
than memory is processed block by block. ``out`` may be a Zarr array, so the output never has to
fit in memory either. Memory then holds a few tiles.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from napari_spines.errors import DataWarning
from napari_spines.progress import ProgressCallback, raise_if_cancelled
from napari_spines.validation import (
    BadValue,
    check_memory,
    check_positive_int,
    check_tile,
    check_voxel_size,
    format_bytes,
)

if TYPE_CHECKING:
    from napari_spines.models.spec import ModelSpec, Normalisation

#: Relative voxel-size difference below which the data is used at its own voxel size.
RESCALE_TOLERANCE = 0.05
#: At most this many voxels are sampled to compute normalisation statistics.
STATS_SAMPLE_VOXELS = 2**22
#: Largest rescaling per axis between the data's voxel size and the model's: beyond it, the
#: voxel size or the model is wrong for the stack (a two-photon stack given to an EM model).
MAX_RESCALE = 16.0
#: Bytes per tile voxel a network may hold while it runs (activations of a small U-Net).
NETWORK_BYTES_PER_VOXEL = 256
#: Most tiles per network call.
MAX_BATCH = 1024


class Network(Protocol):
    """What the engine runs: float32 ``(B, C_in, z, y, x)`` in, ``(B, C_out, z, y, x)`` out.

    A `~napari_spines.models.LoadedModel`, a network in training, or any such callable.
    """

    def __call__(self, batch: np.ndarray, /) -> np.ndarray:
        """Run one batch of tiles."""
        ...


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


@dataclass(frozen=True)
class AxisPlan:
    """Tiles along one axis of length ``n`` (in model space).

    Tile ``i`` reads ``[starts[i], starts[i] + tile)``; its core is the tile without the halo,
    ``[starts[i] + halo, starts[i] + tile - halo)``; consecutive cores overlap by ``overlap``.
    """

    n: int
    tile: int
    halo: int
    overlap: int

    @property
    def core(self) -> int:
        """Length of a tile without its halo."""
        return self.tile - 2 * self.halo

    @property
    def stride(self) -> int:
        """Distance between consecutive tile origins."""
        return self.core - self.overlap

    @property
    def starts(self) -> np.ndarray:
        """Origins of the tiles; the first is ``-halo``."""
        count = 1 if self.core >= self.n else math.ceil((self.n - self.overlap) / self.stride)
        return np.arange(count) * self.stride - self.halo

    def weights(self, i: int) -> np.ndarray:
        """Blending weights over the core of tile ``i``, cropped to the volume.

        Rising sin² over the overlap with the previous tile, falling cos² over the overlap with
        the next: the weights of all tiles add up to one at every position.

        Parameters
        ----------
        i
            Index of the tile along the axis, ``0 <= i < len(starts)``.

        Returns
        -------
        numpy.ndarray
            float32, of length ``core``, or less where the core runs past the end of the axis.
        """
        w = np.ones(self.core, dtype=np.float32)
        if self.overlap:
            ramp = np.sin(0.5 * np.pi * (np.arange(self.overlap) + 0.5) / self.overlap) ** 2
            if i > 0:
                w[: self.overlap] = ramp
            if i < len(self.starts) - 1:
                w[-self.overlap :] = 1.0 - ramp
        start = i * self.stride
        return w[: max(0, min(self.core, self.n - start))]


def plan_axis(n: int, tile: int, halo: int, multiple: int, overlap: int | None = None) -> AxisPlan:
    """Plan the tiles along one axis.

    ``halo`` and ``tile`` are rounded up to ``multiple``, so every tile origin is a multiple of
    it (the network's pooling grid then lies where it lies in a whole-volume run). A tile is at
    least ``2 * halo + max(multiple, halo)`` long, so no tile is mostly halo; it shrinks to the
    smallest size that covers the axis in one tile when it can, and otherwise to the smallest
    that covers it in as few tiles as the wanted size does. With a halo that covers the
    network's receptive field every core voxel is exact, so cores need not overlap (the
    default); an overlap asked for is rounded up to ``multiple`` and kept to half a core at
    most, so no more than two cores overlap anywhere and the blending weights add up to one.

    Parameters
    ----------
    n
        Length of the axis, in model-space voxels.
    tile, halo
        Wanted tile length, and the halo cropped from each side of a tile, in voxels.
    multiple
        The network's size multiple on this axis (e.g. ``2**depth`` for a U-Net).
    overlap
        Wanted overlap between consecutive cores, in voxels; None: none.

    Returns
    -------
    AxisPlan

    Examples
    --------
    >>> plan = plan_axis(100, tile=64, halo=4, multiple=8)
    >>> plan.tile, plan.halo, plan.overlap
    (56, 8, 0)
    >>> plan.starts.tolist()
    [-8, 32, 72]
    >>> plan = plan_axis(100, tile=64, halo=4, multiple=8, overlap=12)
    >>> plan.tile, plan.overlap, plan.starts.tolist()
    (64, 16, [-8, 24, 56])
    """
    halo = _round_up(halo, multiple)
    tile = max(_round_up(tile, multiple), 2 * halo + max(multiple, halo))
    tile = min(tile, _round_up(n + 2 * halo, multiple))
    widest = tile - 2 * halo  # the longest core
    if widest >= n:
        return AxisPlan(n=n, tile=tile, halo=halo, overlap=0)
    wanted = 0 if overlap is None else _round_up(max(0, overlap), multiple)
    overlap = min(wanted, widest // 2 // multiple * multiple)
    count = math.ceil((n - overlap) / (widest - overlap))
    stride = max(overlap, _round_up(math.ceil((n - overlap) / count), multiple))
    return AxisPlan(n=n, tile=stride + overlap + 2 * halo, halo=halo, overlap=overlap)


def mirror_indices(idx: np.ndarray, n: int) -> np.ndarray:
    """Map indices beyond ``[0, n)`` back inside by reflection (``…2 1 | 0 1 … n-1 | n-2…``).

    Parameters
    ----------
    idx
        Integer indices, any shape and any values.
    n
        Length of the axis.

    Returns
    -------
    numpy.ndarray
        Indices in ``[0, n)``, of the shape of ``idx``.

    Examples
    --------
    >>> mirror_indices(np.arange(-2, 6), 4).tolist()
    [2, 1, 0, 1, 2, 3, 2, 1]
    """
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


def read_resampled(source: Any, coords: Sequence[np.ndarray]) -> np.ndarray:
    """Read ``source`` at per-axis coordinates of its last axes, by separable linear interpolation.

    Parameters
    ----------
    source
        Array-like (numpy, dask, zarr, h5py) with any leading (channel) axes.
    coords
        One float or integer coordinate array per trailing axis, inside the array's bounds.

    Returns
    -------
    numpy.ndarray
        float32, leading axes kept, trailing axes of the coordinates' lengths. Only the bounding
        region of the coordinates is read from ``source``.
    """
    lead = source.ndim - len(coords)
    lows = [int(np.floor(c.min())) for c in coords]
    highs = [
        min(int(np.ceil(c.max())) + 1, n) for c, n in zip(coords, source.shape[lead:], strict=True)
    ]
    region = (Ellipsis, *(slice(lo, hi) for lo, hi in zip(lows, highs, strict=True)))
    block = np.asarray(source[region], dtype=np.float32)
    for axis, (c, lo) in enumerate(zip(coords, lows, strict=True), start=lead):
        floor = np.floor(c)
        i0 = floor.astype(np.intp) - lo
        frac = (c - floor).astype(np.float32)
        if not frac.any():
            block = np.take(block, i0, axis=axis)
            continue
        i1 = np.minimum(i0 + 1, block.shape[axis] - 1)
        shape = [1] * block.ndim
        shape[axis] = len(c)
        frac = frac.reshape(shape)
        block = np.take(block, i0, axis=axis) * (1 - frac) + np.take(block, i1, axis=axis) * frac
    return block


def source_coords(model_idx: np.ndarray, factor: float, n_data: int) -> np.ndarray:
    """Data-space coordinates of model-space voxels (``factor``: model voxels per data voxel).

    Parameters
    ----------
    model_idx
        Model-space voxel indices along one axis.
    factor
        Model voxels per data voxel on that axis (see `rescale_factors`).
    n_data
        Length of the data axis; coordinates are clipped to ``[0, n_data - 1]``.

    Returns
    -------
    numpy.ndarray
        Float coordinates for `read_resampled`; ``model_idx`` itself when ``factor`` is 1.

    Examples
    --------
    >>> source_coords(np.arange(4), 2.0, 2).tolist()
    [0.0, 0.25, 0.75, 1.0]
    """
    if factor == 1.0:
        return model_idx
    return np.clip((model_idx + 0.5) / factor - 0.5, 0, n_data - 1)


def normalisation_stats(
    volume: Any, normalisation: Normalisation, channel_axis: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, gain)`` per channel so that ``(x - offset) * gain`` is the network's input.

    Percentiles and per-volume mean/std come from a strided sample of at most
    `STATS_SAMPLE_VOXELS` voxels, so lazy volumes are not read whole.

    Parameters
    ----------
    volume
        ``(Z, Y, X)`` or ``(C, Z, Y, X)`` array-like (numpy, dask, zarr, h5py).
    normalisation
        The model's `~napari_spines.models.spec.Normalisation`.
    channel_axis
        True when ``volume`` has the leading ``C`` axis.

    Returns
    -------
    offset
        float32 ``(C,)``, subtracted first; ``(1,)`` without a ``C`` axis.
    gain
        float32 ``(C,)``, multiplied after.
    """
    kind = normalisation.kind
    n_channels = volume.shape[0] if channel_axis else 1
    if kind == "none":
        return np.zeros(n_channels, np.float32), np.ones(n_channels, np.float32)
    if kind == "mean_std":
        return (
            np.full(n_channels, normalisation.mean, np.float32),
            np.full(n_channels, 1.0 / max(normalisation.std, 1e-12), np.float32),
        )
    spatial = volume.shape[-3:]
    step = max(1, round((math.prod(spatial) / STATS_SAMPLE_VOXELS) ** (1 / 3)))
    sample = np.asarray(volume[(Ellipsis, *(slice(None, None, step),) * 3)], dtype=np.float32)
    sample = sample.reshape(n_channels, -1)
    offsets, gains = [], []
    for values in sample:
        values = values[np.isfinite(values)]
        if values.size == 0:
            values = np.zeros(1, np.float32)
        if kind == "percentile":
            low, high = np.percentile(values, [normalisation.low, normalisation.high])
            offsets.append(low)
            gains.append(1.0 / (high - low) if high > low else 1.0)
        elif kind == "zscore":
            offsets.append(values.mean())
            gains.append(1.0 / values.std() if values.std() > 0 else 1.0)
        else:
            raise ValueError(f"unknown normalisation {kind!r}")
    return np.asarray(offsets, np.float32), np.asarray(gains, np.float32)


def rescale_factors(
    data_voxel_um: Sequence[float] | None, model_voxel_um: Sequence[float]
) -> tuple[float, float, float]:
    """Model-space voxels per data voxel on each axis; 1 within `RESCALE_TOLERANCE`.

    Parameters
    ----------
    data_voxel_um
        Voxel size of the data, ``(z, y, x)`` in µm; None: the model's own (no rescaling).
    model_voxel_um
        Voxel size the model was made for, ``(z, y, x)`` in µm.

    Returns
    -------
    tuple of float
        ``data / model`` per axis, ``(z, y, x)``; above 1 the data is upsampled.

    Examples
    --------
    >>> rescale_factors((1.0, 0.1, 0.1), (1.0, 0.2, 0.2))
    (1.0, 0.5, 0.5)
    >>> rescale_factors((1.02, 0.2, 0.2), (1.0, 0.2, 0.2))  # within 5 %: no rescaling
    (1.0, 1.0, 1.0)
    """
    if data_voxel_um is None:
        return (1.0, 1.0, 1.0)
    factors = []
    for data, model in zip(data_voxel_um, model_voxel_um, strict=True):
        ratio = float(data) / float(model)
        factors.append(1.0 if abs(ratio - 1.0) <= RESCALE_TOLERANCE else ratio)
    return tuple(factors)  # type: ignore[return-value]


def model_grid(
    shape: Sequence[int], voxel_size_um: Sequence[float] | None, spec: ModelSpec
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The model-space shape of a ``(Z, Y, X)`` volume, and the `rescale_factors` to it.

    Model coordinate ``m`` and data coordinate ``d`` on an axis with factor ``f`` relate as
    ``m + 0.5 = (d + 0.5) * f`` (voxel centres, edges aligned).

    Parameters
    ----------
    shape
        Shape of the volume; its last three entries are ``(Z, Y, X)``.
    voxel_size_um
        Voxel size of the volume, ``(z, y, x)`` in µm; None: the model's own.
    spec
        The model's spec (its input voxel size).

    Returns
    -------
    grid
        Model-space ``(Z, Y, X)`` shape, at least 1 on every axis.
    factors
        The `rescale_factors`, ``(z, y, x)``.
    """
    factors = rescale_factors(voxel_size_um, spec.network_voxel_size_um)
    grid = tuple(max(1, round(int(n) * f)) for n, f in zip(shape[-3:], factors, strict=True))
    return grid, factors  # type: ignore[return-value]


@dataclass(frozen=True)
class TiledRun:
    """Everything `predict` needs to cut, read, run and place tiles."""

    source: Any
    offset: np.ndarray
    gain: np.ndarray
    factors: tuple[float, float, float]
    plans: tuple[AxisPlan, AxisPlan, AxisPlan]
    #: Tiles that held NaN or infinite input values (replaced by the channel's low end).
    non_finite_tiles: list[int] = field(default_factory=lambda: [0])

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the input."""
        return tuple(self.source.shape[-3:])  # type: ignore[return-value]

    @property
    def n_tiles(self) -> int:
        """Number of tiles in the whole run."""
        return math.prod(len(p.starts) for p in self.plans)

    def tiles(self) -> Iterator[tuple[tuple[int, int, int], tuple[int, int, int]]]:
        """(tile index, tile origin) in z-major order."""
        for i in np.ndindex(*(len(p.starts) for p in self.plans)):
            yield i, tuple(int(p.starts[k]) for p, k in zip(self.plans, i, strict=True))

    def read_tile(self, origin: Sequence[int]) -> np.ndarray:
        """The normalised float32 input tile ``(C, tz, ty, tx)`` at a model-space origin.

        Parameters
        ----------
        origin
            Model-space ``(z, y, x)`` origin of the tile, as from `tiles`; beyond the volume
            (e.g. negative), the volume is read mirrored.

        Returns
        -------
        numpy.ndarray
            float32 ``(C, tz, ty, tx)`` of the plans' tile sizes; ``C`` is 1 without a channel
            axis.
        """
        coords = [
            source_coords(mirror_indices(np.arange(o, o + p.tile), p.n), f, n)
            for o, p, f, n in zip(origin, self.plans, self.factors, self.data_shape, strict=True)
        ]
        tile = read_resampled(self.source, coords)
        if tile.ndim == 3:
            tile = tile[None]
        offset = self.offset[:, None, None, None]
        finite = np.isfinite(tile)
        if not finite.all():  # NaN would spread through the network; read them as the low end
            tile = np.where(finite, tile, offset)
            self.non_finite_tiles[0] += 1
        return (tile - offset) * self.gain[:, None, None, None]

    def place(self, out: Any, index: Sequence[int], prediction: np.ndarray) -> None:
        """Add the blended core of one tile's prediction into ``out`` (model space).

        Parameters
        ----------
        out
            Writable model-space sums, ``(C_out, Z, Y, X)`` (numpy or Zarr).
        index
            The tile's ``(z, y, x)`` index, as from `tiles`.
        prediction
            The network's output for the tile, float32 ``(C_out, tz, ty, tx)``.
        """
        core, region = [slice(None)], [slice(None)]
        weight = np.ones((1, 1, 1), np.float32)
        for axis, (p, i) in enumerate(zip(self.plans, index, strict=True)):
            w = p.weights(i)
            start = i * p.stride
            core.append(slice(p.halo, p.halo + len(w)))
            region.append(slice(start, start + len(w)))
            shape = [1, 1, 1]
            shape[axis] = len(w)
            weight = weight * w.reshape(shape)
        contribution = prediction[tuple(core)] * weight[None]
        out[tuple(region)] = np.asarray(out[tuple(region)]) + contribution


def predict(
    volume: Any,
    model: Network,
    spec: ModelSpec,
    voxel_size_um: Sequence[float] | None = None,
    tile: Sequence[int] | None = None,
    overlap: Sequence[int] | None = None,
    batch_size: int = 1,
    out: Any | None = None,
    progress: ProgressCallback | None = None,
    on_model_grid: bool = False,
) -> Any:
    """Run ``model`` over ``volume`` tile by tile; return its outputs at the volume's shape.

    Parameters
    ----------
    volume
        ``(Z, Y, X)`` or ``(C, Z, Y, X)`` array-like of any real dtype: numpy, dask, zarr, h5py.
    model
        A `Network`: float32 ``(B, C_in, z, y, x)`` to ``(B, C_out, z, y, x)``.
    spec
        The model's `~napari_spines.models.spec.ModelSpec` (input, tiling, outputs).
    voxel_size_um
        Voxel size of ``volume``; None means the model's own (no rescaling).
    tile, overlap
        Tile size in model-space voxels (default: the spec's), and overlap between tile cores
        (default: none; see `plan_axis`).
    batch_size
        Tiles per network call.
    out
        Array to write into, ``(C_out, Z, Y, X)`` float32 and zero-filled (e.g. a Zarr array);
        a new numpy array when None.
    progress
        Called with ``(tiles done, total)``; may raise `Cancelled` to stop.
    on_model_grid
        Return the outputs on the model's grid (`model_grid`), not resampled back to the
        volume's: for work that is better done at the model's resolution, such as peaks.

    Returns
    -------
    array
        ``out``: float32 ``(C_out, Z, Y, X)``.

    Raises
    ------
    ValueError
        ``volume`` is not 3-D with the model's input channels, or ``out`` has the wrong shape.
    BadValue
        A voxel size, tile or batch size that cannot be used, rescaling beyond `MAX_RESCALE`,
        or a run that needs more memory than this machine has (`NotEnoughMemory`).
    """
    spatial = tuple(int(n) for n in volume.shape[-3:])
    channel_axis = volume.ndim == 4
    n_in = volume.shape[0] if channel_axis else 1
    if volume.ndim not in (3, 4) or n_in != spec.input.channels:
        raise ValueError(
            f"the model needs {spec.input.channels}-channel 3D input "
            f"({'C, ' if spec.input.channels > 1 else ''}Z, Y, X), got shape "
            f"{tuple(volume.shape)}"
        )
    if voxel_size_um is not None:
        voxel_size_um = check_voxel_size(voxel_size_um)
    batch_size = check_positive_int(batch_size, "batch size", high=MAX_BATCH)
    tile = check_tile(tile or spec.tiling.tile)
    model_shape, factors = model_grid(spatial, voxel_size_um, spec)
    check_rescaling(factors, voxel_size_um, spec)
    overlaps = tuple(overlap) if overlap is not None else (None, None, None)
    plans = tuple(
        plan_axis(n, t, h, m, o)
        for n, t, h, m, o in zip(
            model_shape, tile, spec.tiling.halo, spec.tiling.multiple, overlaps, strict=True
        )
    )
    offset, gain = normalisation_stats(volume, spec.input.normalisation, channel_axis)
    run = TiledRun(volume, offset, gain, factors, plans)  # type: ignore[arg-type]

    n_out = spec.n_output_channels
    rescaled = factors != (1.0, 1.0, 1.0) and not on_model_grid
    shape = (n_out, *(model_shape if on_model_grid else spatial))
    # the tile asked for, or the larger one the plan grew it to (at least three halos)
    sized = tuple(max(t, p.tile) for t, p in zip(tile, plans, strict=True))
    check_run_resources(shape, model_shape, rescaled, out, sized, batch_size, spec)
    if out is None:
        out = np.zeros(shape, np.float32)
    if tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape}")
    with tempfile.TemporaryDirectory(prefix="napari-spines-") as scratch:
        target = _accumulator(out, (n_out, *model_shape), scratch) if rescaled else out
        _run_tiles(run, model, target, batch_size, progress, rescaled)
        if rescaled:
            _resample_back(target, out, factors)
            if progress:
                progress(run.n_tiles + 1, run.n_tiles + 1)
    if run.non_finite_tiles[0]:
        warnings.warn(
            DataWarning(
                "the stack holds NaN or infinite values; they were read as its low "
                "percentile before normalisation"
            ),
            stacklevel=2,
        )
    return out


def check_rescaling(
    factors: Sequence[float], voxel_size_um: Sequence[float] | None, spec: ModelSpec
) -> None:
    """Raise `BadValue` when the data must be rescaled more than `MAX_RESCALE` on an axis.

    Parameters
    ----------
    factors
        Model voxels per data voxel, ``(z, y, x)`` (`rescale_factors`).
    voxel_size_um
        The data's voxel size, named in the message.
    spec
        The model's spec.

    Raises
    ------
    BadValue
        A factor above `MAX_RESCALE` or below its inverse.
    """
    if all(1 / MAX_RESCALE <= f <= MAX_RESCALE for f in factors):
        return
    data = " × ".join(f"{v:g}" for v in voxel_size_um or ())
    model = " × ".join(f"{v:g}" for v in spec.network_voxel_size_um)
    ratio = " × ".join(f"{f:.3g}" for f in factors)
    raise BadValue(
        f"the stack's voxel size {data} µm is {ratio} times {_name(spec)}'s {model} µm: "
        "check the voxel size, and that the model fits this kind of stack"
    )


def check_run_resources(
    shape: Sequence[int],
    model_shape: Sequence[int],
    rescaled: bool,
    out: Any,
    tile: Sequence[int],
    batch_size: int,
    spec: ModelSpec,
) -> None:
    """Raise `NotEnoughMemory` before a run whose arrays cannot fit in memory (or on disk).

    Parameters
    ----------
    shape
        The output's shape, ``(C_out, Z, Y, X)``.
    model_shape
        The spatial shape on the model's grid.
    rescaled
        Whether a model-space accumulator is needed.
    out
        The caller's output array, or None for one in memory.
    tile, batch_size
        Tile size and tiles per network call.
    spec
        The model's spec.

    Raises
    ------
    NotEnoughMemory
        The estimate exceeds this machine's memory, or the scratch disk's free space.
    """
    n_out = spec.n_output_channels
    in_memory = out is None or isinstance(out, np.ndarray)
    network = (
        batch_size * math.prod(tile) * (NETWORK_BYTES_PER_VOXEL + 4 * (n_out + spec.input.channels))
    )
    need = network + (4 * math.prod(shape) if out is None else 0)
    accumulator = 4 * n_out * math.prod(model_shape) if rescaled else 0
    if in_memory:
        need += accumulator
    elif accumulator > shutil.disk_usage(tempfile.gettempdir()).free:
        raise BadValue(
            f"the model-space scratch array needs {format_bytes(accumulator)} on "
            f"{tempfile.gettempdir()}, more than is free"
        )
    shown = "×".join(str(n) for n in shape[1:])
    check_memory(
        need, f"running {_name(spec)} on {shown} voxels", "use smaller tiles or a Zarr output"
    )


def _name(spec: ModelSpec) -> str:
    """The model's name for messages (engine tests hand in specs without one)."""
    return getattr(spec, "name", "the model")


def _accumulator(out: Any, shape: tuple[int, ...], scratch: str) -> Any:
    """Model-space sums: in memory beside an in-memory output, else a scratch Zarr array."""
    if isinstance(out, np.ndarray):
        return np.zeros(shape, np.float32)
    import zarr

    chunks = (1, *(min(n, 64) for n in shape[1:]))
    return zarr.create_array(
        scratch, shape=shape, dtype="float32", chunks=chunks, fill_value=0, compressors=None
    )


def _run_tiles(
    run: TiledRun,
    model: Network,
    target: Any,
    batch_size: int,
    progress: ProgressCallback | None,
    rescaled: bool,
) -> None:
    """Read, run and place every tile, ``batch_size`` at a time."""
    total = run.n_tiles + (1 if rescaled else 0)
    if progress:
        progress(0, total)
    done = 0
    batch: list[tuple[tuple[int, int, int], np.ndarray]] = []
    for index, origin in run.tiles():
        batch.append((index, run.read_tile(origin)))
        if len(batch) == batch_size or done + len(batch) == run.n_tiles:
            raise_if_cancelled(progress)
            predictions = model(np.stack([t for _, t in batch]))
            for (i, _), prediction in zip(batch, predictions, strict=True):
                run.place(target, i, prediction)
            done += len(batch)
            batch = []
            if progress:
                progress(done, total)


def _resample_back(target: Any, out: Any, factors: Sequence[float]) -> None:
    """Resample the model-space outputs onto ``out``'s grid, 16 slices at a time."""
    spatial, model_shape = tuple(out.shape[1:]), tuple(target.shape[1:])
    back = [
        source_coords(np.arange(n, dtype=np.float64), 1.0 / f, m) if f != 1.0 else np.arange(n)
        for n, m, f in zip(spatial, model_shape, factors, strict=True)
    ]
    for z in range(0, spatial[0], 16):
        zs = back[0][z : z + 16]
        out[:, z : z + len(zs)] = read_resampled(target, [zs, back[1], back[2]])


def predict_volume(
    data: Any,
    axes: str,
    model: Network,
    spec: ModelSpec,
    voxel_size_um: Sequence[float] | None = None,
    tile: Sequence[int] | None = None,
    batch_size: int = 1,
    out: Any | None = None,
    progress: ProgressCallback | None = None,
    on_model_grid: bool = False,
) -> Any:
    """`predict` for any of ``YX, ZYX, CZYX, TZYX, TCZYX``: time points one by one, 2D as one slice.

    Parameters
    ----------
    data
        Array-like (numpy, dask, zarr, h5py) with axes ``axes``.
    axes
        Axis letters of ``data``; ``C`` must come just before ``Z, Y, X``.
    model, spec
        The network and its spec, as for `predict`.
    voxel_size_um
        Voxel size of the spatial axes of ``data`` in µm (``y, x`` used for 2D); None: the
        model's own (no rescaling).
    tile, batch_size, on_model_grid
        See `predict`.
    out
        Array to write into, float32 ``(C_out, [T,] [Z,] Y, X)`` and zero-filled (e.g. a Zarr
        array); a new numpy array when None.
    progress
        Called with ``(done, total)`` counted over all time points; may raise `Cancelled`.

    Returns
    -------
    array
        float32 ``(C_out, [T,] [Z,] Y, X)``: channels first, the input's other axes after.

    Raises
    ------
    ValueError
        ``axes`` do not describe ``data``, or the data does not fit the model (see `predict`).
    """
    if "Y" not in axes or "X" not in axes or len(axes) != data.ndim:
        raise ValueError(f"axes {axes!r} do not describe data of shape {tuple(data.shape)}")
    if "Z" not in axes:  # a 2D image or time series: one slice thick
        data = data[..., None, :, :]
        axes = axes[:-2] + "ZYX"
        voxel_size_um = (
            None if voxel_size_um is None else (spec.network_voxel_size_um[0], *voxel_size_um[-2:])
        )
        result = predict_volume(
            data, axes, model, spec, voxel_size_um, tile, batch_size, None, progress, on_model_grid
        )
        result = result[..., 0, :, :]
        if out is None:
            return result
        out[...] = result
        return out
    n_times = data.shape[axes.index("T")] if "T" in axes else 1
    spatial = tuple(data.shape[-3:])
    if voxel_size_um is not None:  # checked here too: the output is allocated before `predict`
        voxel_size_um = check_voxel_size(voxel_size_um)
        check_rescaling(
            rescale_factors(voxel_size_um, spec.network_voxel_size_um), voxel_size_um, spec
        )
    if on_model_grid:
        spatial = model_grid(spatial, voxel_size_um, spec)[0]
    if out is None:
        shape = (spec.n_output_channels, *((n_times,) if "T" in axes else ()), *spatial)
        check_memory(
            4 * math.prod(shape),
            f"the output of {_name(spec)} ({'×'.join(map(str, shape))} float32)",
            "write it to a Zarr output (predict -o OUT.zarr)",
        )
        out = np.zeros(shape, np.float32)
    for t in range(n_times):

        def report(done: int, total: int, t: int = t) -> None:
            if progress:
                progress(t * total + done, n_times * total)

        volume = data if "T" not in axes else data[(slice(None),) * axes.index("T") + (t,)]
        if "C" in axes and axes.index("C") != len(axes) - 4:
            raise ValueError(f"axes {axes!r}: channels must come just before Z, Y, X")
        target = out if "T" not in axes else _TimeView(out, t)
        predict(
            volume,
            model,
            spec,
            voxel_size_um,
            tile,
            None,
            batch_size,
            target,
            report,
            on_model_grid,
        )
    return out


class _TimeView:
    """``out[:, t]`` as a writable target, also for Zarr arrays whose slices are copies."""

    def __init__(self, array: Any, t: int) -> None:
        self.array, self.t = array, t
        self.shape = (array.shape[0], *array.shape[2:])

    def __getitem__(self, key: tuple) -> Any:
        return self.array[(key[0], self.t, *key[1:])]

    def __setitem__(self, key: tuple, value: Any) -> None:
        self.array[(key[0], self.t, *key[1:])] = value
