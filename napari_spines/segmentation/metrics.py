"""Segmentation scores against ground truth: adapted Rand error and VOI split / merge."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from napari_spines.errors import first_line

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentationScore:
    """Adapted Rand error (with its precision and recall) and VOI split / merge in bits."""

    adapted_rand_error: float
    rand_precision: float
    rand_recall: float
    voi_split: float
    voi_merge: float

    def as_dict(self) -> dict[str, float]:
        """Plain floats, rounded to 4 decimals, for tables and model cards."""
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def score_segmentation(truth: np.ndarray, segmentation: np.ndarray) -> SegmentationScore:
    """Score ``segmentation`` against ``truth``; voxels where the truth is 0 are ignored.

    The adapted Rand error is scikit-image's (``1 − F-score`` of the Rand index pairs); VOI split
    is the conditional entropy of the segmentation given the truth (false splits), VOI merge that
    of the truth given the segmentation (false merges).

    Parameters
    ----------
    truth
        Integer ground-truth labels; 0 is unlabelled.
    segmentation
        Integer labels of the same shape.

    Returns
    -------
    SegmentationScore

    Raises
    ------
    ValueError
        Shapes that differ, labels that are not integers, or a ground truth that is all 0.
    """
    from skimage.metrics import adapted_rand_error, variation_of_information

    truth, segmentation = np.asarray(truth), np.asarray(segmentation)
    if truth.shape != segmentation.shape:
        raise ValueError(
            f"ground truth has shape {truth.shape}, the segmentation "
            f"{segmentation.shape}: they must match"
        )
    if not (
        np.issubdtype(truth.dtype, np.integer) and np.issubdtype(segmentation.dtype, np.integer)
    ):
        raise ValueError("ground truth and segmentation must be integer label images")
    if not truth.any():
        raise ValueError("the ground truth has no labelled voxel (all 0)")
    error, precision, recall = adapted_rand_error(truth, segmentation, ignore_labels=(0,))
    split, merge = variation_of_information(truth, segmentation, ignore_labels=(0,))
    return SegmentationScore(
        float(error), float(precision), float(recall), float(split), float(merge)
    )


def score_per_section(truth: np.ndarray, segmentation: np.ndarray) -> list[SegmentationScore]:
    """`score_segmentation` of every z-section on its own (for 2D ground truth such as ISBI).

    Parameters
    ----------
    truth, segmentation
        ``(Z, Y, X)`` integer labels of the same shape; 0 in ``truth`` is unlabelled.

    Returns
    -------
    list of SegmentationScore
        One per section, in order; sections whose truth is all 0 are left out.

    Raises
    ------
    ValueError
        As `score_segmentation`, or a different number of sections.
    """
    return [score_segmentation(t, s) for t, s in zip(truth, segmentation, strict=True) if np.any(t)]


def mean_score(scores: list[SegmentationScore]) -> SegmentationScore:
    """The mean of every field over a list of scores.

    Parameters
    ----------
    scores
        One or more scores, e.g. from `score_per_section`.

    Returns
    -------
    SegmentationScore
    """
    fields = np.array([list(asdict(s).values()) for s in scores], float).mean(axis=0)
    return SegmentationScore(*map(float, fields))


def format_score(score: SegmentationScore) -> str:
    """Two lines: adapted Rand error with precision and recall; VOI split and merge.

    Parameters
    ----------
    score
        The score to show, to three decimals.

    Returns
    -------
    str
    """
    return (
        f"adapted Rand error {score.adapted_rand_error:.3f} "
        f"(precision {score.rand_precision:.3f}, recall {score.rand_recall:.3f})\n"
        f"VOI split {score.voi_split:.3f}, merge {score.voi_merge:.3f} bits"
    )


def score_or_message(truth: Any, labels: np.ndarray) -> SegmentationScore | str:
    """`score_segmentation`, or its error as one line for the user (safe in a worker).

    Parameters
    ----------
    truth
        Ground-truth labels (any array-like), 0 ignored.
    labels
        The segmentation, of the same shape.

    Returns
    -------
    SegmentationScore or str
    """
    try:
        return score_segmentation(np.asarray(truth), labels)
    except Exception as exc:  # a message in the widget, never a traceback
        logger.exception("scoring the segmentation failed")
        return first_line(exc)
