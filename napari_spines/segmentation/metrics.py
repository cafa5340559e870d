"""Segmentation scores against ground truth: adapted Rand error and VOI split / merge."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    """`score_segmentation` of every z-section on its own (for 2D ground truth such as ISBI)."""
    return [score_segmentation(t, s) for t, s in zip(truth, segmentation, strict=True) if np.any(t)]


def mean_score(scores: list[SegmentationScore]) -> SegmentationScore:
    """The mean of every field over a list of scores."""
    fields = np.array([list(asdict(s).values()) for s in scores], float).mean(axis=0)
    return SegmentationScore(*map(float, fields))
