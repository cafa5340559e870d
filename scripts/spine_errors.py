"""Where a spine model's errors are on the annotated rr30a sessions (figures in docs/spines.md).

Run::

    python scripts/spine_errors.py ../shared/data/two_photon/rr30a [--model spine-2p]

Prints, for each session:

- how often the annotated slice is the brightest of the seven around each annotated head;
- matched, wrong and missed spines at the model's threshold, and how many of the wrong ones
  sit beside a missed spine on another slice;
- recall within 1 and 2 µm at a low threshold;
- best F1 over thresholds when z is ignored (matching in y and x only): no placement of the
  heads in z can score higher;
- best F1 over thresholds for several `between_slices_ratio` values (off = parabola only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from napari_spines.io import read_volumes
from napari_spines.models import find_model
from napari_spines.spines.detect import near_points
from napari_spines.spines.detection import predict_heatmaps
from napari_spines.spines.evaluate import (
    SCORED_WITHIN_UM,
    AnnotatedSession,
    load_session,
    score_on_session,
)
from napari_spines.spines.metrics import match_points, score_detections

RATIOS = (None, 0.3, 0.5, 0.7)
THRESHOLDS = tuple(round(0.25 + 0.05 * i, 2) for i in range(6))


def brightest_slice_offsets(stack: np.ndarray, session: AnnotatedSession) -> np.ndarray:
    """Brightest slice (of ±3) at each annotated head's y, x minus the annotated slice."""
    image = ndi.gaussian_filter(np.asarray(stack, np.float32), (0, 2, 2))
    offsets = []
    for z, y, x in np.round(session.spines).astype(int):
        lo, hi = max(z - 3, 0), min(z + 4, image.shape[0])
        offsets.append(lo + int(np.argmax(image[lo:hi, y, x])) - z)
    return np.asarray(offsets)


def near_traced(points: np.ndarray, session: AnnotatedSession) -> np.ndarray:
    """The points within 4 µm of the session's traced dendrites, where annotations exist."""
    voxel = session.voxel_size_um
    return points[near_points(points, session.dendrites, voxel, SCORED_WITHIN_UM)]


def error_breakdown(found: np.ndarray, session: AnnotatedSession) -> str:
    """Matched / wrong / missed near traced dendrites; wrong ones beside a missed head in y, x."""
    voxel = np.asarray(session.voxel_size_um)
    found, truth = near_traced(found, session), near_traced(session.spines, session)
    pairs = match_points(found, truth, voxel, 1.0)
    wrong = np.setdiff1d(np.arange(len(found)), [p for p, _ in pairs])
    missed = np.setdiff1d(np.arange(len(truth)), [t for _, t in pairs])
    if len(wrong) == 0 or len(missed) == 0:
        return f"{len(pairs)} matched, {len(wrong)} wrong, {len(missed)} missed"
    tree = cKDTree(truth[missed] * voxel)
    distance = tree.query(found[wrong] * voxel)[0]
    in_plane = cKDTree(truth[missed][:, 1:] * voxel[1:]).query(found[wrong][:, 1:] * voxel[1:])[0]
    return (
        f"{len(pairs)} matched, {len(wrong)} wrong, {len(missed)} missed; of the wrong: "
        f"{int(np.sum(in_plane <= 1.0))} within 1 µm of a missed head in y, x (another "
        f"slice), {int(np.sum(distance > 3.0))} more than 3 µm from any"
    )


def f1_ignoring_z(found: np.ndarray, session: AnnotatedSession) -> float:
    """F1 near traced dendrites with spines matched within 1 µm in y and x, whatever their z."""
    voxel = np.asarray(session.voxel_size_um)
    found, truth = near_traced(found, session), near_traced(session.spines, session)
    return score_detections(found, truth, (1e-6, *voxel[1:]), 1.0).f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="spine-2p")
    parser.add_argument("--sessions", nargs="+", default=["rr30a_tp0", "rr30a_tp1", "rr30a_tp2"])
    args = parser.parse_args()
    package = find_model(args.model, task="spine-detection")
    post = package.spec.postprocessing
    threshold = float(post.get("threshold", 0.5))
    for name in args.sessions:
        session = load_session(args.data / f"{name}.tif")
        volume = read_volumes(session.stack)[0]
        offsets = brightest_slice_offsets(volume.data, session)
        print(
            f"{name}: annotated slice is the brightest for {np.mean(offsets == 0):.0%} of "
            f"{len(offsets)} heads; 3+ slices off for {np.mean(abs(offsets) >= 3):.0%}"
        )
        maps = predict_heatmaps(volume.data, volume.axes, package, volume.voxel_size_um)

        def peaks(t: float, ratio: float | None, maps=maps) -> np.ndarray:
            return maps.peaks(
                t, post.get("min_distance_um", 1.0), post.get("max_dendrite_distance_um"), ratio
            ).coords

        ratio = post.get("between_slices_ratio")
        print(f"  at threshold {threshold}: {error_breakdown(peaks(threshold, ratio), session)}")
        low = peaks(0.2, ratio)
        print(
            "  at 0.2, recall within 1 µm {:.2f}, within 2 µm {:.2f}".format(
                *(score_on_session(low, session, match_um=r).recall for r in (1.0, 2.0))
            )
        )
        in_plane = {t: f1_ignoring_z(peaks(t, ratio), session) for t in THRESHOLDS}
        best = max(in_plane, key=in_plane.get)
        print(f"  ignoring z (y, x within 1 µm): best F1 {in_plane[best]:.3f} at {best}")
        for r in RATIOS:
            f1 = {t: score_on_session(peaks(t, r), session).f1 for t in THRESHOLDS}
            best = max(f1, key=f1.get)
            print(f"  between_slices_ratio {r}: best F1 {f1[best]:.3f} at {best}")


if __name__ == "__main__":
    main()
