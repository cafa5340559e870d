"""Correct tracks by hand: relink a spine, split a track, merge two tracks; with undo.

Tracks are held as each session's track ids (``track_ids[t][i]``: the track of spine ``i`` of
session ``t``), the form `napari_spines.sessions.track.Tracked` keeps. A track has at most one
spine per session, and every edit keeps it so. Each edit returns new arrays (the old ones stay
as they were, which is what undo needs) and one line that says what changed; an edit that cannot
be made raises a one-line `ValueError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

TrackIds = list[np.ndarray]


def new_track_id(track_ids: Sequence[np.ndarray]) -> int:
    """A track id no spine has yet.

    Parameters
    ----------
    track_ids
        Per session, the track id of each spine.

    Returns
    -------
    int
        One more than the largest id (1 when there are none).

    Examples
    --------
    >>> new_track_id([np.array([1, 4]), np.array([2])])
    5
    """
    return 1 + max((int(np.max(ids)) for ids in track_ids if len(ids)), default=0)


def _copy(track_ids: Sequence[np.ndarray]) -> TrackIds:
    return [np.array(ids, dtype=int).reshape(-1) for ids in track_ids]


def _sessions_of(track_ids: Sequence[np.ndarray], track_id: int) -> list[int]:
    return [t for t, ids in enumerate(track_ids) if np.any(ids == track_id)]


def _check_track(track_ids: Sequence[np.ndarray], track_id: int) -> None:
    if not _sessions_of(track_ids, track_id):
        raise ValueError(f"there is no track {track_id}")


def relink(
    track_ids: Sequence[np.ndarray], t: int, index: int, track_id: int | None = None
) -> tuple[TrackIds, str]:
    """Move one spine to another track (or to a track of its own).

    Where the other track already has a spine in that session, the two spines swap tracks: that
    is the usual fix of two crossed links.

    Parameters
    ----------
    track_ids
        Per session, the track id of each spine.
    t, index
        The session and the spine's index in it.
    track_id
        The track it belongs to; None: a new track of its own.

    Returns
    -------
    tuple
        The new track ids and a line that says what changed.

    Examples
    --------
    >>> ids, said = relink([np.array([1, 2]), np.array([1, 2])], 1, 0, 2)
    >>> [i.tolist() for i in ids]
    [[1, 2], [2, 1]]
    >>> said
    'session 1: spine of track 1 moved to track 2, which gave its spine to track 1'
    """
    ids = _copy(track_ids)
    if not 0 <= t < len(ids):
        raise ValueError(f"there is no session {t} (sessions 0 to {len(ids) - 1})")
    if not 0 <= index < len(ids[t]):
        raise ValueError(f"session {t} has no spine {index} (it has {len(ids[t])})")
    old = int(ids[t][index])
    target = new_track_id(ids) if track_id is None else int(track_id)
    if target <= 0:
        raise ValueError(f"track ids are positive, not {target}")
    if target == old:
        raise ValueError(f"session {t}: that spine is already on track {old}")
    said = f"session {t}: spine of track {old} moved to track {target}"
    holder = np.flatnonzero(ids[t] == target)
    if len(holder):
        ids[t][holder] = old
        said += f", which gave its spine to track {old}"
    ids[t][index] = target
    return ids, said


def split(track_ids: Sequence[np.ndarray], track_id: int, t: int) -> tuple[TrackIds, str]:
    """Cut a track before session ``t``: its spines from ``t`` on become a new track.

    Parameters
    ----------
    track_ids
        Per session, the track id of each spine.
    track_id
        The track to cut.
    t
        The first session of the new track.

    Returns
    -------
    tuple
        The new track ids and a line that says what changed.

    Examples
    --------
    >>> ids, said = split([np.array([1]), np.array([1]), np.array([1])], 1, 1)
    >>> [i.tolist() for i in ids], said
    ([[1], [2], [2]], 'track 1 split before session 1: sessions 1–2 are track 2')
    """
    ids = _copy(track_ids)
    _check_track(ids, track_id)
    present = _sessions_of(ids, track_id)
    before = [s for s in present if s < t]
    after = [s for s in present if s >= t]
    if not before or not after:
        raise ValueError(
            f"track {track_id} is in sessions {_spans(present)}; split it at a session after its "
            "first one and no later than its last"
        )
    new = new_track_id(ids)
    for s in after:
        ids[s][ids[s] == track_id] = new
    said = f"track {track_id} split before session {t}: sessions {_spans(after)} are track {new}"
    return ids, said


def merge(track_ids: Sequence[np.ndarray], keep: int, other: int) -> tuple[TrackIds, str]:
    """Join track ``other`` to track ``keep``; refused where both have a spine in one session.

    Parameters
    ----------
    track_ids
        Per session, the track id of each spine.
    keep
        The track that stays.
    other
        The track whose spines join it.

    Returns
    -------
    tuple
        The new track ids and a line that says what changed.

    Examples
    --------
    >>> ids, said = merge([np.array([1]), np.array([2])], 1, 2)
    >>> [i.tolist() for i in ids], said
    ([[1], [1]], 'track 2 merged into track 1 (sessions 0–1)')
    """
    ids = _copy(track_ids)
    _check_track(ids, keep)
    _check_track(ids, other)
    if keep == other:
        raise ValueError(f"choose two different tracks, not track {keep} twice")
    both = sorted(set(_sessions_of(ids, keep)) & set(_sessions_of(ids, other)))
    if both:
        raise ValueError(
            f"tracks {keep} and {other} both have a spine in session {_spans(both)}; a track has "
            "one spine per session: relink one of them first"
        )
    for s in range(len(ids)):
        ids[s][ids[s] == other] = keep
    joined = _spans(_sessions_of(ids, keep))
    return ids, f"track {other} merged into track {keep} (sessions {joined})"


def _spans(sessions: Sequence[int]) -> str:
    """``[0, 1, 2, 4]`` → ``'0–2, 4'``."""
    runs: list[list[int]] = []
    for s in sorted(sessions):
        if runs and s == runs[-1][-1] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


class EditHistory:
    """The track ids after each edit, so that edits can be undone one at a time.

    Parameters
    ----------
    track_ids
        Per session, the track id of each spine, before any edit.

    Examples
    --------
    >>> history = EditHistory([np.array([1]), np.array([2])])
    >>> history.apply(merge, 1, 2)
    'track 2 merged into track 1 (sessions 0–1)'
    >>> history.undo(), [i.tolist() for i in history.current]
    ('undone: track 2 merged into track 1 (sessions 0–1)', [[1], [2]])
    """

    def __init__(self, track_ids: Sequence[np.ndarray]) -> None:
        self._states: list[TrackIds] = [_copy(track_ids)]
        self._said: list[str] = []

    @property
    def current(self) -> TrackIds:
        """The track ids after the edits made so far."""
        return _copy(self._states[-1])

    @property
    def can_undo(self) -> bool:
        """Whether there is an edit to undo."""
        return bool(self._said)

    @property
    def edits(self) -> list[str]:
        """What each edit made so far changed, oldest first."""
        return list(self._said)

    def apply(self, edit: Callable[..., tuple[TrackIds, str]], *args: int | None) -> str:
        """Make one edit (`relink`, `split` or `merge`) on the current ids; its line.

        Parameters
        ----------
        edit
            The editing function.
        *args
            Its arguments after the track ids.

        Returns
        -------
        str
            What changed. A refused edit raises its `ValueError` and leaves the history as it was.
        """
        ids, said = edit(self._states[-1], *args)
        self._states.append(ids)
        self._said.append(said)
        return said

    def undo(self) -> str:
        """Undo the last edit; the line that says which.

        Returns
        -------
        str
            ``undone: ...``, or ``nothing to undo``.
        """
        if not self._said:
            return "nothing to undo"
        self._states.pop()
        return f"undone: {self._said.pop()}"


def spine_of_row(counts: Sequence[int], row: int) -> tuple[int, int]:
    """Session and index in it of row ``row`` of all sessions' spines, listed session by session.

    Parameters
    ----------
    counts
        The number of spines of each session.
    row
        The row in the list of every session's spines (a 4D Points layer's data).

    Returns
    -------
    tuple of int
        ``(t, index)``.

    Examples
    --------
    >>> spine_of_row([2, 3], 3)
    (1, 1)
    """
    ends = np.cumsum(counts)
    if not 0 <= row < (ends[-1] if len(ends) else 0):
        raise ValueError(f"there is no spine {row} (there are {int(ends[-1]) if len(ends) else 0})")
    t = int(np.searchsorted(ends, row, side="right"))
    return t, int(row - (ends[t - 1] if t else 0))


#: The edits by name, as a journal writes them (``{"edit": "merge", "args": [3, 7]}``).
EDITS: dict[str, Callable[..., tuple[TrackIds, str]]] = {
    "relink": relink,
    "split": split,
    "merge": merge,
}


def tracks_fingerprint(points_um: Sequence[np.ndarray], track_ids: Sequence[np.ndarray]) -> str:
    """A sha256 of tracked spines and their ids: the same tracking gives the same one.

    Parameters
    ----------
    points_um
        Per session, the spines in µm.
    track_ids
        Per session, their track ids before any edit.

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> len(tracks_fingerprint([np.zeros((1, 3))], [np.array([1])]))
    64
    """
    import hashlib
    import json

    text = json.dumps(
        [
            [np.round(np.asarray(p, float), 3).tolist() for p in points_um],
            [np.asarray(i, int).tolist() for i in track_ids],
        ]
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def replay(track_ids: Sequence[np.ndarray], lines: Sequence[dict]) -> tuple[EditHistory, int]:
    """Make the edits of a journal's lines again, in order, from the ids before any edit.

    Parameters
    ----------
    track_ids
        Per session, the track ids before the first edit.
    lines
        ``{"edit": NAME, "args": [...]}`` (a name of `EDITS`) or ``{"edit": "undo"}``.

    Returns
    -------
    tuple
        The history after them, and how many lines could not be made (skipped).

    Examples
    --------
    >>> history, skipped = replay([np.array([1]), np.array([2])], [
    ...     {"edit": "merge", "args": [1, 2]}, {"edit": "undo"}, {"edit": "merge", "args": [2, 1]}])
    >>> [i.tolist() for i in history.current], skipped
    ([[2], [2]], 0)
    """
    history = EditHistory(track_ids)
    skipped = 0
    for line in lines:
        name = line.get("edit")
        try:
            if name == "undo":
                history.undo()
            else:
                history.apply(EDITS[str(name)], *line.get("args", ()))
        except (KeyError, TypeError, ValueError, IndexError):
            skipped += 1
    return history, skipped
