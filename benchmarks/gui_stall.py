"""How long napari's main thread stalls while each widget's work runs, clicked as a user would.

Run (napari needs a screen; Xvfb gives one)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/gui_stall.py \
        [--two-photon STACK] [--em STACK] [--only detect segment ...] [--trace]

A 10 ms QTimer ticks on the main thread from the click until the widget's task has finished and
its result is in the viewer. Every gap between ticks longer than 10 ms is time the viewer could
not answer a mouse or key press. Reported per widget: the work's wall time, the longest gap, and
how many gaps were over 50 and over 100 ms (targets: longest <= 50 ms, none over 100 ms).

With ``--trace``, a watchdog thread samples every thread's Python stack whenever the main thread
has not ticked for 50 ms, and prints the places seen most often in stalls: what the main thread
was doing, and what the worker was doing meanwhile (when the main thread shows only the event
loop, the worker held the GIL).

Work measured (real data from ``../shared/data`` by default):

- ``detect``: Spine detection, spine-2p on a whole two-photon stack;
- ``run-model``: Run model, spine-2p on the same stack (heatmaps as Image layers);
- ``segment``: Segmentation, em-affinity on the ISBI stack (4 x 4 nm, 50 nm sections);
- ``restore``: Restore, restore-em on ISBI sections made 4x coarser (em-4x preset);
- ``train``: Train model, spine-2p for 0.5 min on two synthetic sessions;
- ``finetune``: Fine-tune, spine-2p for 0.5 min on a store of one synthetic stack's spines;
- ``track``: Sessions, tracking the synthetic sessions sample.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from napari_spines._widgets._app import PLUGIN

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TWO_PHOTON = SHARED / "two_photon/rr30a/rr30a_tp2.tif"
EM = SHARED / "em/isbi2012/isbi2012_train_image.tif"
EM_VOXEL_UM = (0.05, 0.004, 0.004)  # the ISBI file carries no voxel size
TICK_MS = 10


class Ticker:
    """Record the gaps between ticks of a ``TICK_MS`` timer on the main thread."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self.last = time.perf_counter()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def start(self) -> None:
        self.gaps.clear()
        self.last = time.perf_counter()
        self.timer.start()

    def stop(self) -> np.ndarray:
        self.timer.stop()
        self._tick()  # the time since the last tick counts too
        return np.asarray(self.gaps) * 1000


class Watchdog(threading.Thread):
    """Sample every thread's stack whenever the main thread has not ticked for 50 ms."""

    def __init__(self, ticker: Ticker) -> None:
        super().__init__(daemon=True)
        self.ticker = ticker
        self.main = threading.main_thread().ident
        self.seen: collections.Counter[str] = collections.Counter()
        self.running = True
        self.own: int | None = None

    def run(self) -> None:
        self.own = threading.get_ident()
        while self.running:
            time.sleep(0.02)
            if time.perf_counter() - self.ticker.last > 0.05:
                for ident, frame in sys._current_frames().items():
                    if ident == self.own:
                        continue
                    stack = traceback.extract_stack(frame)[-6:][::-1]
                    where = " <- ".join(f"{f.name}:{Path(f.filename).name}" for f in stack)
                    self.seen[("main: " if ident == self.main else "worker: ") + where] += 1


@dataclass
class Case:
    """One widget's work: how to set it up, the button to click, and when it is done."""

    widget: str
    setup: Callable[[napari.Viewer, object, Path], object]
    button: str = "_run"


def open_stack(viewer: napari.Viewer, path: Path, voxel_um: tuple | None = None) -> object:
    """Open ``path`` with our reader, as File > Open does; set ``voxel_um`` when given."""
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    if voxel_um is not None:
        layer.scale = voxel_um
        layer.metadata["voxel_size_known"] = True
    return layer


def setup_spine_model(viewer, widget, _tmp):
    """Spine detection and Run model: spine-2p on the two-photon stack."""
    widget._image.value = open_stack(viewer, ARGS.two_photon)
    widget._model.value = "spine-2p"


def setup_segment(viewer, widget, _tmp):
    widget._image.value = open_stack(viewer, ARGS.em, EM_VOXEL_UM)
    widget._model.value = "em-affinity"


def setup_restore(viewer, widget, _tmp):
    import tifffile

    from napari_spines.restoration.crappify import crappified_voxel_size, preset

    crappifier = preset("em-4x")
    crappy = crappifier(tifffile.imread(ARGS.em)[:4], EM_VOXEL_UM, seed=0)
    scale = crappified_voxel_size(crappifier, EM_VOXEL_UM)
    layer = viewer.add_image(crappy, name="ISBI em-4x", scale=scale)
    layer.metadata["voxel_size_known"] = True
    widget._image.value = layer
    widget._model.value = "restore-em"


def setup_train(viewer, widget, tmp):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.widgets.test_training import write_session

    for name, seed in (("a", 1), ("b", 2)):
        write_session(tmp, name, seed)
    widget._data.value = tmp
    widget._train.value, widget._validate.value = "a", "b"
    widget._out.value = tmp / "run"
    widget._minutes.value = 0.5


def setup_finetune(viewer, widget, tmp):
    """Fine-tune: spine-2p for 0.5 min on a store of one synthetic stack's reviewed spines."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from napari_spines.synthetic import synthetic_two_photon
    from tests.widgets.test_finetune_widget import VOXEL, spine_store

    sample = synthetic_two_photon(shape=(12, 160, 160), voxel_size_um=VOXEL, seed=4, n_dendrites=3)
    widget._store.value = str(spine_store(tmp / "store", sample))
    while widget.busy:  # the store's contents are listed in a worker
        QApplication.processEvents()
        time.sleep(0.01)
    widget._out.value = tmp / "tuned"
    widget._minutes.value = 0.5
    widget._device.value = "cpu"


def setup_track(viewer, widget, _tmp):
    viewer.open_sample(PLUGIN, "two_photon_sessions")
    widget._sessions.reset_choices()
    widget._points.reset_choices()
    widget._sessions.value = list(widget._sessions.choices)
    widget._points.value = list(widget._points.choices)


CASES = {
    "detect": Case("Spine detection", setup_spine_model),
    "run-model": Case("Run model", setup_spine_model),
    "segment": Case("Segmentation", setup_segment),
    "restore": Case("Restore", setup_restore),
    "train": Case("Train model", setup_train),
    "finetune": Case("Fine-tune", setup_finetune),
    "track": Case("Sessions", setup_track, button="_track"),
}


def measure(name: str, case: Case, trace: bool) -> dict:
    """Click ``case``'s button in a fresh viewer; the gaps from the click to the result shown."""
    viewer = napari.Viewer(show=True)
    try:
        _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, case.widget)
        with tempfile.TemporaryDirectory() as tmp:
            case.setup(viewer, widget, Path(tmp))
            for _ in range(20):  # let the set-up's layers draw before timing
                QApplication.processEvents()
                time.sleep(0.01)
            ticker = Ticker()
            watchdog = Watchdog(ticker) if trace else None
            if watchdog:
                watchdog.start()
            ticker.start()
            started = time.perf_counter()
            getattr(widget, case.button).native.click()
            while widget.task.busy and time.perf_counter() - started < ARGS.timeout:
                QApplication.processEvents()
                time.sleep(0.002)
            for _ in range(20):  # the result's layers are drawn on the next events
                QApplication.processEvents()
                time.sleep(0.005)
            seconds = time.perf_counter() - started
            gaps = ticker.stop()
            if watchdog:
                ends = np.cumsum(gaps) / 1000
                late = [f"{end:.1f}" for end, gap in zip(ends, gaps, strict=True) if gap > 100]
                print(
                    f"  [{name}] gaps over 100 ms ended at (s after the click): {', '.join(late)}"
                )
                watchdog.running = False
                for where, count in watchdog.seen.most_common(10):
                    print(f"  [{name}] {count} x {where}")
    finally:
        viewer.close()
    return {
        "case": name,
        "widget": case.widget,
        "seconds": seconds,
        "longest_ms": float(gaps.max()),
        "over_50": int((gaps > 50).sum()),
        "over_100": int((gaps > 100).sum()),
        "finished": not widget.task.busy,
    }


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--two-photon", type=Path, default=TWO_PHOTON)
    parser.add_argument("--em", type=Path, default=EM)
    parser.add_argument("--only", nargs="+", choices=tuple(CASES), default=tuple(CASES))
    parser.add_argument("--trace", action="store_true", help="sample the stalled main thread")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    ARGS = parser.parse_args()
    rows = [measure(name, CASES[name], ARGS.trace) for name in ARGS.only]
    print("| work (widget) | time (s) | longest gap (ms) | gaps > 50 ms | gaps > 100 ms |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        done = "" if r["finished"] else " (timed out)"
        print(
            f"| {r['case']} ({r['widget']}){done} | {r['seconds']:.1f} | {r['longest_ms']:.0f} "
            f"| {r['over_50']} | {r['over_100']} |"
        )


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
