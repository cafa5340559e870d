"""Score detected spines against annotations: one-to-one matching within a distance in µm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class DetectionScore:
    """Counts and rates of a point-detection result."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Matched predictions / predictions."""
        n = self.true_positives + self.false_positives
        return self.true_positives / n if n else 0.0

    @property
    def recall(self) -> float:
        """Matched annotations / annotations."""
        n = self.true_positives + self.false_negatives
        return self.true_positives / n if n else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __str__(self) -> str:
        return (
            f"F1 {self.f1:.3f} (precision {self.precision:.3f}, recall {self.recall:.3f}; "
            f"TP {self.true_positives}, FP {self.false_positives}, "
            f"FN {self.false_negatives})"
        )


def match_points(
    predicted: np.ndarray,
    annotated: np.ndarray,
    voxel_size_um: Sequence[float],
    max_distance_um: float = 1.0,
) -> list[tuple[int, int]]:
    """Hungarian one-to-one matching of voxel coordinates within ``max_distance_um``.

    Parameters
    ----------
    predicted, annotated
        ``(N, 3)`` and ``(M, 3)`` voxel coordinates.
    voxel_size_um
        Voxel size in µm, so distances are physical on anisotropic grids.
    max_distance_um
        Largest distance in µm between matched points.

    Returns
    -------
    list of tuple of int
        The ``(predicted index, annotated index)`` pairs; each point is in at most one.

    Examples
    --------
    >>> predicted = np.array([[0, 0, 0], [5, 5, 5]])
    >>> match_points(predicted, np.array([[0, 0, 1]]), (1.0, 0.5, 0.5))
    [(0, 0)]
    """
    if len(predicted) == 0 or len(annotated) == 0:
        return []
    scale = np.asarray(voxel_size_um, dtype=float)
    p, a = predicted * scale, annotated * scale
    candidates = cKDTree(p).sparse_distance_matrix(cKDTree(a), max_distance_um).tocoo()
    if candidates.nnz == 0:
        return []
    # only points with a candidate partner enter the assignment; distances are recomputed,
    # since a sparse matrix drops pairs at exactly zero distance
    rows, cols = np.unique(candidates.row), np.unique(candidates.col)
    distance = np.linalg.norm(p[rows][:, None] - a[cols][None], axis=-1)
    cost = np.where(distance <= max_distance_um, distance, 1e6)
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] <= max_distance_um
    return list(zip(rows[r[ok]].tolist(), cols[c[ok]].tolist(), strict=True))


def score_detections(
    predicted: np.ndarray,
    annotated: np.ndarray,
    voxel_size_um: Sequence[float],
    max_distance_um: float = 1.0,
) -> DetectionScore:
    """Precision, recall and F1 of one-to-one matching within ``max_distance_um``.

    Parameters
    ----------
    predicted, annotated, voxel_size_um, max_distance_um
        See `match_points`.

    Returns
    -------
    DetectionScore
        Matched predictions are true positives, the other predictions false positives and the
        other annotations false negatives.

    Examples
    --------
    >>> predicted = np.array([[0, 0, 0], [5, 5, 5]])
    >>> print(score_detections(predicted, np.array([[0, 0, 1]]), (1.0, 0.5, 0.5)))
    F1 0.667 (precision 0.500, recall 1.000; TP 1, FP 1, FN 0)
    """
    pairs = match_points(predicted, annotated, voxel_size_um, max_distance_um)
    tp = len(pairs)
    return DetectionScore(tp, len(predicted) - tp, len(annotated) - tp)
