"""Detect spines in a stack with any spine-detection model: heatmap → peaks → table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_spines.progress import ProgressCallback
from napari_spines.spines.detect import find_peaks, near_points, place_between_slices

#: Voxel sizes outside this range (µm) are almost certainly a unit mistake.
PLAUSIBLE_VOXEL_UM = (0.005, 20.0)


@dataclass(frozen=True)
class Detections:
    """Detected spine heads: voxel coordinates in the input stack (``t`` first for 4D input)."""

    coords: np.ndarray
    scores: np.ndarray
    voxel_size_um: tuple[float, float, float]

    def __len__(self) -> int:
        return len(self.coords)


def check_stack(shape: Sequence[int], axes: str, voxel_size_um: Sequence[float] | None) -> None:
    """Raise ValueError with a clear message for input spine detection cannot use.

    Parameters
    ----------
    shape, axes
        Shape of the stack and its axis letters.
    voxel_size_um
        Voxel size in µm; None skips the plausibility check.

    Raises
    ------
    ValueError
        No ``Z`` axis, a ``C`` axis, or a voxel size outside `PLAUSIBLE_VOXEL_UM`.
    """
    if "Z" not in axes:
        raise ValueError(
            f"spine detection needs a 3D stack (Z, Y, X); this is {axes} {tuple(shape)}"
        )
    if "C" in axes:
        raise ValueError("spine detection needs one channel: pick the structural channel")
    if voxel_size_um is not None:
        low, high = PLAUSIBLE_VOXEL_UM
        bad = [v for v in voxel_size_um if not low <= float(v) <= high]
        if bad:
            raise ValueError(
                f"voxel size {tuple(voxel_size_um)} µm is implausible (each must be "
                f"between {low} and {high} µm); check the units"
            )


def detect_spines(
    data: Any,
    axes: str,
    model: str = "spine-2p",
    voxel_size_um: Sequence[float] | None = None,
    threshold: float | None = None,
    min_distance_um: float | None = None,
    max_dendrite_distance_um: float | None = None,
    runtime: str = "auto",
    device: str = "auto",
    progress: ProgressCallback | None = None,
    tile: Sequence[int] | None = None,
) -> Detections:
    """Run a spine-detection model and return every peak of its heatmap above ``threshold``.

    Parameters
    ----------
    data
        ``ZYX`` or ``TZYX`` stack (numpy, dask, zarr).
    axes
        Axis letters of ``data``.
    model
        Registered name or package path of a ``spine-detection`` model.
    voxel_size_um
        Voxel size of ``data``; None means the model's own.
    threshold, min_distance_um, max_dendrite_distance_um
        Post-processing; default from the model's ``postprocessing``. The dendrite distance
        applies when the model has a ``dendrite`` output: peaks farther from the predicted
        shaft are dropped. A ``between_slices_ratio`` in the model's ``postprocessing`` places
        heads that fill two slices between them (`place_between_slices`).
    runtime, device
        See `napari_spines.models.load_model`.
    progress
        ``(done, total)`` callback; may raise `Cancelled`.
    tile
        Tile size in model voxels (z, y, x); None: the model's. The halo covers the
        network's receptive field, so a tile changes time and memory, not the detections.

    Returns
    -------
    Detections
        Head coordinates in the stack's voxels (``t`` first for ``TZYX``), with scores.

    Raises
    ------
    ValueError
        A stack or voxel size spine detection cannot use, or no such model (`ModelError`).
    """
    from napari_spines.models import find_model

    check_stack(data.shape, axes, voxel_size_um)
    package = find_model(model, task="spine-detection")
    maps = predict_heatmaps(data, axes, package, voxel_size_um, runtime, device, progress, tile)
    given = {
        "threshold": threshold,
        "min_distance_um": min_distance_um,
        "max_dendrite_distance_um": max_dendrite_distance_um,
    }
    return maps.postprocessed(
        {**package.spec.postprocessing, **{k: v for k, v in given.items() if v is not None}}
    )


@dataclass(frozen=True)
class Heatmaps:
    """A model's spine-head (and dendrite-shaft) maps of a stack, on the model's grid.

    ``factors`` are model voxels per data voxel on each axis (`napari_spines.inference.
    model_grid`); peaks are found on the model's grid, where the network made them, and then
    placed in the stack's voxels.
    """

    heads: np.ndarray
    shaft: np.ndarray | None
    axes: str
    voxel_size_um: tuple[float, float, float]
    factors: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def grid_voxel_um(self) -> tuple[float, float, float]:
        """Voxel size of the maps' grid in µm."""
        return tuple(
            v / f
            for v, f in zip(
                self.voxel_size_um,
                self.factors,  # type: ignore
                strict=True,
            )
        )

    def postprocessed(self, postprocessing: Mapping[str, Any]) -> Detections:
        """`peaks` with the settings of a model's ``postprocessing`` (threshold 0.5 if none).

        Parameters
        ----------
        postprocessing
            ``threshold``, ``min_distance_um`` (default 1.0), ``max_dendrite_distance_um`` and
            ``between_slices_ratio``, each optional (see `peaks`).

        Returns
        -------
        Detections
        """
        return self.peaks(
            float(postprocessing.get("threshold", 0.5)),
            float(postprocessing.get("min_distance_um", 1.0)),
            postprocessing.get("max_dendrite_distance_um"),
            postprocessing.get("between_slices_ratio"),
        )

    def peaks(
        self,
        threshold: float,
        min_distance_um: float = 1.0,
        max_dendrite_distance_um: float | None = None,
        between_slices_ratio: float | None = None,
    ) -> Detections:
        """Peaks above ``threshold``; near the predicted shaft when a distance is given.

        Parameters
        ----------
        threshold
            Minimum heatmap value of a peak.
        min_distance_um
            Smallest distance in µm between two peaks (see `find_peaks`).
        max_dendrite_distance_um
            Drop peaks farther than this (µm) from the predicted shaft; None, or no shaft
            map, keeps them all.
        between_slices_ratio
            See `place_between_slices`; None keeps the parabola's z.

        Returns
        -------
        Detections
            Coordinates in the stack's voxels (``t`` first for a time series), each frame's
            strongest first.
        """
        timed = "T" in self.axes
        frames = list(self.heads) if timed else [self.heads]
        shafts = list(self.shaft) if timed and self.shaft is not None else [self.shaft]
        grid_voxel = self.grid_voxel_um
        coords, scores = [], []
        for t, frame in enumerate(frames):
            frame = np.asarray(frame)
            found, score = find_peaks(frame, grid_voxel, threshold, min_distance_um)
            if between_slices_ratio is not None:
                found = place_between_slices(frame, found, float(between_slices_ratio))
            shaft = shafts[t] if t < len(shafts) else None
            if shaft is not None and max_dendrite_distance_um is not None and len(found):
                shaft_points = np.argwhere(np.asarray(shaft) > 0.5)[::2]
                keep = near_points(found, shaft_points, grid_voxel, float(max_dendrite_distance_um))
                found, score = found[keep], score[keep]
            found = (found + 0.5) / np.asarray(self.factors) - 0.5  # into the stack's voxels
            if timed:
                found = np.column_stack([np.full(len(found), t), found])
            coords.append(found)
            scores.append(score)
        return Detections(np.concatenate(coords), np.concatenate(scores), self.voxel_size_um)


def predict_heatmaps(
    data: Any,
    axes: str,
    package: Any,
    voxel_size_um: Sequence[float] | None = None,
    runtime: str = "auto",
    device: str = "auto",
    progress: ProgressCallback | None = None,
    tile: Sequence[int] | None = None,
) -> Heatmaps:
    """Run a spine-detection model over a stack, keeping its maps on the model's grid.

    Parameters
    ----------
    data, axes
        ``ZYX`` or ``TZYX`` stack and its axis letters.
    package
        A spine-detection model: name, package path, opened package or ready model.
    voxel_size_um
        Voxel size of ``data``; None means the model's own.
    runtime, device
        See `napari_spines.models.load_model`.
    progress
        ``(done, total)`` callback; may raise `Cancelled`.
    tile
        Tile size in model voxels; None: the model's (see `detect_spines`).

    Returns
    -------
    Heatmaps
    """
    from napari_spines.models import run_model

    run = run_model(
        package,
        data,
        axes,
        voxel_size_um,
        task="spine-detection",
        runtime=runtime,
        device=device,
        progress=progress,
        tile=tile,
        on_model_grid=True,
    )
    voxel = tuple(float(v) for v in (voxel_size_um or run.spec.input.voxel_size_um))
    names = [o.name for o in run.spec.outputs]
    shaft = run.output("dendrite")[0] if "dendrite" in names else None
    return Heatmaps(run.output("heatmap")[0], shaft, axes, voxel, run.factors)  # type: ignore[arg-type]


def detections_table(detections: Detections) -> dict[str, np.ndarray]:
    """Per-spine properties for a Points layer or CSV: ``id``, ``score``, status ``auto``.

    Parameters
    ----------
    detections
        The detected spines.

    Returns
    -------
    dict of str to numpy.ndarray
        ``id`` 1..N, ``score`` as float and ``status`` ``"auto"``, one entry per spine.
    """
    n = len(detections)
    return {
        "id": np.arange(1, n + 1),
        "score": detections.scores.astype(float),
        "status": np.full(n, "auto", dtype=object),
    }
