"""Segment an EM stack: affinity model → fragments → agglomeration.

The fragments are a watershed of the nearest-neighbour affinities, or the mutex watershed of
long-range ones when the model's settings for the mode say ``method: mutex_watershed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_spines.progress import ProgressCallback
from napari_spines.segmentation.affinities import NEAREST
from napari_spines.segmentation.agglomeration import (
    DEFAULT_THRESHOLD,
    Agglomeration,
    agglomerate,
    watershed_fragments,
)
from napari_spines.segmentation.stack_settings import (  # noqa: F401 (re-exported)
    MODES,
    StackSettings,
    default_mode,
    stack_settings,
)

DEFAULT_MODEL = "em-affinity"


@dataclass
class Segmentation:
    """Affinities of a stack and their agglomeration; `labels` at any threshold."""

    affinities: np.ndarray
    agglomeration: Agglomeration
    threshold: float = DEFAULT_THRESHOLD

    def labels(self, threshold: float | None = None) -> np.ndarray:
        """uint32 labels at ``threshold`` (default: the model's).

        Parameters
        ----------
        threshold
            Merge threshold; None: `threshold`, the one the segmentation was made with.

        Returns
        -------
        np.ndarray
            uint32 ``(Z, Y, X)`` segment ids.
        """
        t = self.threshold if threshold is None else threshold
        return self.agglomeration.labels(t).astype(np.uint32)


def check_image(shape: Sequence[int], axes: str) -> None:
    """Raise ValueError with a clear message for images the segmentation cannot use.

    Parameters
    ----------
    shape, axes
        Shape of the image and its axis letters.

    Raises
    ------
    ValueError
        Anything but a single-channel 3D ``ZYX`` stack, or sections under 8 × 8 pixels.
    """
    if "Z" not in axes or "T" in axes or "C" in axes or len(shape) != 3:
        raise ValueError(
            f"segmentation needs a single-channel 3D stack (Z, Y, X); this is {axes} {tuple(shape)}"
        )
    if min(shape) < 1 or shape[1] < 8 or shape[2] < 8:
        raise ValueError(
            f"the stack {tuple(shape)} is too small to segment (at least 8 × 8 pixels per section)"
        )


def check_affinity_model(package: Any) -> None:
    """Raise ValueError unless ``package`` predicts nearest-neighbour affinities first.

    Its first three channels must be the z, y, x affinities (`NEAREST`); further channels
    (long-range affinities) may follow.

    Parameters
    ----------
    package
        An opened model package (anything with a ``spec``).

    Raises
    ------
    ValueError
        A model of another task, with fewer than three output channels, or whose first three
        offsets are not the nearest neighbours.
    """
    spec = package.spec
    offsets = spec.outputs[0].offsets if spec.outputs else None
    if (
        spec.task != "affinities"
        or spec.n_output_channels < 3
        or (offsets is not None and tuple(map(tuple, offsets[:3])) != NEAREST)
    ):
        raise ValueError(
            f"model {spec.name!r} predicts {spec.task} ({spec.n_output_channels} "
            f"channels), not z, y, x affinities: pick an affinity model"
        )


def affinity_package(model: str | Any) -> Any:
    """The checked affinity package for a registered name, a package path or an opened one.

    Parameters
    ----------
    model
        A registered name or package path (looked up with `find_model`), or an opened package.

    Returns
    -------
    ModelPackage
        The package (``model`` itself when it was opened already).

    Raises
    ------
    ModelError
        No such model, a broken package, or not an affinity model (a ValueError).
    ValueError
        A package that does not predict z, y, x affinities.
    """
    from napari_spines.models import find_model

    package = find_model(model, task="affinities") if isinstance(model, str) else model
    check_affinity_model(package)
    return package


def segmentation_plan(
    data: Any,
    axes: str,
    model: str | Any,
    voxel_size_um: Sequence[float] | None,
    mode: str | None = None,
    threshold: float | None = None,
) -> tuple[Any, StackSettings]:
    """Check a stack, open its affinity model and choose how to segment it (before any work).

    What ``segment`` and the Segmentation widget's line below Segment say before running.

    Parameters
    ----------
    data
        The stack (numpy, dask or zarr; read only when its anisotropy must be estimated).
    axes
        Its axes (`check_image`).
    model
        A registered name, a package path or an opened package (`affinity_package`).
    voxel_size_um
        ``(z, y, x)`` in µm, or None when nothing gives it (`stack_settings`).
    mode, threshold
        The user's choices; None: from the model and the stack.

    Returns
    -------
    tuple
        The package and its `StackSettings` for this stack.

    Raises
    ------
    ValueError
        A stack that is not 3D, no such model, or not an affinity model.
    """
    check_image(tuple(data.shape), axes)
    package = affinity_package(model)
    return package, stack_settings(data, package.spec, voxel_size_um, mode, threshold)


def check_mode(mode: str | None) -> None:
    """Raise ValueError unless ``mode`` is None (automatic) or one of `MODES`.

    Parameters
    ----------
    mode
        The mode to check.

    Raises
    ------
    ValueError
        Any other mode.

    Examples
    --------
    >>> check_mode("4d")
    Traceback (most recent call last):
    ValueError: mode must be one of 3d, 2d+z, 2d; got '4d'
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")


def predict_affinities(
    data: Any,
    axes: str,
    model: str | Any = DEFAULT_MODEL,
    voxel_size_um: Sequence[float] | None = None,
    runtime: str = "auto",
    device: str = "auto",
    progress: ProgressCallback | None = None,
    every_channel: bool = False,
) -> np.ndarray:
    """Run an affinity model over a ``ZYX`` stack.

    Parameters
    ----------
    data, axes
        A ``ZYX`` stack (numpy, dask or zarr) and its axis letters.
    model
        A registered name, a package path or an opened package of an ``affinities`` model.
    voxel_size_um
        Voxel size of ``data``; None means the model's own.
    runtime, device
        See `napari_spines.models.load_model`.
    progress
        ``(done, total)`` callback; may raise `Cancelled`.
    every_channel
        Return a model's long-range channels too, after the nearest three.

    Returns
    -------
    numpy.ndarray
        float32 ``(3, Z, Y, X)``: z, y and x affinities (``(channels, Z, Y, X)`` with
        ``every_channel``).
    """
    from napari_spines.models import run_model

    check_image(data.shape, axes)
    package = affinity_package(model)
    run = run_model(
        package, data, axes, voxel_size_um, runtime=runtime, device=device, progress=progress
    )
    return np.asarray(run.outputs if every_channel else run.outputs[:3], np.float32)


def segment_affinities(
    affinities: np.ndarray,
    mode: str = "2d+z",
    threshold: float = DEFAULT_THRESHOLD,
    quantile: int | None = None,
    progress: ProgressCallback | None = None,
    fragments: np.ndarray | None = None,
) -> Segmentation:
    """Fragments and agglomeration of given affinities (see `agglomeration` and `MODES`).

    Parameters
    ----------
    affinities
        ``(3, Z, Y, X)`` affinities in [0, 1].
    mode
        One of `MODES`.
    threshold
        The threshold `Segmentation.labels` uses by default.
    quantile
        Score edges by that quantile (percent) of their affinities; None: their mean.
    progress
        ``(done, total)`` callback over fragments and agglomeration; may raise `Cancelled`.
    fragments
        ``(Z, Y, X)`` fragment ids 1..N made already (by the mutex watershed); None: by a
        watershed of the affinities.

    Returns
    -------
    Segmentation

    Raises
    ------
    ValueError
        An unknown ``mode``, affinities not shaped ``(3, Z, Y, X)``, or an unsupported
        ``quantile``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    in_plane = mode != "3d"
    n_blocks = affinities.shape[1] if in_plane else 1

    def fragment_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(done, n_blocks + 1)

    if fragments is None:
        fragments = watershed_fragments(affinities, in_plane=in_plane, progress=fragment_progress)
    merged = affinities
    if mode == "2d":  # no z-edge may merge: score them 1, above every threshold but the last
        merged = np.array(affinities, np.float32)
        merged[0] = 0.0
    result = agglomerate(merged, fragments, quantile)
    if progress is not None:
        progress(n_blocks + 1, n_blocks + 1)
    return Segmentation(np.asarray(affinities, np.float32), result, threshold)


def segment_image(
    data: Any,
    axes: str,
    model: str | Any = DEFAULT_MODEL,
    voxel_size_um: Sequence[float] | None = None,
    threshold: float | None = None,
    mode: str | None = None,
    quantile: int | None = None,
    runtime: str = "auto",
    device: str = "auto",
    progress: ProgressCallback | None = None,
) -> Segmentation:
    """Affinities of a stack by ``model``, then fragments and agglomeration.

    Parameters
    ----------
    data, axes
        A ``ZYX`` stack (numpy, dask or zarr) and its axis letters.
    model
        Name or path of an ``affinities`` model package, or an opened package.
    voxel_size_um
        Voxel size of ``data``; None: not known (the mode is then estimated from the stack).
    threshold
        Agglomeration threshold; default from the model's ``postprocessing`` for the mode.
    mode
        One of `MODES`; default from the voxel size, else from the stack (`stack_settings`).
    quantile
        Score edges by this quantile of their affinities; default the model's
        ``postprocessing.quantile``, else the mean.
    runtime, device
        See `napari_spines.models.load_model`.
    progress
        ``(done, total)`` callback over both stages; may raise `Cancelled`.

    Returns
    -------
    Segmentation
        The affinities and their agglomeration; ``labels(threshold)`` at any threshold.

    Raises
    ------
    ValueError
        An image, mode or model the segmentation cannot use (`ModelError` included).
    """
    check_image(data.shape, axes)
    check_mode(mode)  # before the model runs, not after
    package = affinity_package(model)
    spec = package.spec
    settings = stack_settings(data, spec, voxel_size_um, mode, threshold)
    if quantile is None:
        quantile = spec.postprocessing.get("quantile")

    def stage(first: int, weight: int) -> ProgressCallback:
        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(first + round(weight * done / max(total, 1)), 100)

        return report

    mutex = settings.mutex_bias is not None
    affinities = predict_affinities(
        data, axes, package, settings.run_voxel_um, runtime, device, stage(0, 70), mutex
    )
    mode, threshold = settings.mode, settings.threshold
    fragments = None
    if mutex:
        from napari_spines.segmentation.mutex import mutex_watershed

        offsets = spec.outputs[0].offsets
        within = "3d" if mode == "3d" else "2d"
        fragments = mutex_watershed(
            affinities, offsets, settings.mutex_bias, within, settings.mutex_min_size, progress
        )
        affinities = affinities[:3]
    return segment_affinities(affinities, mode, threshold, quantile, stage(70, 30), fragments)
