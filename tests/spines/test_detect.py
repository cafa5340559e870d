import numpy as np
import pytest

from napari_spines.spines.detect import find_peaks, near_points, place_between_slices
from napari_spines.spines.metrics import match_points, score_detections


def blobs(points, shape=(12, 60, 60), sigma=(1.0, 3.0, 3.0), heights=None):
    grid = np.indices(shape).astype(float)
    out = np.zeros(shape)
    for i, p in enumerate(points):
        h = 1.0 if heights is None else heights[i]
        d2 = sum(((g - c) / s) ** 2 for g, c, s in zip(grid, p, sigma, strict=True))
        out = np.maximum(out, h * np.exp(-0.5 * d2))
    return out.astype(np.float32)


def test_peaks_found_at_subvoxel_positions_strongest_first():
    truth = np.array([[4.0, 10.3, 20.0], [7.0, 40.0, 44.6]])
    coords, scores = find_peaks(blobs(truth, heights=[0.7, 0.9]), (1.0, 0.1, 0.1), 0.5)
    assert len(coords) == 2 and scores[0] > scores[1]
    np.testing.assert_allclose(coords[[1, 0]], truth, atol=0.35)


def test_min_distance_is_physical_on_anisotropic_voxels():
    # 0.8 µm apart in y (8 voxels of 0.1 µm): one peak at min distance 1 µm, two at 0.5 µm
    heat = blobs([[5, 20, 20], [5, 28, 20]], sigma=(1, 2, 2), heights=[1.0, 0.9])
    assert len(find_peaks(heat, (1.0, 0.1, 0.1), 0.3, min_distance_um=1.0)[0]) == 1
    assert len(find_peaks(heat, (1.0, 0.1, 0.1), 0.3, min_distance_um=0.5)[0]) == 2


def test_threshold_and_empty():
    heat = blobs([[5, 20, 20]], heights=[0.4])
    assert len(find_peaks(heat, (1, 1, 1), 0.5)[0]) == 0
    assert len(find_peaks(np.zeros((4, 8, 8)), (1, 1, 1), 0.1)[0]) == 0


def test_plateau_is_one_peak():
    heat = np.zeros((5, 20, 20), np.float32)
    heat[2, 5:8, 5:8] = 1.0
    coords, _ = find_peaks(heat, (1, 1, 1), 0.5, min_distance_um=1.0)
    assert len(coords) == 1
    np.testing.assert_allclose(coords[0], [2, 6, 6], atol=0.01)


def test_near_points_in_microns():
    ref = np.array([[0.0, 0.0, 0.0]])
    pts = np.array([[0.0, 30.0, 0.0], [0.0, 50.0, 0.0]])  # 3 µm and 5 µm away at 0.1 µm/voxel
    assert near_points(pts, ref, (1.0, 0.1, 0.1), 4.0).tolist() == [True, False]


def test_hungarian_beats_greedy_matching():
    # greedy would pair a0 with the closest p0 and leave a1 unmatched
    annotated = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.6]])
    predicted = np.array([[0.0, 0.0, 0.8], [0.0, 0.0, -0.7]])
    pairs = match_points(predicted, annotated, (1, 1, 1), 1.0)
    assert sorted(pairs) == [(0, 1), (1, 0)]
    score = score_detections(predicted, annotated, (1, 1, 1), 1.0)
    assert score.f1 == 1.0


def test_scores_count_matches_within_distance_only():
    annotated = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # two at the same place
    predicted = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.5]])
    score = score_detections(predicted, annotated, (1, 1, 1), 1.0)
    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 1, 1)
    assert score.precision == pytest.approx(0.5) and score.f1 == pytest.approx(0.5)


def test_heads_filling_two_slices_are_placed_between_them():
    """A neighbour slice at ≥ ratio x the peak moves z halfway; weaker ones leave z alone."""
    heat = np.zeros((5, 9, 9))
    heat[2, 4, 4], heat[3, 4, 4], heat[1, 4, 4] = 1.0, 0.6, 0.2  # strong slice above
    heat[0, 1, 1], heat[1, 1, 1] = 1.0, 0.9  # on the first slice: nothing below it
    heat[4, 7, 7], heat[3, 7, 7] = 1.0, 0.3  # on the last slice, weak neighbour
    coords = np.array([[2.1, 4.0, 4.0], [0.2, 1.0, 1.0], [3.9, 7.0, 7.0]])
    placed = place_between_slices(heat, coords, ratio=0.5)
    assert placed[:, 0].tolist() == [2.5, 0.5, 3.9]
    assert placed[:, 1:].tolist() == coords[:, 1:].tolist()
    assert place_between_slices(heat, coords, ratio=0.7)[0, 0] == 2.1  # 0.6 < 0.7
