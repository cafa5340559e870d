"""Screenshots of the widgets at work on the samples, for the docs (docs/images/<widget>.png).

Each widget opens in a fresh napari window on a built-in sample, runs as a user would run it
(Spine detection detects and shows the first spine to review; Sessions tracks the sessions
sample) or shows its form, and the whole window is saved. Run model, Segmentation and Restore
have their own scripts (screenshot_run_model.py, screenshot_segmentation.py,
screenshot_restoration.py).

Run:  xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_widgets.py \
          [spines sessions voxel-size synthetic training-data train fine-tune]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import napari

from napari_spines._widgets._app import save_window_screenshot, wait_while

PLUGIN = "napari-spines"
IMAGES = Path("docs/images")


def spines(viewer: napari.Viewer) -> None:
    viewer.open_sample(PLUGIN, "two_photon")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spine detection")
    widget._image.value = viewer.layers["two-photon"]
    widget.run()
    wait_while(lambda: widget.task.busy, 300)
    widget.next()


def sessions(viewer: napari.Viewer) -> None:
    viewer.open_sample(PLUGIN, "two_photon_sessions")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Sessions")
    widget._sessions.reset_choices()
    widget._points.reset_choices()
    widget._sessions.value = list(widget._sessions.choices)
    widget._points.value = list(widget._points.choices)
    widget.track()
    wait_while(lambda: widget.task.busy, 120)


def form(name: str, sample: str | None = "two_photon") -> Callable[[napari.Viewer], None]:
    def show(viewer: napari.Viewer) -> None:
        if sample:
            viewer.open_sample(PLUGIN, sample)
        viewer.window.add_plugin_dock_widget(PLUGIN, name)

    return show


SHOTS: dict[str, Callable[[napari.Viewer], None]] = {
    "spines": spines,
    "sessions": sessions,
    "voxel-size": form("Voxel size"),
    "synthetic": form("Synthetic data", None),
    "training-data": form("Training data"),
    "train": form("Train model", None),
    "fine-tune": form("Fine-tune"),
}


def main(names: list[str]) -> None:
    for name in names or list(SHOTS):
        viewer = napari.Viewer(show=True)
        SHOTS[name](viewer)
        wait_while(lambda: True, 2)  # let the canvas and the dock settle
        save_window_screenshot(viewer, IMAGES / f"widget-{name}.png")
        print(f"saved {IMAGES / f'widget-{name}.png'}")
        viewer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
