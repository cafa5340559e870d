"""How many hand edits turn the tracker's links on rr30a into the annotated ones (docs/sessions.md).

Usage::

    .venv/bin/python scripts/track_edits_real_data.py RR30A_FOLDER [--work DIR]

Runs ``napari-spines track --points`` on the three annotated sessions (track ids hidden), then
walks the sessions in order and relinks every spine whose track disagrees with the annotation,
as a person with the annotation beside them would (`napari_spines.sessions.editing.relink`;
a relink onto a track with a spine in that session swaps the two). The edits are then applied
by ``napari-spines track-edit`` and the result scored again. The count is an upper bound on
the edits needed: one split or merge can fix several links at once.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_spines.cli import main as cli
from napari_spines.io.points_csv import read_points_csv
from napari_spines.sessions.editing import EditHistory, new_track_id, relink
from napari_spines.sessions.linking import link_score

NAMES = [f"rr30a_tp{i}" for i in range(3)]


def per_session(path: Path, n: int) -> list[np.ndarray]:
    """Track ids of a tracks CSV, per session, in row order."""
    coords, _, columns = read_points_csv(path)
    t = np.rint(coords[:, 0]).astype(int)
    return [columns["track_id"][t == s].astype(int) for s in range(n)]


def edits_to_truth(found: list[np.ndarray], truth: list[np.ndarray]) -> list[tuple[int, int, int]]:
    """``(t, track, to)`` relinks that make ``found`` group the spines as ``truth`` does."""
    history = EditHistory(found)
    label: dict[int, int] = {}  # annotated track → the found id it is given
    claimed: set[int] = set()
    edits = []
    for t, annotated in enumerate(truth):
        for i, tau in enumerate(annotated.tolist()):
            current = int(history.current[t][i])
            if tau not in label:
                label[tau] = current if current not in claimed else new_track_id(history.current)
                claimed.add(label[tau])
            if current != label[tau]:
                edits.append((t, current, label[tau]))
                history.apply(relink, t, i, label[tau])
    return edits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--work", type=Path, help="folder for the CSVs (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    images = [str(args.data / f"{n}.tif") for n in NAMES]
    spines = [args.data / f"{n}_spines.csv" for n in NAMES]
    truth = [read_points_csv(p)[2]["track_id"].astype(int) for p in spines]
    tracks = work / "tracks.csv"
    started = time.perf_counter()
    argv = ["track", "--images", *images, "--points", *map(str, spines), "-o", str(tracks)]
    assert cli(argv) == 0
    print(f"track --points: {time.perf_counter() - started:.0f} s")
    found = per_session(tracks, 3)
    precision, recall, f1 = link_score(truth, found)
    print(f"link F1 before edits: {f1:.3f} (precision {precision:.3f}, recall {recall:.3f})")
    edits = edits_to_truth(found, truth)
    print(f"relinks to the annotated links: {len(edits)}")
    fixed = work / "tracks_fixed.csv"
    edit_args = [a for t, track, to in edits for a in ("--relink", str(t), str(track), str(to))]
    started = time.perf_counter()
    assert cli(["track-edit", str(tracks), "-o", str(fixed), *edit_args]) == 0
    print(f"track-edit of {len(edits)} relinks: {time.perf_counter() - started:.1f} s")
    precision, recall, f1 = link_score(truth, per_session(fixed, 3))
    print(f"link F1 after edits: {f1:.3f} (precision {precision:.3f}, recall {recall:.3f})")


if __name__ == "__main__":
    main()
