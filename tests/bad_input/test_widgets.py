"""The dock widgets on bad input: a notification that names the problem, and a live viewer.

Runs napari for real under Xvfb; notifications are caught from napari's notification manager,
so a message that never reaches the user fails the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_spines._widgets._app import PLUGIN
from tests.bad_input.files import write_bad_files

pytestmark = pytest.mark.gui


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every notification shown during the test, as (severity, message)."""
    shown: list = []
    monkeypatch.setattr(notification_manager, "catch_error", False, raising=False)
    notification_manager.notification_ready.connect(
        lambda n: shown.append((n.severity, str(n.message)))
    )
    yield shown
    notification_manager.notification_ready.disconnect()


def _alive(viewer) -> None:
    """The viewer still answers: its layer list and window work."""
    viewer.add_points(np.zeros((1, 3)), name="probe")
    assert viewer.layers[-1].name == "probe"
    assert viewer.window._qt_window is not None


def _run_and_wait(widget, qtbot) -> None:
    widget._run.clicked()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)


@pytest.mark.parametrize(
    ("dock", "model"),
    [("Spine detection", "spine-dog"), ("Run model", "spine-dog"), ("Segmentation", None)],
)
def test_an_absurd_voxel_size_is_refused_with_a_notification(
    dock: str, model: str | None, make_napari_viewer, qtbot, notes: list
) -> None:
    """A layer scaled in metres instead of µm: one error that names the voxel size."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, dock)
    data = np.random.default_rng(0).random((8, 64, 64)).astype(np.float32)
    layer = viewer.add_image(data, name="stack", scale=(5000.0, 5000.0, 5000.0))
    layer.metadata["voxel_size_known"] = True
    widget._image.value = layer
    if model:
        widget._model.value = model
    _run_and_wait(widget, qtbot)
    errors = [m for s, m in notes if s == NotificationSeverity.ERROR]
    assert errors and "voxel size" in errors[-1], notes
    assert len(viewer.layers) == 1  # nothing half-made was added
    _alive(viewer)


def test_non_finite_voxels_give_a_warning_and_a_finite_result(
    make_napari_viewer, qtbot, notes: list
) -> None:
    """NaN and inf in the layer: the run finishes, warns once, and its output is finite."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Run model")
    data = np.random.default_rng(0).random((8, 64, 64)).astype(np.float32)
    data[2:4, 10:20, 10:20] = np.nan
    data[5, :4, :4] = np.inf
    widget._image.value = viewer.add_image(data, name="stack", scale=(1.0, 0.24, 0.24))
    widget._model.value = "spine-dog"
    _run_and_wait(widget, qtbot)
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=10_000)
    assert np.isfinite(viewer.layers[-1].data).all()
    warnings = [m for s, m in notes if s == NotificationSeverity.WARNING]
    assert any("NaN or infinite" in m for m in warnings), notes
    _alive(viewer)


@pytest.mark.parametrize("name", ["cut_8_bytes", "cut_half", "garbage", "one_voxel", "all_nan"])
def test_opening_a_bad_file_gives_a_notification(
    name: str, make_napari_viewer, tmp_path: Path, notes: list
) -> None:
    """File ▸ Open on a broken file: no layer, one error notification, a live viewer."""
    files = write_bad_files(tmp_path)
    viewer = make_napari_viewer()
    try:
        viewer.open(str(files[name]), plugin=PLUGIN)
    except Exception as exc:  # napari reports a reader that returns nothing as an error
        assert "no" in str(exc).lower() or "read" in str(exc).lower()
    assert len(viewer.layers) == 0
    stem = files[name].stem
    assert any(s == NotificationSeverity.ERROR and stem in m for s, m in notes), notes
    _alive(viewer)
