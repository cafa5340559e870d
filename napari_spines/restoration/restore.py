"""Run a restoration model (denoising, super-resolution) over a stack with the tiled engine.

A restoration network maps normalised intensities to normalised intensities on the grid of its
outputs: for super-resolution (``restore-em``) that grid is finer than the input's, and the
engine reads the input there by linear interpolation. The result is mapped back to the input's
grey levels with the same normalisation, so it can be compared with the input voxel for voxel.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_spines.errors import DataWarning
from napari_spines.progress import ProgressCallback

#: The model proposed when the stack's voxel size is not known.
FALLBACK_MODEL = "restore-2p"

#: A stack's voxel size may differ this much (relative) from the model's before a warning.
VOXEL_TOLERANCE = 0.05


@dataclass(frozen=True)
class Restored:
    """A restored stack and where it lies.

    Parameters
    ----------
    image
        float32 ``([T,] [Z,] Y, X)`` in the input's grey levels, on the output grid.
    voxel_size_um
        Voxel size of ``image``'s spatial axes in µm (finer than the input's when upscaled).
    upscale
        Input voxels per output voxel on the spatial axes.
    model
        The model's ``name@version``.
    """

    image: np.ndarray
    voxel_size_um: tuple[float, ...]
    upscale: tuple[float, ...]
    model: str


def restore(
    data: Any,
    axes: str,
    model: Any = "restore-2p",
    voxel_size_um: Sequence[float] | None = None,
    *,
    runtime: str = "auto",
    device: str = "auto",
    tile: Sequence[int] | None = None,
    progress: ProgressCallback | None = None,
) -> Restored:
    """Restore a stack: ``YX``, ``ZYX``, ``TYX`` or ``TZYX``, time points one by one.

    Parameters
    ----------
    data
        Array-like (numpy, dask, zarr) with axes ``axes``.
    axes
        Axis letters of ``data``.
    model
        A restoration model: registered name, package path, or a ready model.
    voxel_size_um
        Voxel size of the spatial axes in µm; None: the model's input voxel size is assumed.
    runtime, device, tile
        See `napari_spines.models.run_model`.
    progress
        ``(done, total)`` over all time points; may raise `Cancelled`.

    Returns
    -------
    Restored

    Raises
    ------
    ModelError
        The model cannot be found or is not a restoration model.
    ValueError
        Axes the restoration cannot take (channels), or data the model cannot run on.
    """
    from napari_spines.inference import model_grid, normalisation_stats, predict_volume
    from napari_spines.models.run import ready_model

    if "C" in axes:
        raise ValueError(f"restoration takes one channel; axes {axes!r} have a C axis")
    ready = ready_model(model, task="restoration", runtime=runtime, device=device)
    spec = ready.spec
    spatial_axes = axes.replace("T", "")
    n_spatial = len(spatial_axes)
    expected = spec.input.voxel_size_um[-n_spatial:]
    voxel = tuple(float(v) for v in voxel_size_um) if voxel_size_um is not None else expected
    _warn_if_other_voxel_size(voxel, expected, spec.name)
    upscaled = any(u != 1 for u in spec.upscale)
    volume_voxel = voxel if n_spatial == 3 else (spec.input.voxel_size_um[0], *voxel)
    shape3 = (1, *data.shape[-2:]) if n_spatial == 2 else tuple(data.shape[-3:])
    grid, factors = model_grid(shape3, volume_voxel, spec)
    if not upscaled:  # the engine resamples a denoiser's output back onto the input's grid
        factors = (1.0, 1.0, 1.0)
    out_voxel = tuple(v / f for v, f in zip(volume_voxel, factors, strict=True))
    out_spatial = (grid if upscaled else shape3)[-n_spatial:]
    n_times = data.shape[0] if "T" in axes else 1
    image = np.zeros((n_times, *out_spatial), np.float32)
    for t in range(n_times):
        volume = data[t] if "T" in axes else data

        def report(done: int, total: int, t: int = t) -> None:
            if progress:
                progress(t * total + done, n_times * total)

        stats_of = np.asarray(volume)[None] if n_spatial == 2 else volume
        offset, gain = normalisation_stats(stats_of, spec.input.normalisation, False)
        result = predict_volume(
            volume,
            spatial_axes,
            ready,
            spec,
            voxel_size_um=voxel,
            tile=tile,
            progress=report,
            on_model_grid=upscaled,
        )
        image[t] = result[0] / gain[0] + offset[0]
    return Restored(
        image if "T" in axes else image[0],
        tuple(round(v, 9) for v in out_voxel[-n_spatial:]),
        tuple(factors[-n_spatial:]),
        f"{spec.name}@{spec.version}",
    )


def default_model(voxel_size_um: Sequence[float] | None) -> str:
    """The restoration model made for the voxel size nearest the stack's.

    Parameters
    ----------
    voxel_size_um
        The stack's voxel size in µm (``z, y, x`` or ``y, x``); None: not known.

    Returns
    -------
    str
        A model name; `FALLBACK_MODEL` when the size is not known or no restoration model is
        installed.
    """
    from napari_spines.models.registry import list_models, nearest_voxel_size

    packages = [p for p in list_models() if p.spec.task == "restoration"]
    if voxel_size_um is None or not packages:
        return FALLBACK_MODEL
    return nearest_voxel_size(packages, voxel_size_um)[0].spec.name


def _warn_if_other_voxel_size(voxel: Sequence[float], expected: Sequence[float], name: str) -> None:
    """A `DataWarning` when the stack's voxel size is not the one the model was trained at."""
    if all(abs(v / e - 1) <= VOXEL_TOLERANCE for v, e in zip(voxel, expected, strict=True)):
        return
    shown = " × ".join(f"{v:g}" for v in voxel)
    wanted = " × ".join(f"{v:g}" for v in expected)
    warnings.warn(
        DataWarning(
            f"{name} was trained on {wanted} µm voxels, this stack has {shown} µm: it is "
            "resampled first, and the result may be poorer; train a model on your own stacks "
            "(napari-spines train restoration) for the best result"
        ),
        stacklevel=3,
    )


def output_placement(
    scale: Sequence[float], translate: Sequence[float], upscale: Sequence[float]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(scale, translate)`` that lay a restored stack exactly over its input in napari.

    Voxel edges are aligned, as in the engine: an output voxel of an ``f``-fold upscaled axis is
    ``scale / f`` wide and its first centre lies ``(1 - 1/f) / 2`` input voxels before the
    input's first centre.

    Parameters
    ----------
    scale, translate
        The input layer's, one value per axis (time included).
    upscale
        `Restored.upscale`: input voxels per output voxel of the last (spatial) axes.

    Returns
    -------
    tuple
        The output layer's scale and translate.

    Examples
    --------
    >>> output_placement((1.0, 0.016, 0.016), (0.0, 0.0, 0.0), (1.0, 4.0, 4.0))
    ((1.0, 0.004, 0.004), (0.0, -0.006, -0.006))
    """
    lead = len(scale) - len(upscale)
    factors = (1.0,) * lead + tuple(float(f) for f in upscale)
    new_scale = tuple(round(s / f, 12) for s, f in zip(scale, factors, strict=True))
    new_translate = tuple(
        round(t - s / 2 + s / (2 * f), 12)
        for t, s, f in zip(translate, scale, factors, strict=True)
    )
    return new_scale, new_translate
