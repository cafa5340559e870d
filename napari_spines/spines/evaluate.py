"""Score spine detections on an annotated session: a stack with spine and dendrite tables.

The tables sit beside the stack: ``NAME.tif``, ``NAME_spines.csv`` (``z, y, x`` and optionally
``is_bad``) and ``NAME_dendrites.csv`` (traced centre lines, ``segment_id, z, y, x``). Spines were
annotated only along the traced dendrites, so detections and annotations are both restricted to
within `SCORED_WITHIN_UM` of a traced centre line before matching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.io.points_csv import read_points_csv
from napari_spines.spines.detect import near_points
from napari_spines.spines.metrics import DetectionScore, match_points, score_detections

SCORED_WITHIN_UM = 4.0
MATCH_WITHIN_UM = 1.0


@dataclass(frozen=True)
class AnnotatedSession:
    """One imaging session: stack path, annotated spines and traced dendrites (voxels)."""

    stack: Path
    spines: np.ndarray
    bad_spines: np.ndarray
    dendrites: np.ndarray
    voxel_size_um: tuple[float, float, float]


def session_files(stack: str | Path) -> tuple[Path, Path, Path]:
    """A session's files: the stack, ``STACK_spines.csv`` and ``STACK_dendrites.csv``.

    Parameters
    ----------
    stack
        Path of the stack, ``STACK.tif``.

    Returns
    -------
    tuple of Path
        The stack and its spine and dendrite tables beside it (which may not exist).
    """
    stack = Path(stack)
    stem = stack.with_suffix("")
    return stack, Path(f"{stem}_spines.csv"), Path(f"{stem}_dendrites.csv")


def annotated_sessions(folder: str | Path) -> list[str]:
    """Names of the annotated sessions in ``folder``: ``NAME.tif`` with both tables beside it.

    Parameters
    ----------
    folder
        A data folder as ``train spines --data`` takes.

    Returns
    -------
    list of str
        The names, sorted; empty when the folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        stack.stem
        for stack in folder.glob("*.tif")
        if all(path.is_file() for path in session_files(stack)[1:])
    )


def load_session(stack: str | Path) -> AnnotatedSession:
    """Read the spine and dendrite tables that sit beside ``stack``.

    Parameters
    ----------
    stack
        Path of the stack, ``STACK.tif``; the stack itself is not read.

    Returns
    -------
    AnnotatedSession
        Spines split by ``is_bad``, dendrite points, and the voxel size from the spine table.

    Raises
    ------
    FileNotFoundError
        If a table is missing; the message names the files an annotated session needs.
    VolumeReadError
        A table that cannot be read (a ValueError).
    """
    stack, spines_csv, dendrites_csv = session_files(stack)
    missing = [p.name for p in (spines_csv, dendrites_csv) if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{stack.name}: an annotated session is STACK.tif with STACK_spines.csv and "
            f"STACK_dendrites.csv beside it; missing {', '.join(missing)}"
        )
    coords, voxel, properties = read_points_csv(spines_csv)
    bad = np.asarray(properties.get("is_bad", np.zeros(len(coords))), dtype=float) > 0
    dendrites, _, _ = read_points_csv(dendrites_csv)
    return AnnotatedSession(stack, coords[~bad], coords[bad], dendrites, tuple(voxel))  # type: ignore[arg-type]


def counted_spines(
    coords: np.ndarray, properties: Mapping[str, Any], min_score: float | None = None
) -> np.ndarray:
    """The rows of a spine table that count as detections when it is scored.

    A spine counts unless its ``status`` is ``rejected`` or its ``score`` is below
    ``min_score``; spines a person added have no score (NaN) and always count.

    Parameters
    ----------
    coords
        ``(N, D)`` voxel coordinates.
    properties
        Per-spine columns; ``status`` and ``score`` are used where present.
    min_score
        Lowest score that counts; None: any score.

    Returns
    -------
    numpy.ndarray
        The counted rows of ``coords``, as float.

    Examples
    --------
    >>> coords = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    >>> table = {"status": ["auto", "rejected", "added"], "score": [0.9, 0.8, np.nan]}
    >>> counted_spines(coords, table, min_score=0.5).tolist()
    [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]
    """
    coords = np.asarray(coords, dtype=float)
    keep = np.ones(len(coords), bool)
    if "status" in properties:
        keep &= np.asarray(properties["status"]).astype(str) != "rejected"
    if min_score is not None and "score" in properties:
        try:
            scores = np.asarray(properties["score"], dtype=float)
        except ValueError:
            raise ValueError("the score column holds values that are not numbers") from None
        keep &= np.isnan(scores) | (scores >= min_score)
    return coords[keep]


def score_on_session(
    predicted: np.ndarray,
    session: AnnotatedSession,
    within_um: float = SCORED_WITHIN_UM,
    match_um: float = MATCH_WITHIN_UM,
) -> DetectionScore:
    """Score voxel-coordinate detections against a session's annotations near traced dendrites.

    Detections that match a spine flagged ``is_bad`` are neither right nor wrong: dropped.

    Parameters
    ----------
    predicted
        ``(N, 3)`` voxel coordinates in the session's stack.
    session
        The annotations (`load_session`).
    within_um
        Only detections and annotations within this distance (µm) of a traced dendrite count.
    match_um
        Largest distance (µm) of a detection from the annotation it matches.

    Returns
    -------
    DetectionScore
    """
    voxel = session.voxel_size_um
    predicted = np.asarray(predicted, dtype=float).reshape(-1, 3)
    if len(session.bad_spines):
        on_bad = {p for p, _ in match_points(predicted, session.bad_spines, voxel, match_um)}
        predicted = predicted[[i not in on_bad for i in range(len(predicted))]]
    keep_pred = near_points(predicted, session.dendrites, voxel, within_um)
    keep_true = near_points(session.spines, session.dendrites, voxel, within_um)
    return score_detections(predicted[keep_pred], session.spines[keep_true], voxel, match_um)


def score_reviewed(
    coords: np.ndarray,
    statuses: np.ndarray,
    voxel_size_um: tuple[float, ...],
    stack: str | Path,
) -> tuple[int, DetectionScore]:
    """Score reviewed spines (rejected ones left out) against an annotated stack.

    Parameters
    ----------
    coords
        ``(N, 3)`` voxel coordinates of the spines shown.
    statuses
        Review status of each (see `napari_spines.spines.review.STATUSES`).
    voxel_size_um
        Voxel size of the spines' stack; it must be the annotated stack's.
    stack
        ``STACK.tif`` with ``STACK_spines.csv`` and ``STACK_dendrites.csv`` beside it.

    Returns
    -------
    tuple
        The number of spines scored, and their `DetectionScore`.

    Raises
    ------
    ValueError
        With a message for the user: a time series, no stack, missing tables, another voxel
        size (FileNotFoundError, a ValueError here, for missing files).
    """
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError("Scoring works on one Z × Y × X stack, not on a time series.")
    stack = Path(stack)
    if not stack.is_file():
        raise ValueError(
            "Choose an annotated stack: STACK.tif with STACK_spines.csv and "
            "STACK_dendrites.csv beside it."
        )
    try:
        session = load_session(stack)
    except OSError as exc:
        raise ValueError(str(exc)) from exc
    voxel = np.asarray(voxel_size_um, dtype=float)
    if not np.allclose(voxel, session.voxel_size_um, rtol=0.01):
        raise ValueError(
            f"The spines have voxel size {tuple(voxel)} µm but {stack.name} is "
            f"annotated at {session.voxel_size_um} µm: score the spines of that stack."
        )
    detections = counted_spines(coords, {"status": statuses})
    return len(detections), score_on_session(detections, session)
