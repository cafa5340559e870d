"""The Spine detection widget and its review workflow, in napari under Xvfb."""

import numpy as np
import pytest
import tifffile

from napari_spines._widgets import _review, spine_detection
from napari_spines._widgets._app import PLUGIN
from napari_spines.io import read_points_csv
from napari_spines.io.points_csv import write_points_csv

pytestmark = pytest.mark.gui


def press(layer, key):
    """Call the function bound to ``key`` on ``layer``, as napari does on a key press."""
    (action,) = [f for k, f in layer.keymap.items() if str(k).lower() == key]
    action(layer)


@pytest.fixture
def detected(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "two_photon")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spine detection")
    widget._image.value = viewer.layers["two-photon"]
    widget._model.value = "spine-dog"
    widget.run()
    assert widget.task.busy
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert widget.layer is not None and len(widget.layer.data) > 3
    return viewer, widget


def test_detection_makes_a_points_layer_with_statuses(detected):
    viewer, widget = detected
    layer = widget.layer
    assert set(layer.features.columns) >= {"id", "score", "status"}
    assert set(layer.features["status"]) == {"auto"}
    assert tuple(layer.scale) == tuple(viewer.layers["two-photon"].scale)


def test_threshold_slider_filters_without_rerunning(detected, monkeypatch):
    _, widget = detected
    runs = []
    monkeypatch.setattr(widget.task, "run", lambda *a, **k: runs.append(a))
    scores = widget.layer.features["score"].to_numpy()
    widget._threshold.value = float(np.median(scores))
    assert widget.layer.shown.sum() == (scores >= widget._threshold.value).sum()
    assert widget.layer.shown.sum() < len(scores)
    assert runs == []  # the model did not run again


def test_review_keys_move_to_the_spine_slice_and_set_statuses(detected):
    viewer, widget = detected
    layer = widget.layer
    widget._threshold.value = float(layer.features["score"].min())
    press(layer, "n")
    first = widget.queue.current
    z_world = layer.data_to_world(layer.data[first])[0]
    assert viewer.dims.point[0] == pytest.approx(z_world, abs=0.51)  # on the spine's slice
    press(layer, "a")
    assert layer.features["status"][first] == "accepted"
    second = widget.queue.current
    assert second != first
    z2 = layer.data_to_world(layer.data[second])[0]
    assert viewer.dims.point[0] == pytest.approx(z2, abs=0.51)
    press(layer, "r")
    assert layer.features["status"][second] == "rejected"
    assert widget.layer.border_color[second][3] < 0.5  # rejected: kept, dimmed
    assert ": 2 reviewed" in widget._counts.value
    press(layer, "u")
    assert layer.features["status"][second] == "auto"


def test_spine_under_review_is_drawn_larger_and_the_camera_zooms_to_it(detected):
    viewer, widget = detected
    layer = widget.layer
    viewer.reset_view()
    zoom_before = viewer.camera.zoom
    press(layer, "n")
    current = widget.queue.current
    sizes = np.asarray(layer.size)
    others = np.delete(sizes, current)
    assert sizes[current] == pytest.approx(2 * others.max())  # the one under review stands out
    assert np.allclose(others, others[0])
    # about REVIEW_FIELD_UM µm across the shorter side of the canvas (the scale is in µm)
    field = min(viewer.canvas.size) / viewer.camera.zoom
    assert field == pytest.approx(_review.REVIEW_FIELD_UM, rel=0.01)
    assert viewer.camera.zoom > zoom_before
    centre = np.asarray(layer.data_to_world(layer.data[current]))[1:]
    assert np.allclose(viewer.camera.center[-2:], centre, atol=1e-6)
    press(layer, "a")  # the next one is highlighted instead
    sizes = np.asarray(layer.size)
    assert sizes[current] == pytest.approx(others[0])
    assert sizes[widget.queue.current] == pytest.approx(2 * others[0])


def test_one_count_of_spines_in_the_counter(detected):
    _, widget = detected
    shown = int(widget.layer.shown.sum())
    assert widget._counts.value == f"{shown} spines: 0 reviewed, {shown} to review"
    press(widget.layer, "r")
    assert widget._counts.value == f"{shown} spines: 1 reviewed, {shown - 1} to review"


def test_keys_are_bound_on_the_spines_layer(detected):
    _, widget = detected
    for key in ("n", "b", "a", "r", "u"):
        assert any(str(k).lower() == key for k in widget.layer.keymap), key


def test_added_and_moved_spines_are_marked(detected):
    _, widget = detected
    layer = widget.layer
    n = len(layer.data)
    layer.add(np.array([[5.0, 20.0, 20.0]]))
    assert len(layer.data) == n + 1
    assert layer.features["status"].iloc[-1] == "added"
    assert layer.features["id"].iloc[-1] == n + 1
    start = layer.data[1].copy()
    target = start.copy()
    target[1:] += 3.0
    layer._move({1}, start)  # a drag in select mode: press on the point, then move
    layer._move({1}, target)
    statuses = layer.features["status"].to_numpy()
    assert statuses[1] == "moved"
    assert statuses[0] == "auto" and statuses[-1] == "added"


def test_export_reads_back_with_statuses(detected, tmp_path):
    _, widget = detected
    widget._threshold.value = float(widget.layer.features["score"].min())
    widget.next()
    widget.reject()
    path = tmp_path / "reviewed.csv"
    widget._export_path.value = str(path)
    widget.export()
    coords, voxel, props = read_points_csv(path)
    assert voxel == pytest.approx((1.0, 0.12, 0.12), rel=1e-3)
    assert "rejected" in set(props["status"]) and len(coords) == len(props["score"])


def test_export_where_no_file_can_be_written_is_one_clear_message(detected, tmp_path, monkeypatch):
    from napari_spines._widgets import spine_detection

    _, widget = detected
    errors = []
    monkeypatch.setattr(spine_detection, "show_error", errors.append)
    (tmp_path / "a file").write_text("")
    widget._export_path.value = str(tmp_path / "a file" / "reviewed.csv")  # not a folder
    widget.export()
    assert len(errors) == 1 and "a file" in errors[0]


def annotate(folder, coords, voxel):
    """An annotated stack in ``folder`` whose spines, and traced dendrite, are ``coords``."""
    stack = folder / "s.tif"
    tifffile.imwrite(stack, np.zeros((4, 8, 8), np.uint8))
    write_points_csv(folder / "s_spines.csv", coords, voxel, {"is_bad": [0] * len(coords)})
    write_points_csv(folder / "s_dendrites.csv", coords, voxel, {"segment_id": [1] * len(coords)})
    return stack


def test_score_counts_shown_spines_and_not_rejected_ones(detected, tmp_path):
    _, widget = detected
    layer = widget.layer
    widget._threshold.value = float(layer.features["score"].min())
    widget.next()
    current = widget.queue.current
    scores = layer.features["score"].to_numpy()
    others = [int(i) for i in np.argsort(scores) if i != current][:2]  # the two lowest
    annotated = layer.data[[current, *others]]
    widget._session.value = annotate(tmp_path, annotated, tuple(layer.scale[-3:]))
    widget.score()
    assert "TP 3" in widget._score_result.value and "FN 0" in widget._score_result.value
    widget.reject()
    widget.score()
    assert "TP 2" in widget._score_result.value and "FN 1" in widget._score_result.value
    assert scores[others].max() < 0.99
    widget._threshold.value = float(scores[others].max()) + 0.01  # hides both
    widget.score()
    assert "TP 0" in widget._score_result.value and "FN 3" in widget._score_result.value


def test_score_explains_missing_tables_and_other_voxel_sizes(detected, tmp_path, monkeypatch):
    _, widget = detected
    shown = []
    monkeypatch.setattr(spine_detection, "show_error", shown.append)
    widget.score()
    assert "Choose an annotated stack" in shown[-1]
    layer = widget.layer
    stack = annotate(tmp_path, layer.data[:3], (1.0, 0.5, 0.5))
    widget._session.value = stack
    widget.score()
    assert "voxel size" in shown[-1]
    (tmp_path / "s_dendrites.csv").unlink()
    widget.score()
    assert "missing s_dendrites.csv" in shown[-1]
    assert widget._score_result.value == ""


def test_time_series_gets_a_time_axis_and_scoring_says_it_needs_one_stack(
    make_napari_viewer, qtbot, monkeypatch
):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "two_photon")
    stack = viewer.layers["two-photon"]
    series = viewer.add_image(
        np.stack([stack.data, stack.data]), name="series", scale=(1.0, *stack.scale)
    )
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spine detection")
    widget._image.value = series
    widget._model.value = "spine-dog"
    widget.run()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    times = widget.layer.data[:, 0]
    assert widget.layer.data.shape[1] == 4 and set(times) == {0.0, 1.0}
    shown = []
    monkeypatch.setattr(spine_detection, "show_error", shown.append)
    widget.score()
    assert "time series" in shown[-1]
