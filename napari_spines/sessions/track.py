"""Track spines across sessions, and detect a session from the previous one: the whole runs.

Shared by the ``track`` and ``detect --previous`` commands and the Sessions widget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.progress import ProgressCallback, raise_if_cancelled
from napari_spines.sessions.carry import CARRY_RATIO, NEW_RATIO, CarriedSpines, carry_spines
from napari_spines.sessions.dynamics import (
    CLASSES,
    SessionDynamics,
    dynamics_table,
    session_dynamics,
    track_classes,
)
from napari_spines.sessions.linking import AXIAL_WEIGHT, MAX_DISTANCE_UM, link_sessions
from napari_spines.sessions.registration import Registration, register_sessions


@dataclass(frozen=True)
class Tracked:
    """Spines of every session with their track ids, the registrations and the dynamics."""

    points_um: list[np.ndarray]
    track_ids: list[np.ndarray]
    registrations: list[Registration]
    classes: dict[int, str]
    dynamics: list[SessionDynamics]

    def table(self, voxel_size_um: Sequence[float]) -> dict[str, np.ndarray]:
        """The tracks as a table, one row per spine.

        Parameters
        ----------
        voxel_size_um
            Voxel size (z, y, x) in µm of the sessions, for the voxel columns.

        Returns
        -------
        dict
            Columns ``t, track_id, z, y, x, z_um, y_um, x_um``.
        """
        voxel = np.asarray(voxel_size_um, dtype=float)
        um = np.concatenate(self.points_um) if self.points_um else np.zeros((0, 3))
        t = np.concatenate([np.full(len(p), i) for i, p in enumerate(self.points_um)])
        ids = np.concatenate(self.track_ids)
        columns: dict[str, np.ndarray] = {"t": t.astype(int), "track_id": ids}
        for k, axis in enumerate("zyx"):
            columns[axis] = np.round(um[:, k] / voxel[k], 3)
        for k, axis in enumerate("zyx"):
            columns[f"{axis}_um"] = np.round(um[:, k], 4)
        return columns

    def points_tzyx(
        self, voxel_size_um: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every session's spines in voxels with their session, track id and dynamics class.

        Parameters
        ----------
        voxel_size_um
            Voxel size (z, y, x) in µm of the sessions.

        Returns
        -------
        tuple of numpy.ndarray
            ``(N, 4)`` float ``t, z, y, x`` (voxels), ``(N,)`` int track ids, ``(N,)`` classes.
        """
        voxel = np.asarray(voxel_size_um, dtype=float)
        data = np.concatenate(
            [np.column_stack([np.full(len(p), t), p / voxel]) for t, p in enumerate(self.points_um)]
        )
        ids = np.concatenate(self.track_ids).astype(int)
        return data, ids, np.array([self.classes[int(i)] for i in ids], dtype=object)

    def with_track_ids(self, track_ids: Sequence[np.ndarray]) -> Tracked:
        """The same spines on edited tracks, with their classes and dynamics counted again.

        Parameters
        ----------
        track_ids
            Per session, the new track id of each spine (`napari_spines.sessions.editing`).

        Returns
        -------
        Tracked
            Dendrite lengths (and so densities) stay those of this one.
        """
        ids = [np.asarray(i, dtype=int).reshape(-1) for i in track_ids]
        if [len(i) for i in ids] != [len(p) for p in self.points_um]:
            raise ValueError("the edited track ids do not match the spines of each session")
        lengths = [row.dendrite_length_um for row in self.dynamics]
        return Tracked(
            self.points_um,
            ids,
            self.registrations,
            track_classes(ids),
            session_dynamics(ids, lengths),
        )

    def summary(self) -> str:
        """Per session count, gains and losses, then the tracks by class, as two lines."""
        parts = []
        for row in self.dynamics:
            change = "" if row.gained is None else f" (+{row.gained} −{row.lost})"
            density = "" if row.density_per_um is None else f", {row.density_per_um:.2f}/µm"
            parts.append(f"t{row.session}: {row.count}{change}{density}")
        classes = list(self.classes.values())
        kinds = ", ".join(f"{classes.count(c)} {c}" for c in CLASSES)
        return " · ".join(parts) + f"\n{len(classes)} tracks: {kinds}"

    def write_csv(self, path: str | Path, voxel_size_um: Sequence[float]) -> tuple[Path, Path]:
        """Write the `table` at ``path`` (``.csv`` added) and the dynamics beside it, atomically.

        Parameters
        ----------
        path
            The tracks CSV; the dynamics go to ``<stem>_dynamics.csv`` in the same folder.
        voxel_size_um
            Voxel size of the stacks, for the µm columns.

        Returns
        -------
        tuple of pathlib.Path
            The tracks and the dynamics files.
        """
        from napari_spines.io.points_csv import write_table_csv

        path = Path(path).expanduser()
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        dynamics = path.with_name(f"{path.stem}_dynamics.csv")
        write_table_csv(path, self.table(voxel_size_um))
        write_table_csv(dynamics, dynamics_table(self.dynamics))
        return path, dynamics


def check_sessions(shapes: Sequence[Sequence[int]], voxel_sizes: Sequence[Sequence[float]]) -> None:
    """Raise a one-line `ValueError` unless these stacks can be tracked together.

    Parameters
    ----------
    shapes
        Each session's stack shape (ZYX).
    voxel_sizes
        Each session's voxel size (z, y, x) in µm; they must agree within 2 %.

    Examples
    --------
    >>> check_sessions([(5, 8, 8)], [(1, 1, 1)])
    Traceback (most recent call last):
    ...
    ValueError: tracking needs at least two sessions, got 1
    """
    if len(shapes) < 2:
        raise ValueError(f"tracking needs at least two sessions, got {len(shapes)}")
    for i, shape in enumerate(shapes):
        if len(shape) != 3:
            raise ValueError(f"session {i} is not a ZYX stack (shape {tuple(shape)})")
    first = np.asarray(voxel_sizes[0], dtype=float)
    for i, voxel in enumerate(voxel_sizes[1:], start=1):
        if not np.allclose(voxel, first, rtol=0.02):
            raise ValueError(
                f"session {i} has voxel size {tuple(voxel)} µm, session 0 has "
                f"{tuple(first.tolist())} µm; resample the sessions to one voxel size first"
            )


def track_sessions(
    stacks: Sequence[Any],
    voxel_size_um: Sequence[float],
    points_um: Sequence[np.ndarray] | None = None,
    model: str = "spine-2p",
    max_distance_um: float = MAX_DISTANCE_UM,
    axial_weight: float = AXIAL_WEIGHT,
    deformable: bool = True,
    dendrite_lengths_um: Sequence[float | None] | None = None,
    runtime: str = "auto",
    device: str = "auto",
    progress: ProgressCallback | None = None,
) -> Tracked:
    """Register consecutive sessions, detect spines unless given, link them into tracks.

    Parameters
    ----------
    stacks
        The sessions' ``ZYX`` stacks, in imaging order, all of ``voxel_size_um``.
    voxel_size_um
        Voxel size (z, y, x) in µm.
    points_um
        Per session, spine positions in µm; None: detect them with ``model``.
    model
        Spine-detection model used when ``points_um`` is None.
    max_distance_um, axial_weight
        See `link_sessions`.
    deformable
        Follow local motion after the translation (`register_sessions`).
    dendrite_lengths_um
        Per session, dendrite length for the densities; None: no densities.
    runtime, device
        See `napari_spines.models.load_model`.
    progress
        ``(done, total)`` callback over sessions; may raise `Cancelled`.

    Returns
    -------
    Tracked
    """
    from napari_spines.spines.detection import detect_spines

    check_sessions([np.shape(s) for s in stacks], [voxel_size_um] * len(stacks))
    n = len(stacks)
    if points_um is not None and len(points_um) != n:
        raise ValueError(f"{n} sessions need {n} point tables, got {len(points_um)}")
    voxel = np.asarray(voxel_size_um, dtype=float)
    steps = (n - 1) + (0 if points_um is not None else n)
    report = progress or (lambda done, total: None)
    done = 0
    report(done, steps)
    if points_um is None:
        found = []
        for stack in stacks:
            raise_if_cancelled(progress)
            spines = detect_spines(
                np.asarray(stack), "ZYX", model, tuple(voxel), runtime=runtime, device=device
            )
            found.append(spines.coords * voxel)
            done += 1
            report(done, steps)
        points_um = found
    registrations = []
    for t in range(n - 1):
        raise_if_cancelled(progress)
        registrations.append(
            register_sessions(np.asarray(stacks[t]), np.asarray(stacks[t + 1]), voxel, deformable)
        )
        done += 1
        report(done, steps)
    points = [np.asarray(p, dtype=float).reshape(-1, 3) for p in points_um]
    ids = link_sessions(points, registrations, max_distance_um, axial_weight)
    return Tracked(
        points, ids, registrations, track_classes(ids), session_dynamics(ids, dendrite_lengths_um)
    )


def detect_from_previous(
    stack: Any,
    voxel_size_um: Sequence[float],
    previous_stack: Any,
    previous_um: np.ndarray,
    previous_ids: np.ndarray | None = None,
    model: str = "spine-2p",
    carry_ratio: float = CARRY_RATIO,
    new_ratio: float = NEW_RATIO,
    deformable: bool = True,
    runtime: str = "auto",
    device: str = "auto",
    progress: ProgressCallback | None = None,
    tile: Sequence[int] | None = None,
) -> CarriedSpines:
    """Propose ``stack``'s spines from the previous session's corrected spines.

    Parameters
    ----------
    stack, previous_stack
        The new and the previous session's ``ZYX`` stacks, both of ``voxel_size_um``.
    voxel_size_um
        Voxel size (z, y, x) in µm.
    previous_um, previous_ids
        The previous session's spines in µm and their track ids (None: 1, 2, ...).
    model
        Spine-detection model for the new stack's heads.
    carry_ratio, new_ratio, deformable
        See `carry_spines` and `register_sessions`.
    runtime, device
        See `napari_spines.models.load_model`.
    progress
        ``(done, total)`` callback; may raise `Cancelled`.
    tile
        The model's tile size; None: its own (see `napari_spines.spines.detection.
        detect_spines`).

    Returns
    -------
    CarriedSpines
    """
    from napari_spines.models import find_model
    from napari_spines.spines.detection import predict_heatmaps

    check_sessions([np.shape(previous_stack), np.shape(stack)], [voxel_size_um] * 2)
    previous_um = np.asarray(previous_um, dtype=float).reshape(-1, 3)
    if previous_ids is None:
        previous_ids = np.arange(1, len(previous_um) + 1)
    voxel = np.asarray(voxel_size_um, dtype=float)
    package = find_model(model, task="spine-detection")
    maps = predict_heatmaps(
        np.asarray(stack), "ZYX", package, tuple(voxel), runtime, device, progress, tile
    )
    raise_if_cancelled(progress)
    registration = register_sessions(
        np.asarray(previous_stack), np.asarray(stack), voxel, deformable
    )
    post = dict(package.spec.postprocessing)
    threshold = float(post.get("threshold", 0.5))
    peaks = maps.postprocessed({**post, "threshold": carry_ratio * threshold})
    return carry_spines(
        previous_um,
        previous_ids,
        registration,
        peaks.coords * voxel,
        peaks.scores,
        threshold,
        carry_ratio,
        new_ratio,
    )
