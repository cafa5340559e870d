"""Review detected spines one by one, most uncertain first: statuses, counts and undo.

Statuses: ``auto`` (as detected), ``accepted``, ``rejected`` (kept as a negative example),
``added`` (placed by hand) and ``moved`` (dragged to a better position). Spines proposed from
the previous session start ``carried`` or ``new`` (`napari_spines.sessions.carry`); like
``auto``, those are not reviewed yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STATUSES = ("auto", "accepted", "rejected", "added", "moved")
#: Statuses of spines no one has decided on yet.
UNREVIEWED = ("auto", "carried", "new")
#: Display colour (RGBA) of each status: rejected spines stay, dimmed.
STATUS_COLOURS = {
    "auto": (1.0, 0.85, 0.0, 1.0),
    "accepted": (0.2, 0.9, 0.3, 1.0),
    "rejected": (0.6, 0.6, 0.6, 0.35),
    "added": (0.2, 0.7, 1.0, 1.0),
    "moved": (0.9, 0.4, 1.0, 1.0),
    "carried": (1.0, 0.85, 0.0, 1.0),
    "new": (0.0, 1.0, 1.0, 1.0),
}


class ReviewQueue:
    """Walk spines in order of uncertainty and record what the reviewer decides.

    Parameters
    ----------
    scores
        Score of each spine (NaN for spines added by hand).
    statuses
        Status of each spine; this array is updated in place.
    threshold
        The display threshold: spines scoring below it are not reviewed, and the closer a score
        is to it, the earlier the spine comes.
    doubt
        Instead of the threshold: how doubtful each spine is; every spine is reviewed, the most
        doubtful first (proposals from the previous session).
    """

    def __init__(
        self,
        scores: np.ndarray,
        statuses: np.ndarray,
        threshold: float,
        doubt: np.ndarray | None = None,
    ) -> None:
        self.scores = np.asarray(scores, dtype=float)
        self.doubt = None if doubt is None else np.asarray(doubt, dtype=float)
        self.statuses = statuses
        self._undo: list[tuple[int, str]] = []
        self.cursor = -1
        self.order = np.zeros(0, int)
        self.set_threshold(threshold)

    def set_threshold(self, threshold: float) -> None:
        """Re-sort: detected spines at or above ``threshold``, closest to it first.

        Parameters
        ----------
        threshold
            The new display threshold; the review starts again before the first spine.
        """
        self.threshold = float(threshold)
        if self.doubt is not None:
            self.order = np.argsort(-np.nan_to_num(self.doubt, nan=-np.inf), kind="stable")
            self.cursor = -1
            return
        detected = np.flatnonzero(np.nan_to_num(self.scores, nan=-np.inf) >= threshold)
        uncertainty = np.abs(self.scores[detected] - threshold)
        self.order = detected[np.argsort(uncertainty, kind="stable")]
        self.cursor = -1

    def grow(
        self, scores: np.ndarray, statuses: np.ndarray, doubt: np.ndarray | None = None
    ) -> None:
        """Follow the layer when spines are added or deleted (the order is rebuilt).

        Parameters
        ----------
        scores, statuses
            The layer's new per-spine scores and statuses (``statuses`` is updated in place
            from now on); the spine under review stays current if it is still queued.
        doubt
            The new per-spine doubt, for a queue ordered by doubt.
        """
        self.scores = np.asarray(scores, dtype=float)
        if self.doubt is not None:
            self.doubt = np.asarray(doubt, dtype=float)
        self.statuses = statuses
        self._undo = [(i, s) for i, s in self._undo if i < len(statuses)]
        current = self.current
        self.set_threshold(self.threshold)
        if current is not None and current in self.order:
            self.cursor = int(np.flatnonzero(self.order == current)[0])

    @property
    def current(self) -> int | None:
        """Index of the spine under review, or None before the first."""
        return int(self.order[self.cursor]) if 0 <= self.cursor < len(self.order) else None

    def next(self) -> int | None:
        """Move to the next spine (stays on the last); return its index."""
        if len(self.order):
            self.cursor = min(self.cursor + 1, len(self.order) - 1)
        return self.current

    def previous(self) -> int | None:
        """Move to the previous spine (stays on the first); return its index."""
        if len(self.order):
            self.cursor = max(self.cursor - 1, 0)
        return self.current

    def set_status(self, index: int, status: str) -> None:
        """Record a decision on spine ``index`` (undoable).

        Parameters
        ----------
        index
            Index of the spine in the layer.
        status
            One of `STATUSES`.

        Raises
        ------
        ValueError
            An unknown status.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        self._undo.append((index, str(self.statuses[index])))
        self.statuses[index] = status

    def decide(self, status: str) -> int | None:
        """Set the status of the current spine and move on; return the new current index.

        Before the first spine, the decision is on the first.

        Parameters
        ----------
        status
            One of `STATUSES`.

        Returns
        -------
        int or None
            The index of the spine now under review (the last stays current); None when the
            queue is empty.

        Raises
        ------
        ValueError
            An unknown status.
        """
        if self.current is None:
            self.next()
        if self.current is None:
            return None
        self.set_status(self.current, status)
        return self.next()

    def undo(self) -> int | None:
        """Revert the last decision; return the index of the spine it changed."""
        if not self._undo:
            return None
        index, status = self._undo.pop()
        self.statuses[index] = status
        if index in self.order:
            self.cursor = int(np.flatnonzero(self.order == index)[0])
        return index

    @property
    def shown(self) -> np.ndarray:
        """Which spines the layer shows (bool per spine): at or above the threshold, or by hand."""
        if self.doubt is not None:
            return np.ones(len(self.statuses), bool)
        return np.isnan(self.scores) | (self.scores >= self.threshold)

    @property
    def kept(self) -> np.ndarray:
        """Which spines an export keeps (bool per spine): the shown ones and every reviewed one."""
        return self.shown | self.reviewed

    def summary(self) -> str:
        """The one count of the review: spines shown, how many are reviewed, how many remain.

        Spines with a status not in `UNREVIEWED` (spines placed by hand too) count as reviewed.

        Returns
        -------
        str
            For example ``"271 spines: 12 reviewed, 259 to review"``.
        """
        shown = self.shown
        total = int(shown.sum())
        reviewed = int(self.reviewed[shown].sum())
        return f"{total} spines: {reviewed} reviewed, {total - reviewed} to review"

    def counts(self) -> tuple[int, int]:
        """(reviewed, total) among the spines in the queue."""
        return int(self.reviewed[self.order].sum()), len(self.order)

    @property
    def reviewed(self) -> np.ndarray:
        """Which spines someone decided on (bool per spine): a status not in `UNREVIEWED`."""
        return ~np.isin(np.asarray(self.statuses, dtype=object).astype(str), UNREVIEWED)


def status_colours(statuses: np.ndarray) -> np.ndarray:
    """RGBA colour of every spine from its status.

    Parameters
    ----------
    statuses
        Status of each spine; unknown ones get the colour of ``auto``.

    Returns
    -------
    numpy.ndarray
        ``(N, 4)`` float RGBA in [0, 1] (`STATUS_COLOURS`).
    """
    return np.array(
        [STATUS_COLOURS.get(str(s), STATUS_COLOURS["auto"]) for s in statuses], dtype=float
    ).reshape(-1, 4)


def follow_edits(
    statuses: np.ndarray,
    ids: np.ndarray,
    scores: np.ndarray,
    before: np.ndarray | None,
    after: np.ndarray,
    added: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statuses, ids and scores after a person moved or added spines in the layer.

    Parameters
    ----------
    statuses, ids, scores
        Per spine, after the edit (added spines come with the layer's defaults).
    before, after
        Positions before and after the edit; spines whose position changed become ``moved``
        (added ones stay ``added``). ``before`` is None when no spine was moved (an addition
        or a deletion).
    added
        Indices of spines just added: each gets the next free id, the status ``added`` and no
        score (napari gives a new point the features of the point selected at the time).

    Returns
    -------
    tuple of numpy.ndarray
        New ``statuses``, ``ids`` and ``scores`` (copies).

    Examples
    --------
    >>> s, i, _ = follow_edits(np.array(["auto", "auto"], object), np.array([1, 2]),
    ...                        np.array([0.9, 0.8]), np.zeros((2, 3)),
    ...                        np.array([[0, 0, 0], [0, 1.0, 0]]))
    >>> list(s), i.tolist()
    (['auto', 'moved'], [1, 2])
    """
    statuses = np.array(statuses, dtype=object)
    ids = np.array(ids).copy()
    scores = np.array(scores, dtype=float)
    if before is not None and len(before) == len(after):
        moved = np.any(np.abs(np.asarray(after, float) - before) > 1e-6, axis=1)
        statuses[moved & (statuses != "added")] = "moved"
    for index in added:
        ids[index % len(ids)] = int(np.nanmax(ids)) + 1
        statuses[index % len(ids)] = "added"  # not the status of the spine selected then
        scores[index % len(ids)] = np.nan
    return statuses, ids, scores
