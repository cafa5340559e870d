"""How long one track edit holds napari's main thread, on the tracks of rr30a's three sessions.

Run (napari needs a screen; Xvfb gives one)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/track_edits.py \
        TRACKS.csv [--sessions rr30a_tp0.tif rr30a_tp1.tif rr30a_tp2.tif] [--edits 40]

TRACKS.csv is what ``napari-spines track --points`` wrote for those sessions (see
docs/sessions.md). The Sessions widget shows the tracks as after tracking, then splits a track
and undoes the split, alternately, as a user would with the buttons. Each edit is timed from the
click until the layers and the plot are drawn again: the edit itself, the recount of the
dynamics, the journal's fsync and napari's redraw all run on the main thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_spines._widgets import _track_editing
from napari_spines._widgets._app import PLUGIN
from napari_spines._widgets._session_layers import gather_sessions
from napari_spines._widgets._task import show_now
from napari_spines.cli.sessions import read_tracks
from napari_spines.sessions.track import Tracked

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "two_photon" / "rr30a"


def settle() -> None:
    for _ in range(5):
        QApplication.processEvents()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracks", type=Path)
    parser.add_argument(
        "--sessions",
        nargs=3,
        type=Path,
        default=[SHARED / f"rr30a_tp{t}.tif" for t in range(3)],
    )
    parser.add_argument("--edits", type=int, default=40)
    args = parser.parse_args()
    store = Path(tempfile.mkdtemp())  # the journal goes to a throw-away store, not the user's
    _track_editing.training_store = lambda: store
    viewer = napari.Viewer(show=True)
    layers = [viewer.open(str(p), plugin=PLUGIN)[0] for p in args.sessions]
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Sessions")
    points, ids, _voxel = read_tracks(args.tracks)
    tracked = Tracked(points, ids, [], {}, []).with_track_ids(ids)
    show_now(widget.show_tracks(gather_sessions(layers), tracked))
    settle()
    layer = viewer.layers["tracked spines"]
    # spines of session 1 whose track began in session 0: each can be split there
    t = layer.data[:, 0]
    firsts = {int(i) for i in np.asarray(layer.features["track_id"])[t == 0]}
    rows = [int(r) for r in np.flatnonzero(t == 1) if int(layer.features["track_id"][r]) in firsts]
    times = []
    for k in range(args.edits):
        row = rows[k // 2 % len(rows)]
        if k % 2 == 0:
            layer.selected_data = {row}
            started = time.perf_counter()
            widget.edits._split.native.click()
        else:
            started = time.perf_counter()
            widget.edits._undo.native.click()
        settle()
        times.append((time.perf_counter() - started) * 1000)
    times_ms = np.array(times)
    n = sum(len(p) for p in points)
    print(f"{n} spines, {len(tracked.classes)} tracks; {len(times_ms)} edits (split, then undo)")
    print(
        f"per edit on the main thread: median {np.median(times_ms):.0f} ms, "
        f"max {times_ms.max():.0f} ms"
    )
    viewer.close()


if __name__ == "__main__":
    main()
