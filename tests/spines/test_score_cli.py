"""``napari-spines score``: a spines CSV against an annotated session."""

import numpy as np
import tifffile

from napari_spines.cli import main
from napari_spines.io.points_csv import write_points_csv

VOXEL = (1.0, 0.12, 0.12)


def annotated_session(folder):
    """A tiny session: stack, three annotated spines and a traced dendrite along x."""
    stack = folder / "s.tif"
    tifffile.imwrite(stack, np.zeros((10, 64, 64), np.uint8))
    spines = np.array([[3.0, 30.0, 10.0], [5.0, 34.0, 30.0], [7.0, 30.0, 50.0]])
    write_points_csv(folder / "s_spines.csv", spines, VOXEL, {"is_bad": [0, 0, 0]})
    dendrite = np.column_stack([np.full(60, 5.0), np.full(60, 32.0), np.arange(2.0, 62.0)])
    write_points_csv(folder / "s_dendrites.csv", dendrite, VOXEL, {"segment_id": [1] * 60})
    return stack, spines


def test_score_counts_matches_and_skips_rejected_and_low_scores(tmp_path, capsys):
    stack, spines = annotated_session(tmp_path)
    detections = np.vstack([spines, [[5.0, 28.0, 40.0]]])  # the three heads and one wrong
    found = tmp_path / "found.csv"
    write_points_csv(
        found,
        detections,
        VOXEL,
        {"score": [0.9, 0.8, 0.3, 0.9], "status": ["auto", "accepted", "auto", "rejected"]},
    )
    assert main(["score", str(found), "--session", str(stack)]) == 0
    assert "F1 1.000" in capsys.readouterr().out  # the rejected one does not count
    assert main(["score", str(found), "--session", str(stack), "--min-score", "0.5"]) == 0
    assert "TP 2, FP 0, FN 1" in capsys.readouterr().out
    shifted = tmp_path / "shifted.csv"
    two_um_along = spines + np.array([0.0, 0.0, 2.0 / 0.12])  # along the dendrite
    write_points_csv(shifted, two_um_along, VOXEL, {"score": [1, 1, 1]})
    assert main(["score", str(shifted), "--session", str(stack)]) == 0
    assert "TP 0, FP 3, FN 3" in capsys.readouterr().out


def test_score_without_annotations_is_a_clear_error(tmp_path, capsys):
    stack, spines = annotated_session(tmp_path)
    (tmp_path / "s_dendrites.csv").unlink()
    found = tmp_path / "found.csv"
    write_points_csv(found, spines, VOXEL, {"score": [1, 1, 1]})
    assert main(["score", str(found), "--session", str(stack)]) == 2
    assert "missing s_dendrites.csv" in capsys.readouterr().err


def test_added_spines_count_whatever_the_min_score(tmp_path, capsys):
    stack, spines = annotated_session(tmp_path)
    reviewed = tmp_path / "reviewed.csv"
    write_points_csv(
        reviewed,
        spines,
        VOXEL,
        {"score": [0.9, np.nan, 0.2], "status": ["accepted", "added", "auto"]},
    )
    assert main(["score", str(reviewed), "--session", str(stack), "--min-score", "0.5"]) == 0
    assert "TP 2, FP 0, FN 1" in capsys.readouterr().out  # the added one has no score
