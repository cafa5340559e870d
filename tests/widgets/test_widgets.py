"""napari for real under Xvfb: dock every widget, load every sample, run and cancel work."""

from __future__ import annotations

import time
from importlib.resources import files
from operator import attrgetter

import numpy as np
import pytest
from npe2 import PluginManifest

from napari_spines._widgets._app import PLUGIN, dock_widgets, save_window_screenshot
from napari_spines._widgets._layers import layer_voxel_size
from napari_spines.voxel_size import VoxelSize

pytestmark = pytest.mark.gui

MANIFEST = PluginManifest.from_file(files("napari_spines") / "napari.yaml")
WIDGET_NAMES = [w.display_name for w in MANIFEST.contributions.widgets]
SAMPLE_KEYS = [s.key for s in MANIFEST.contributions.sample_data]


def _not_blank(image: np.ndarray) -> bool:
    rgb = np.asarray(image)[..., :3].astype(float)
    return rgb.std() > 5 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50


CLASS_OF = {
    w.display_name: next(
        c.python_name for c in MANIFEST.contributions.commands if c.id == w.command
    ).rsplit(":", 1)[1]
    for w in MANIFEST.contributions.widgets
}
#: The layer choice of each widget that takes a layer (None: it takes none).
LAYER_CHOICE = {
    "Spine detection": "_image",
    "Segmentation": "_image",
    "Run model": "_image",
    "Restore": "_image",
    "Voxel size": "_layer",
    "Train model": "_own_image",
    "Training data": "_image",
    "Fine-tune": None,
    "Synthetic data": None,
    "Sessions": "proposals._previous",
}


@pytest.mark.parametrize("name", WIDGET_NAMES)
def test_every_widget_docks_and_follows_the_layers(make_napari_viewer, name):
    """Each manifest entry docks its own class, and its layer choice lists new layers."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    assert type(widget).__name__ == CLASS_OF[name]
    choice = LAYER_CHOICE[name]
    if choice is None:
        return
    combo = attrgetter(choice)(widget)
    assert not [c for c in combo.choices if c is not None]  # nothing to choose yet
    layer = viewer.add_image(np.zeros((4, 16, 16)), name="stack")
    assert any(c is layer for c in combo.choices)
    viewer.layers.remove(layer)
    assert not [c for c in combo.choices if c is not None]


@pytest.mark.parametrize("key", SAMPLE_KEYS)
def test_every_sample_loads_and_renders(make_napari_viewer, key):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, key)
    image = next(layer for layer in viewer.layers if layer._type_string == "image")
    assert image.scale[-1] < 1.0  # placed in µm, not pixels
    assert len(viewer.layers) >= 2  # image plus its ground truth
    assert _not_blank(viewer.screenshot(canvas_only=True, flash=False))


def test_demo_window_screenshot_shows_stack_and_widgets(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "two_photon")
    widgets = dock_widgets(viewer)
    assert len(widgets) == len(WIDGET_NAMES)
    path = tmp_path / "demo.png"
    save_window_screenshot(viewer, path)
    picture = _read_png(path)
    assert picture.shape[1] > picture.shape[0] > 400 and _not_blank(picture)


@pytest.mark.parametrize(("shown", "hidden"), [("Segmentation", "Spine detection")])
def test_the_tab_in_front_is_the_one_asked_for(make_napari_viewer, shown, hidden):
    from napari_spines._widgets._app import SAMPLE_WIDGET, WIDGETS

    assert SAMPLE_WIDGET["em"] == "Segmentation"  # what `demo --sample em` shows
    viewer = make_napari_viewer(show=True)
    widgets = dict(zip(WIDGETS, dock_widgets(viewer, shown=shown), strict=True))
    assert not widgets[shown].native.visibleRegion().isEmpty()
    assert widgets[hidden].native.visibleRegion().isEmpty()


def test_tab_titles_are_short_and_read_in_full(make_napari_viewer):
    from napari_spines._widgets._app import TAB_TITLES, WIDGETS, tab_bars

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 850)  # a laptop-sized window
    dock_widgets(viewer)
    (bar,) = [bar for bar in tab_bars(viewer) if bar.count() == len(WIDGETS)]
    titles = [bar.tabText(i) for i in range(bar.count())]
    assert sorted(titles) == sorted(TAB_TITLES[name] for name in WIDGETS)
    assert max(len(title) for title in titles) <= 9
    for i in range(bar.count()):  # no title is elided: its tab is as wide as its text needs
        needed = bar.fontMetrics().horizontalAdvance(bar.tabText(i))
        assert bar.tabRect(i).width() >= needed, bar.tabText(i)


def test_a_long_result_wraps_instead_of_widening_the_dock(make_napari_viewer):
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spine detection")
    QApplication.processEvents()
    before = widget.native.minimumSizeHint().width()
    widget._score_result.value = "F1 0.512, precision 0.601, recall 0.446 " * 10
    QApplication.processEvents()
    assert widget.native.minimumSizeHint().width() <= before


def _read_png(path):
    from skimage.io import imread

    return imread(path)


def test_synthetic_widget_generates_in_background(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Synthetic data")
    widget._kind.value = "EM volume"
    for box, value in zip(widget._shape, (8, 64, 64), strict=True):
        box.value = value
    widget.generate()
    assert widget.task.busy and not widget._run.enabled
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=30_000)
    names = [layer.name for layer in viewer.layers]
    assert names == ["EM seed 0", "EM seed 0 labels (ground truth)"]
    assert viewer.layers[1].data.shape == (8, 64, 64)
    assert widget._run.enabled


def test_task_panel_cancel_stops_work_and_adds_nothing(make_napari_viewer, qtbot):
    from napari_spines._widgets._task import TaskPanel

    make_napari_viewer()
    panel = TaskPanel()
    steps, results, errors = [], [], []

    def slow(progress):
        for i in range(200):
            progress(i, 200)
            steps.append(i)
            time.sleep(0.01)
        return "finished"

    cancelled = []
    panel.cancelled.connect(lambda: cancelled.append(True))
    panel.failed.connect(errors.append)
    assert panel.run(slow, on_result=results.append) is not None
    qtbot.waitUntil(lambda: len(steps) > 3, timeout=10_000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    assert results == [] and errors == [] and cancelled == [True]
    assert len(steps) < 10  # stopped within one step of the Cancel (plus the in-flight one)
    assert panel.run(slow, on_result=results.append) is not None  # ready for the next task
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)


def test_task_panel_failure_is_one_line_not_a_traceback(make_napari_viewer, qtbot, monkeypatch):
    from napari_spines._widgets import _task
    from napari_spines._widgets._task import TaskPanel

    make_napari_viewer()
    shown = []
    monkeypatch.setattr(_task, "show_error", shown.append)
    panel = TaskPanel()
    failures = []
    panel.failed.connect(failures.append)

    def broken(progress):
        raise ValueError("stack.tif: voxel size must be positive\nsecond line")

    panel.run(broken, on_result=lambda _: None)
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    assert shown == ["stack.tif: voxel size must be positive"]
    assert len(failures) == 1 and isinstance(failures[0], ValueError)


def test_task_panel_runs_one_task_at_a_time(make_napari_viewer, qtbot):
    from napari_spines._widgets._task import TaskPanel

    make_napari_viewer()
    panel = TaskPanel()
    started = []

    def wait(progress):
        started.append(1)
        for i in range(100):
            progress(i, 100)
            time.sleep(0.01)

    assert panel.run(wait, on_result=lambda _: None) is not None
    assert panel.run(wait, on_result=lambda _: None) is None
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    assert len(started) == 1


def test_task_panel_shows_a_result_in_steps_with_the_event_loop_between(make_napari_viewer, qtbot):
    """A generator ``on_result`` runs one step per turn: the main thread ticks between them."""
    from qtpy.QtCore import QTimer

    from napari_spines._widgets._task import TaskPanel

    make_napari_viewer()
    panel = TaskPanel()
    events = []
    ticker = QTimer()
    ticker.setInterval(0)
    ticker.timeout.connect(lambda: events.append("tick"))

    def shown(result):
        for layer in range(3):
            events.append(f"{result} layer {layer}")
            yield

    panel.succeeded.connect(lambda result: events.append(f"succeeded {result}"))
    panel.finished.connect(lambda: events.append("finished"))
    ticker.start()
    assert panel.run(lambda progress: "labels", on_result=shown) is not None
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    ticker.stop()
    steps = [e for e in events if e != "tick"]
    assert steps == [
        "labels layer 0",
        "labels layer 1",
        "labels layer 2",
        "succeeded labels",
        "finished",
    ]
    first, last = events.index("labels layer 0"), events.index("labels layer 2")
    between = events[first:last]
    assert between.count("tick") >= 2, "the event loop ran between the steps"


def test_voxel_size_widget_sets_scale_on_matching_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(
        np.zeros((4, 16, 16)), name="raw", metadata={"voxel_size_known": False}
    )
    labels = viewer.add_labels(np.zeros((4, 16, 16), dtype=np.uint8), name="seg")
    other = viewer.add_image(np.zeros((3, 5, 5)), name="other")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Voxel size")
    widget._layer.value = image
    for box, value in zip(widget._sizes, (2.0, 0.25, 0.125), strict=True):
        box.value = value
    widget.apply()
    assert tuple(image.scale) == (2.0, 0.25, 0.125)
    assert tuple(labels.scale) == (2.0, 0.25, 0.125)
    assert tuple(other.scale) == (1.0, 1.0, 1.0)
    assert layer_voxel_size(image) == VoxelSize((2.0, 0.25, 0.125), known=True)


def test_opening_a_broken_file_notifies_and_keeps_the_viewer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00not really")
    viewer.open(str(path), plugin=PLUGIN)
    assert len(viewer.layers) == 0


def test_open_real_stack_through_plugin(make_napari_viewer, real_data):
    viewer = make_napari_viewer()
    viewer.open(str(real_data / "two_photon/rr30a/rr30a_tp0.tif"), plugin=PLUGIN)
    assert tuple(viewer.layers[0].scale) == pytest.approx((1.0, 0.12, 0.12))


def test_latest_worker_shows_only_the_answer_to_the_latest_request(make_napari_viewer, qtbot):
    """Three requests while one runs: the first's answer and the middle one are dropped."""
    from napari_spines._widgets._task import LatestWorker

    make_napari_viewer()
    asked, results = [0], []

    def job():
        value = asked[0]
        return lambda: (time.sleep(0.2), value)[1]

    worker = LatestWorker(job, results.append)
    worker.request()
    for value in (1, 2, 3):
        asked[0] = value
        worker.request()
    assert worker.busy
    qtbot.waitUntil(lambda: not worker.busy, timeout=10_000)
    assert results == [3]
    asked[0] = 4
    worker.request()
    worker.discard()  # e.g. the ground truth was unset meanwhile
    qtbot.waitUntil(lambda: not worker.busy, timeout=10_000)
    qtbot.wait(50)
    assert results == [3]


def test_latest_worker_answer_for_a_closed_dock_is_dropped_quietly(make_napari_viewer, qtbot):
    """The dock closed while the worker ran: its deleted label is not written, and no error."""
    from napari_spines._widgets._task import LatestWorker, status_label

    make_napari_viewer()
    label = status_label("")

    def job():
        return lambda: (time.sleep(0.3), "done")[1]

    worker = LatestWorker(job, lambda text: setattr(label, "value", text))
    worker.request()
    label.native.deleteLater()
    qtbot.wait(50)  # the label is deleted by the event loop while the worker still sleeps
    qtbot.waitUntil(lambda: not worker.busy, timeout=10_000)
    qtbot.wait(50)  # a RuntimeError in the Qt loop would fail the test at teardown
