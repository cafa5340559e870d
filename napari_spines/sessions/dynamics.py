"""Spine dynamics from tracks: each track's class, and per session counts, gains and losses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: A track present in the first and last session is stable (even with a gap between), one
#: that appears after the first is gained, one that is gone by the last is lost, and one that
#: does both is transient.
CLASSES = ("stable", "gained", "lost", "transient")


def track_classes(track_ids: Sequence[np.ndarray]) -> dict[int, str]:
    """Class of every track from the sessions it is present in.

    Parameters
    ----------
    track_ids
        Per session, the track id of each spine.

    Returns
    -------
    dict
        Track id → one of `CLASSES`.

    Examples
    --------
    >>> track_classes([np.array([1, 2]), np.array([1, 3]), np.array([1, 3])])
    {1: 'stable', 2: 'lost', 3: 'gained'}
    """
    present = [set(np.asarray(ids).tolist()) for ids in track_ids]
    first, last = present[0], present[-1]
    classes = {}
    for track in sorted(set().union(*present)):
        if track in first:
            classes[track] = "stable" if track in last else "lost"
        else:
            classes[track] = "gained" if track in last else "transient"
    return classes


@dataclass(frozen=True)
class SessionDynamics:
    """One session's spines against the session before it.

    ``gained``: tracks here that were not in the previous session; ``lost``: tracks of the
    previous session not here; ``turnover``: (gained + lost) / (previous count + count), the
    turnover ratio of Holtmaat et al. (2005); ``density_per_um``: count per µm of dendrite,
    None without a dendrite length. The first session has no gains, losses or turnover.
    """

    session: int
    count: int
    gained: int | None
    lost: int | None
    turnover: float | None
    dendrite_length_um: float | None
    density_per_um: float | None

    def row(self) -> dict[str, object]:
        """The values as one table row."""
        return {
            "t": self.session,
            "count": self.count,
            "gained": self.gained,
            "lost": self.lost,
            "turnover": None if self.turnover is None else round(self.turnover, 4),
            "dendrite_length_um": (
                None if self.dendrite_length_um is None else round(self.dendrite_length_um, 2)
            ),
            "density_per_um": (
                None if self.density_per_um is None else round(self.density_per_um, 4)
            ),
        }


def session_dynamics(
    track_ids: Sequence[np.ndarray], dendrite_lengths_um: Sequence[float | None] | None = None
) -> list[SessionDynamics]:
    """Counts, gains, losses, turnover and density of each session.

    Parameters
    ----------
    track_ids
        Per session, the track id of each spine.
    dendrite_lengths_um
        Per session, the length of dendrite in µm the spines were counted on, or None.

    Returns
    -------
    list of SessionDynamics

    Examples
    --------
    >>> rows = session_dynamics([np.array([1, 2]), np.array([1, 3, 4])], [10.0, None])
    >>> [(r.count, r.gained, r.lost, r.turnover, r.density_per_um) for r in rows]
    [(2, None, None, None, 0.2), (3, 2, 1, 0.6, None)]
    """
    lengths = list(dendrite_lengths_um or [None] * len(track_ids))
    rows = []
    for t, ids in enumerate(track_ids):
        here = set(np.asarray(ids).tolist())
        length = lengths[t]
        density = len(here) / length if length else None
        if t == 0:
            gained = lost = turnover = None
        else:
            before = set(np.asarray(track_ids[t - 1]).tolist())
            gained, lost = len(here - before), len(before - here)
            total = len(before) + len(here)
            turnover = (gained + lost) / total if total else 0.0
        rows.append(SessionDynamics(t, len(here), gained, lost, turnover, length, density))
    return rows


def dynamics_table(rows: Sequence[SessionDynamics]) -> dict[str, list]:
    """The dynamics as columns, one entry per session (what ``--dynamics-out`` writes).

    Parameters
    ----------
    rows
        The sessions' `SessionDynamics`.

    Returns
    -------
    dict
        Column name (``t, count, gained, lost, turnover, ...``) → values.

    Examples
    --------
    >>> dynamics_table(session_dynamics([np.array([1])]))["count"]
    [1]
    """
    values = [r.row() for r in rows]
    return {name: [v[name] for v in values] for name in (values[0] if values else {})}


def dendrite_length_um(trace: np.ndarray, voxel_size_um: Sequence[float]) -> float:
    """Length in µm of traced dendrites.

    Parameters
    ----------
    trace
        ``(N, 4)`` rows ``segment_id, z, y, x`` in voxels, each segment's points in order.
    voxel_size_um
        Voxel size (z, y, x) in µm.

    Returns
    -------
    float
        The summed length of every segment's polyline.

    Examples
    --------
    >>> dendrite_length_um(np.array([[1, 0, 0, 0], [1, 0, 3, 4], [2, 0, 0, 0]]), (1, 1, 1))
    5.0
    """
    trace = np.asarray(trace, dtype=float).reshape(-1, 4)
    scale = np.asarray(voxel_size_um, dtype=float)
    total = 0.0
    for segment in np.unique(trace[:, 0]):
        line = trace[trace[:, 0] == segment, 1:] * scale
        total += float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())
    return total
