"""Propose a session's spines from the previous session's corrected ones.

Each previous spine is carried through the registration into the new stack and looks for a
head there: the model's peaks are found at a lowered threshold (``carry_ratio`` of the
model's), because a spine that was there last time probably still is, and matched one-to-one
to the carried spines within ``match_um`` (z counting half, as in linking). A matched peak
becomes a ``carried`` spine with the previous spine's ``track_id``; a carried spine with no
peak is dropped as lost. Peaks far from every carried spine become ``new`` spines only above a
raised threshold (``new_ratio`` of the model's): without a previous spine there, the evidence
must be stronger. Ratios chosen on rr30a tp0 → tp1 and reported on tp1 → tp2 in
docs/sessions.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_spines.sessions.linking import AXIAL_WEIGHT, MAX_DISTANCE_UM
from napari_spines.sessions.registration import Registration
from napari_spines.spines.metrics import match_points

#: Threshold for a carried spine's head, as a fraction of the model's threshold.
CARRY_RATIO = 0.5
#: Threshold for a new spine, as a multiple of the model's threshold.
NEW_RATIO = 1.25


@dataclass(frozen=True)
class CarriedSpines:
    """Proposed spines of the new session.

    ``coords_um`` ``(N, 3)`` in µm in the new stack, with ``scores``, ``statuses``
    (``carried`` or ``new``), ``track_ids`` and ``doubt`` (higher: review first). ``lost``
    are the track ids of previous spines with no head found.
    """

    coords_um: np.ndarray
    scores: np.ndarray
    statuses: np.ndarray
    track_ids: np.ndarray
    doubt: np.ndarray
    lost: np.ndarray

    def __len__(self) -> int:
        return len(self.coords_um)

    @property
    def n_carried(self) -> int:
        """How many spines were carried from the previous session (the rest are new)."""
        return int((np.asarray(self.statuses) == "carried").sum())

    def summary(self, session: str) -> str:
        """One line for the reviewer: spines proposed, carried and new, previous ones not found.

        Parameters
        ----------
        session
            The new session's name.

        Returns
        -------
        str
        """
        carried, lost = self.n_carried, len(self.lost)
        return (
            f"{len(self)} spines proposed for {session} ({carried} carried, "
            f"{len(self) - carried} new; most doubtful first); {lost} previous "
            f"spine{'s' * (lost != 1)} not found."
        )

    def most_doubtful_first(self) -> CarriedSpines:
        """The same spines in review order: the most doubtful first (ties keep their order).

        Returns
        -------
        CarriedSpines
            ``lost`` unchanged.
        """
        order = np.argsort(-np.asarray(self.doubt, float), kind="stable")
        return CarriedSpines(
            np.asarray(self.coords_um, float).reshape(-1, 3)[order],
            np.asarray(self.scores, float)[order],
            np.asarray(self.statuses, dtype=object)[order],
            np.asarray(self.track_ids, int)[order],
            np.asarray(self.doubt, float)[order],
            self.lost,
        )


def carry_spines(
    previous_um: np.ndarray,
    previous_ids: np.ndarray,
    registration: Registration,
    peaks_um: np.ndarray,
    peak_scores: np.ndarray,
    threshold: float,
    carry_ratio: float = CARRY_RATIO,
    new_ratio: float = NEW_RATIO,
    match_um: float = MAX_DISTANCE_UM,
) -> CarriedSpines:
    """Carry ``previous_um`` into the new stack and keep the peaks that explain them.

    Parameters
    ----------
    previous_um, previous_ids
        The previous session's corrected spines (µm, its own stack) and their track ids.
    registration
        Maps positions in the previous stack to the new one.
    peaks_um, peak_scores
        The model's peaks in the new stack (µm) at ``carry_ratio * threshold`` or lower.
    threshold
        The model's detection threshold.
    carry_ratio, new_ratio
        Thresholds for carried and for new spines, relative to ``threshold``.
    match_um
        Largest z-weighted distance between a carried spine and its peak.

    Returns
    -------
    CarriedSpines

    Examples
    --------
    >>> same = Registration((0.0, 0.0, 0.0))
    >>> peaks = np.array([[0.0, 0.5, 0], [5, 5, 5], [9, 9, 9]])
    >>> found = carry_spines(np.zeros((1, 3)), np.array([7]), same, peaks,
    ...                      np.array([0.25, 0.9, 0.45]), threshold=0.4)
    >>> found.statuses.tolist(), found.track_ids.tolist()
    (['carried', 'new'], [7, 8])
    """
    previous_um = np.asarray(previous_um, dtype=float).reshape(-1, 3)
    previous_ids = np.asarray(previous_ids, dtype=int)
    peaks_um = np.asarray(peaks_um, dtype=float).reshape(-1, 3)
    peak_scores = np.asarray(peak_scores, dtype=float)
    low, high = carry_ratio * threshold, new_ratio * threshold
    usable = np.flatnonzero(peak_scores >= low)
    carried = registration.apply(previous_um)
    pairs = match_points(carried, peaks_um[usable], (AXIAL_WEIGHT, 1.0, 1.0), match_um)
    kept = np.array([i for i, _ in pairs], dtype=int)
    matched = usable[[j for _, j in pairs]] if pairs else np.zeros(0, int)
    new = np.setdiff1d(np.flatnonzero(peak_scores >= high), matched)
    first_new_id = int(previous_ids.max(initial=0)) + 1
    rows = np.concatenate([matched, new]).astype(int)
    scores = peak_scores[rows]
    # carried spines are doubtful when their head is weak, new ones when near their threshold
    doubt = np.concatenate(
        [1.0 - scores[: len(matched)] / threshold, 1.0 - (scores[len(matched) :] - high)]
    )
    return CarriedSpines(
        coords_um=peaks_um[rows],
        scores=scores,
        statuses=np.array(["carried"] * len(matched) + ["new"] * len(new), dtype=object),
        track_ids=np.concatenate(
            [previous_ids[kept], np.arange(first_new_id, first_new_id + len(new))]
        ).astype(int),
        doubt=doubt,
        lost=np.setdiff1d(previous_ids, previous_ids[kept]),
    )
