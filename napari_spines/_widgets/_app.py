"""The napari-spines window: napari with every widget docked, for ``napari-spines view``/``demo``.

The command line reaches napari only through `open_viewer`; scripts that drive the window
(screenshots for the docs) use `dock_widgets`, `wait_while` and `save_window_screenshot`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import napari
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QTabBar

from napari_spines._widgets._layers import show_plane_of_points
from napari_spines.io.layers import LayerData

PLUGIN = "napari-spines"
#: The dock widgets, in the order of their tabs (the first is shown).
WIDGETS = (
    "Spine detection",
    "Sessions",
    "Segmentation",
    "Run model",
    "Restore",
    "Training data",
    "Train model",
    "Fine-tune",
    "Voxel size",
    "Synthetic data",
)


#: Tab titles: short, so that ten tabs read in full in a dock of a laptop's width.
TAB_TITLES = {
    "Spine detection": "Spines",
    "Sessions": "Sessions",
    "Segmentation": "Segment",
    "Run model": "Run",
    "Restore": "Restore",
    "Training data": "Data",
    "Train model": "Train",
    "Fine-tune": "Fine-tune",
    "Voxel size": "Voxels",
    "Synthetic data": "Synthetic",
}


#: The widget shown first when a sample is opened: the one that works on it.
SAMPLE_WIDGET = {
    "two_photon": "Spine detection",
    "two_photon_sessions": "Sessions",
    "em": "Segmentation",
}


def open_viewer(
    layer_data: Sequence[LayerData] = (),
    samples: Sequence[str] = (),
    screenshot: Path | None = None,
) -> None:
    """Open napari with our widgets docked, ``layer_data`` and ``samples`` loaded.

    With ``screenshot``, save a picture of the window there and close it instead of running.
    """
    viewer = napari.Viewer(title="napari-spines")
    for data, meta, layer_type in layer_data:
        viewer.add_layer(napari.layers.Layer.create(data, meta, layer_type))
    for sample in samples:
        viewer.open_sample(PLUGIN, sample)
    dock_widgets(
        viewer, shown=SAMPLE_WIDGET.get(samples[-1], WIDGETS[0]) if samples else WIDGETS[0]
    )
    viewer.scale_bar.visible = True
    points = [layer for layer in viewer.layers if isinstance(layer, napari.layers.Points)]
    if samples and points:
        show_plane_of_points(viewer, points[0])
    if screenshot is not None:
        save_window_screenshot(viewer, screenshot)
        viewer.close()
        return
    napari.run()


def dock_widgets(viewer: napari.viewer.Viewer, shown: str = WIDGETS[0]) -> list:
    """Dock every napari-spines widget on the right of ``viewer``; return the widgets.

    They share one tabbed dock area (stacked, eight widgets would not fit a laptop screen);
    ``shown`` (one of `WIDGETS`) is the tab in front.
    """
    docked = [viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True) for name in WIDGETS]
    for (dock, _widget), name in zip(docked, WIDGETS, strict=True):
        dock.setWindowTitle(TAB_TITLES[name])  # napari's "<name> (napari-spines)" is cut off
    QApplication.processEvents()  # the tabs exist only once Qt has laid them out
    for bar in tab_bars(viewer):
        bar.setElideMode(Qt.TextElideMode.ElideNone)  # whole titles, scroll arrows if need be
        bar.setUsesScrollButtons(True)
    docked[WIDGETS.index(shown)][0].raise_()
    QApplication.processEvents()
    return [widget for _dock, widget in docked]


def tab_bars(viewer: napari.viewer.Viewer) -> list[QTabBar]:
    """The tab bars of the main window's docks (Qt makes one per group of tabified docks)."""
    return viewer.window._qt_window.findChildren(
        QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly
    )


def wait_while(busy: Callable[[], bool], timeout_s: float) -> None:
    """Process Qt events while ``busy()`` is true, for at most ``timeout_s`` (scripted viewers)."""
    started = time.monotonic()
    while busy() and time.monotonic() - started < timeout_s:
        QApplication.processEvents()
        time.sleep(0.05)


def save_window_screenshot(viewer: napari.viewer.Viewer, path: Path) -> None:
    """Save the whole window (canvas and docked widgets) as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.resize(1400, 850)
    for _ in range(5):
        QApplication.processEvents()
    viewer.screenshot(str(path), canvas_only=False)
