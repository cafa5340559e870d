"""Link spines across sessions into tracks: optimal assignment on registered positions in µm.

Each session's spines are carried into the next session's stack by the registration and
matched one-to-one (Hungarian, `napari_spines.spines.metrics.match_points`) within a maximum
distance. A z difference counts ``axial_weight`` (0.5) of its µm: a two-photon microscope
resolves about half as finely along z as in y and x, and annotators place a head on one of
several slices. A spine that is missing for up to ``max_gap`` sessions and comes back keeps its
track: spines left without a partner are matched again across the gap, through the composed
registrations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # kept out of import time: the command line reads the defaults below
    from napari_spines.sessions.registration import ComposedRegistration, Registration

#: Largest (z-weighted) distance in µm between a spine and its partner in the next session.
MAX_DISTANCE_UM = 2.5
AXIAL_WEIGHT = 0.5
MAX_GAP = 1


def link_sessions(
    points_um: Sequence[np.ndarray],
    registrations: Sequence[Registration | ComposedRegistration],
    max_distance_um: float = MAX_DISTANCE_UM,
    axial_weight: float = AXIAL_WEIGHT,
    max_gap: int = MAX_GAP,
) -> list[np.ndarray]:
    """Give every spine of every session a track id; the same spine keeps the same id.

    Parameters
    ----------
    points_um
        Per session, ``(N_t, 3)`` spine positions (z, y, x) in µm in that session's stack.
    registrations
        ``registrations[t]`` maps positions of session ``t`` to session ``t + 1``.
    max_distance_um
        Largest distance, z weighted by ``axial_weight``, between linked spines.
    axial_weight
        Weight of z differences in the distance.
    max_gap
        Sessions a spine may be missing from and still keep its track.

    Returns
    -------
    list of numpy.ndarray
        Per session, the ``(N_t,)`` int track ids, numbered from 1 in order of first
        appearance (session, then row).

    Examples
    --------
    >>> from napari_spines.sessions.registration import Registration
    >>> same = Registration((0.0, 0.0, 0.0))
    >>> a = np.array([[0.0, 0, 0], [0, 10, 0]])
    >>> b = np.array([[0.0, 10.5, 0], [0, 30, 0]])
    >>> [ids.tolist() for ids in link_sessions([a, b], [same])]
    [[1, 2], [2, 3]]
    """
    from napari_spines.spines.metrics import match_points

    n = len(points_um)
    if len(registrations) != n - 1:
        raise ValueError(f"{n} sessions need {n - 1} registrations, got {len(registrations)}")
    points = [np.asarray(p, dtype=float).reshape(-1, 3) for p in points_um]
    # partner[t][i]: (session, row) that spine i of session t continues into, if any
    successor: list[dict[int, tuple[int, int]]] = [{} for _ in range(n)]
    has_predecessor: list[set[int]] = [set() for _ in range(n)]
    scale = (axial_weight, 1.0, 1.0)
    for gap in range(max_gap + 1):
        for t in range(n - 1 - gap):
            s = t + 1 + gap
            ends = [i for i in range(len(points[t])) if i not in successor[t]]
            starts = [j for j in range(len(points[s])) if j not in has_predecessor[s]]
            if not ends or not starts:
                continue
            carried = _compose(registrations[t:s]).apply(points[t][ends])
            for i, j in match_points(carried, points[s][starts], scale, max_distance_um):
                successor[t][ends[i]] = (s, starts[j])
                has_predecessor[s].add(starts[j])
    ids = [np.zeros(len(p), dtype=int) for p in points]
    next_id = 1
    for t in range(n):
        for i in range(len(points[t])):
            if ids[t][i] == 0:
                ids[t][i] = next_id
                next_id += 1
            if i in successor[t]:
                s, j = successor[t][i]
                ids[s][j] = ids[t][i]
    return ids


def _compose(steps: Sequence[Registration | ComposedRegistration]) -> ComposedRegistration:
    from napari_spines.sessions.registration import ComposedRegistration

    return ComposedRegistration(tuple(steps))


def link_score(
    true_ids: Sequence[np.ndarray], found_ids: Sequence[np.ndarray]
) -> tuple[float, float, float]:
    """Precision, recall and F1 of the links between consecutive sessions.

    A link is one spine present in sessions ``t`` and ``t + 1`` (the same track id in both);
    the rows of ``true_ids[t]`` and ``found_ids[t]`` are the same spines.

    Parameters
    ----------
    true_ids, found_ids
        Per session, the annotated and the found track id of each spine.

    Returns
    -------
    tuple of float
        Precision, recall, F1 (1.0 where there is nothing to find and nothing found).

    Examples
    --------
    >>> link_score([np.array([1, 2]), np.array([1, 2])], [np.array([1, 2]), np.array([2, 1])])
    (0.0, 0.0, 0.0)
    """
    found = true = right = 0
    for t in range(len(true_ids) - 1):
        true_links = _links(true_ids[t], true_ids[t + 1])
        found_links = _links(found_ids[t], found_ids[t + 1])
        true += len(true_links)
        found += len(found_links)
        right += len(true_links & found_links)
    precision = right / found if found else float(true == 0)
    recall = right / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _links(ids_a: np.ndarray, ids_b: np.ndarray) -> set[tuple[int, int]]:
    """Row pairs ``(i, j)`` with ``ids_a[i] == ids_b[j]``."""
    rows_b = {int(v): j for j, v in enumerate(np.asarray(ids_b))}
    return {(i, rows_b[int(v)]) for i, v in enumerate(np.asarray(ids_a)) if int(v) in rows_b}
