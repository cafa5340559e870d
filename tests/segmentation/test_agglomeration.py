"""Affinities from labels, fragments, agglomeration and its instant relabelling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_spines.segmentation.affinities import boundary_map, labels_to_affinities
from napari_spines.segmentation.agglomeration import agglomerate, watershed_fragments
from napari_spines.segmentation.metrics import score_per_section, score_segmentation
from tests.models.tiny import cells_stack


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return cells_stack((8, 64, 64), n_cells=15, seed=3)[1]


def test_affinities_of_labels_follow_the_waterz_convention() -> None:
    labels = np.array([[[1, 1, 2], [1, 0, 2]], [[1, 1, 2], [3, 3, 2]]])
    aff = labels_to_affinities(labels)
    assert aff.shape == (3, 2, 2, 3) and aff.dtype == np.float32
    # x: (0,0,1) joins (0,0,0) [1=1]; (0,0,2) is 2 next to 1
    assert aff[2, 0, 0, 1] == 1 and aff[2, 0, 0, 2] == 0
    # y: (1,0,1)=0 is boundary, its affinity is 0 even to itself
    assert aff[1, 0, 1, 0] == 1 and aff[1, 0, 1, 1] == 0
    # z: (1,1,0)=3 under (0,1,0)=1 → 0; (1,0,0)=1 under 1 → 1
    assert aff[0, 1, 0, 0] == 1 and aff[0, 1, 1, 0] == 0
    # first plane of each axis has no previous neighbour
    assert not aff[0, 0].any() and not aff[1, :, 0].any() and not aff[2, :, :, 0].any()


def test_labels_to_affinities_refuses_2d() -> None:
    with pytest.raises(ValueError, match="3D"):
        labels_to_affinities(np.zeros((4, 4), int))


def test_boundary_map_is_high_on_walls_and_low_inside(truth: np.ndarray) -> None:
    boundaries = boundary_map(labels_to_affinities(truth))
    assert boundaries[truth == 0].mean() == pytest.approx(1.0)
    inside = truth > 0
    assert np.median(boundaries[inside]) == 0.0


@pytest.mark.parametrize(("in_plane", "quantile"), [(False, None), (False, 75), (True, 75)])
def test_agglomerating_ground_truth_affinities_gives_back_the_ground_truth(
    truth: np.ndarray, in_plane: bool, quantile: int | None
) -> None:
    affinities = labels_to_affinities(truth)
    fragments = watershed_fragments(affinities, in_plane=in_plane)
    assert fragments.min() >= 1  # every voxel in a fragment
    result = agglomerate(affinities, fragments, quantile=quantile)
    labels = result.labels(0.5)
    assert score_segmentation(truth, labels).adapted_rand_error < 0.01
    # fragments are an over-segmentation: no fragment crosses a ground-truth boundary
    assert score_segmentation(truth, fragments.astype(np.int64)).voi_merge < 0.01


def test_noisy_affinities_still_agglomerate_to_the_ground_truth(truth: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    clean = labels_to_affinities(truth)
    noisy = np.clip(0.8 * clean + 0.1 + rng.normal(0, 0.08, clean.shape), 0, 1)
    result = agglomerate(noisy, watershed_fragments(noisy, in_plane=False))
    assert score_segmentation(truth, result.labels(0.5)).adapted_rand_error < 0.01


def test_threshold_relabels_from_the_merge_history_without_recomputing(truth: np.ndarray) -> None:
    affinities = labels_to_affinities(truth)
    result = agglomerate(affinities, watershed_fragments(affinities, in_plane=True))
    counts = [int(result.labels(t).max()) for t in (0.0, 0.3, 0.5, 0.9, 1.0)]
    assert counts[0] == int(result.fragments.max())  # nothing merged
    assert counts == sorted(counts, reverse=True)
    assert counts[-1] < counts[2]  # 1.0 merges across walls too
    # merge_count stops at the first score at or above the threshold
    scores = np.array([0.1, 0.4, 0.3, 0.6])
    result.scores = scores
    assert result.merge_count(0.35) == 1 and result.merge_count(0.45) == 3


def test_labels_are_numbered_one_to_n(truth: np.ndarray) -> None:
    affinities = labels_to_affinities(truth)
    labels = agglomerate(affinities, watershed_fragments(affinities, False)).labels(0.5)
    ids = np.unique(labels)
    assert ids[0] == 1 and np.array_equal(ids, np.arange(1, len(ids) + 1))


def test_confidence_is_lower_for_segments_built_by_weak_merges(truth: np.ndarray) -> None:
    affinities = labels_to_affinities(truth)
    result = agglomerate(affinities, watershed_fragments(affinities, False))
    strong = result.confidence(0.5)
    assert max(strong.values()) == 1.0  # unmerged fragments are certain
    merged_more = result.confidence(1.0)  # merges across the walls too
    assert min(merged_more.values()) < 0.1 < min(strong.values())


def test_quantile_scores_resist_boundary_voxels_inside_fragments(truth: np.ndarray) -> None:
    # per-section fragments swallow wall voxels, whose zero affinities drag the mean of the
    # z-edges between two pieces of one cell down; the 75 % quantile ignores them
    affinities = labels_to_affinities(truth)
    fragments = watershed_fragments(affinities, in_plane=True)
    mean = agglomerate(affinities, fragments).labels(0.3)
    quantile = agglomerate(affinities, fragments, quantile=75).labels(0.3)
    assert (
        score_segmentation(truth, quantile).adapted_rand_error
        < score_segmentation(truth, mean).adapted_rand_error
    )
    with pytest.raises(ValueError, match="quantile"):
        agglomerate(affinities, fragments, quantile=12)


def test_2d_mode_never_merges_across_sections(truth: np.ndarray) -> None:
    from napari_spines.segmentation.pipeline import segment_affinities

    affinities = labels_to_affinities(truth)
    sections = segment_affinities(affinities, "2d").labels(0.99)
    ids = [set(np.unique(s)) for s in sections]
    assert all(a.isdisjoint(b) for a, b in itertools.pairwise(ids))
    linked = segment_affinities(affinities, "2d+z", quantile=75).labels(0.5)
    assert score_segmentation(truth, linked).adapted_rand_error < 0.01  # z links cells again
    with pytest.raises(ValueError, match="mode"):
        segment_affinities(affinities, "2.5d")


def test_default_mode_follows_the_voxel_shape() -> None:
    from napari_spines.segmentation.pipeline import default_mode

    assert default_mode((0.01, 0.01, 0.01)) == "3d"
    assert default_mode((0.04, 0.008, 0.008)) == "2d+z"
    assert default_mode((0.05, 0.004, 0.004)) == "2d"


def test_agglomeration_refuses_non_affinities() -> None:
    with pytest.raises(ValueError, match=r"\(3, Z, Y, X\)"):
        watershed_fragments(np.zeros((2, 4, 8, 8), np.float32))


def test_scores_refuse_mismatched_shapes_and_empty_truth() -> None:
    with pytest.raises(ValueError, match="shape"):
        score_segmentation(np.ones((2, 4, 4), int), np.ones((2, 4, 5), int))
    with pytest.raises(ValueError, match="no labelled"):
        score_segmentation(np.zeros((2, 4, 4), int), np.ones((2, 4, 4), int))
    with pytest.raises(ValueError, match="integer"):
        score_segmentation(np.ones((2, 4, 4)), np.ones((2, 4, 4), int))


def test_per_section_scores_each_section_on_its_own() -> None:
    truth = np.array([[[1, 1], [2, 2]], [[1, 1], [2, 2]]])
    # the second section merges both cells: only its score suffers
    predicted = np.array([[[5, 5], [6, 6]], [[7, 7], [7, 7]]])
    first, second = score_per_section(truth, predicted)
    assert first.adapted_rand_error == 0.0
    assert second.adapted_rand_error > 0.2 and second.voi_merge > 0
