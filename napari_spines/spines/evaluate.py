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
    """A session's files: the stack, ``STACK_spines.csv`` and ``STACK_dendrites.csv``."""
    stack = Path(stack)
    stem = stack.with_suffix("")
    return stack, Path(f"{stem}_spines.csv"), Path(f"{stem}_dendrites.csv")


def load_session(stack: str | Path) -> AnnotatedSession:
    """Read the spine and dendrite tables that sit beside ``stack``.

    Raises
    ------
    FileNotFoundError
        If a table is missing; the message names the files an annotated session needs.
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
    """
    coords = np.asarray(coords, dtype=float)
    keep = np.ones(len(coords), bool)
    if "status" in properties:
        keep &= np.asarray(properties["status"]).astype(str) != "rejected"
    if min_score is not None and "score" in properties:
        scores = np.asarray(properties["score"], dtype=float)
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
    """
    voxel = session.voxel_size_um
    predicted = np.asarray(predicted, dtype=float).reshape(-1, 3)
    if len(session.bad_spines):
        on_bad = {p for p, _ in match_points(predicted, session.bad_spines, voxel, match_um)}
        predicted = predicted[[i not in on_bad for i in range(len(predicted))]]
    keep_pred = near_points(predicted, session.dendrites, voxel, within_um)
    keep_true = near_points(session.spines, session.dendrites, voxel, within_um)
    return score_detections(predicted[keep_pred], session.spines[keep_true], voxel, match_um)
