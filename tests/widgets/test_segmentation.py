"""The Segmentation widget in napari under Xvfb: segment, tune, score, proofread, save."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_spines._widgets._app import PLUGIN
from napari_spines._widgets._task import show_now
from tests.models.tiny import cells_stack, make_edge_affinity_package

pytestmark = pytest.mark.gui

#: The edge-affinity model's voxel size: the stack is not resampled.
VOXEL = (0.05, 0.004, 0.004)


def press(layer, key):
    """Call the function bound to ``key`` (e.g. ``"shift+m"``) on ``layer``, as napari does."""
    (action,) = [f for k, f in layer.keymap.items() if str(k).lower() == key]
    action(layer)


def segment_ids(labels):
    return np.setdiff1d(np.unique(labels), [0])


def n_segments(labels):
    return len(segment_ids(labels))


def voxel_of(labels, segment, which=0):
    """A voxel of ``segment`` (the first in C order, or ``which``-th)."""
    return np.argwhere(labels == segment)[which].astype(float)


def rand_error(widget):
    match = re.search(r"adapted Rand error ([0-9.]+)", widget.ground_truth._metrics.value)
    assert match, widget.ground_truth._metrics.value
    return float(match.group(1))


@pytest.fixture(scope="session")
def edge_package(tmp_path_factory):
    """The deterministic affinity model (bright voxels are cells), built once."""
    return make_edge_affinity_package(tmp_path_factory.mktemp("edge") / "edge-affinity")


@pytest.fixture
def installed(edge_package):
    """The edge-affinity model in this test's user model folder."""
    target = Path(os.environ["NAPARI_SPINES_MODELS"]) / "edge-affinity"
    shutil.copytree(edge_package, target)
    return target


@pytest.fixture
def viewer_and_widget(make_napari_viewer, installed):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")
    return viewer, widget


@pytest.fixture
def segmented(viewer_and_widget, qtbot):
    """The cells stack segmented with 3D fragments; the ground truth is a layer (not chosen)."""
    viewer, widget = viewer_and_widget
    image, truth = cells_stack()
    layer = viewer.add_image(image, name="cells", scale=VOXEL, translate=(0.0, 0.1, 0.2))
    viewer.add_labels(truth, name="truth", scale=VOXEL, translate=(0.0, 0.1, 0.2))
    widget._image.value = layer
    widget._model.value = "edge-affinity"
    widget._mode.value = "3d"
    widget.run()
    assert widget.task.busy and not widget._run.enabled
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert widget.segmentation is not None, widget._status.value
    return viewer, widget, truth


def choose_truth(widget, viewer, qtbot, name="truth"):
    widget.ground_truth._truth.value = viewer.layers[name]
    qtbot.waitUntil(lambda: not widget.metrics_busy, timeout=30_000)


def test_only_affinity_models_are_offered(viewer_and_widget):
    _, widget = viewer_and_widget
    assert widget._model.choices[0] == "em-affinity"  # the built-in default comes first
    assert "edge-affinity" in widget._model.choices
    assert "spine-dog" not in widget._model.choices  # a spine model is not offered
    widget._model.value = "edge-affinity"
    assert widget._threshold.value == pytest.approx(0.5)  # the model's threshold


def test_docked_after_the_layers_it_offers_them(make_napari_viewer, installed):
    viewer = make_napari_viewer()
    image, truth = cells_stack()
    viewer.add_image(image, name="cells")
    viewer.add_labels(truth, name="truth")
    viewer.add_labels(truth[:2], name="other shape")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")
    assert widget._image.value is not None
    assert [c.name for c in widget.ground_truth._truth.choices if c is not None] == ["truth"]
    assert widget.ground_truth._truth.current_choice == "none"
    widget.ground_truth._truth.value = viewer.layers["truth"]
    viewer.layers["truth"].name = "renamed truth"
    assert widget.ground_truth._truth.current_choice == "renamed truth"


def test_segment_adds_rgb_affinities_and_labels_and_scores_the_truth(segmented, qtbot):
    viewer, widget, truth = segmented
    image = viewer.layers["cells"]
    affinities = viewer.layers["cells affinities"]
    labels = viewer.layers["cells segmentation"]
    assert affinities.rgb and affinities.data.shape == (*truth.shape, 3)
    assert labels.data.dtype == np.uint32 and labels.data.shape == truth.shape
    for layer in (affinities, labels, widget.points_layer):
        np.testing.assert_allclose(layer.scale, image.scale)
        np.testing.assert_allclose(layer.translate, image.translate)
    assert widget._run.enabled
    assert n_segments(labels.data) == n_segments(truth) == 12
    assert widget.ground_truth._metrics.value == "no ground truth chosen"
    assert "cells segmentation" not in [
        c.name for c in widget.ground_truth._truth.choices if c is not None
    ]
    choose_truth(widget, viewer, qtbot)
    assert rand_error(widget) < 0.01
    assert "VOI split" in widget.ground_truth._metrics.value


def test_a_late_score_does_not_overwrite_an_unset_truth(segmented, qtbot):
    viewer, widget, _ = segmented
    widget.ground_truth._truth.value = viewer.layers["truth"]
    assert widget.metrics_busy  # scored in a worker
    widget.ground_truth._truth.value = None  # before the score arrives
    qtbot.waitUntil(lambda: not widget.metrics_busy, timeout=30_000)
    assert widget.ground_truth._metrics.value == "no ground truth chosen"


def test_running_again_updates_the_layers_in_place(segmented, qtbot):
    viewer, widget, _ = segmented
    labels = viewer.layers["cells segmentation"]
    labels.data[:] = 0
    widget.run()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert viewer.layers["cells segmentation"] is labels and n_segments(labels.data) == 12
    names = [layer.name for layer in viewer.layers]
    assert len(names) == len(set(names)) == 5  # image, truth, affinities, labels, points


def test_threshold_slider_relabels_without_rerunning(segmented, qtbot, monkeypatch):
    viewer, widget, _ = segmented
    runs = []
    monkeypatch.setattr(widget.task, "run", lambda *a, **k: runs.append(a))
    choose_truth(widget, viewer, qtbot)
    before = n_segments(widget.labels_layer.data)
    widget._threshold.value = 0.3
    widget._threshold.value = 0.1  # merges less: more segments
    assert widget.relabel_busy and n_segments(widget.labels_layer.data) == before
    qtbot.waitUntil(lambda: not widget.relabel_busy, timeout=30_000)
    assert n_segments(widget.labels_layer.data) > before
    np.testing.assert_array_equal(widget.labels_layer.data, widget.segmentation.labels(0.1))
    assert widget.proofreader.labels is widget.labels_layer.data  # proofreading follows
    qtbot.waitUntil(lambda: not widget.metrics_busy, timeout=30_000)
    assert rand_error(widget) > 0.01  # the score follows the threshold
    assert runs == []


def test_moving_the_slider_discards_proofreading_edits(segmented, qtbot):
    _, widget, _ = segmented
    labels = widget.labels_layer.data
    a, b = segment_ids(labels)[:2]
    widget.points_layer.data = [voxel_of(labels, a), voxel_of(labels, b)]
    assert widget.proofreading.merge() is not None and len(widget.proofreader.edits) == 1
    widget._threshold.value = 0.3
    qtbot.waitUntil(lambda: not widget.relabel_busy, timeout=30_000)
    widget._threshold.value = 0.5
    assert widget.proofreading.merge() is None  # no edit while the labels are being remade
    qtbot.waitUntil(lambda: not widget.relabel_busy, timeout=30_000)
    assert widget.proofreader.edits == []
    assert n_segments(widget.labels_layer.data) == 12


def test_merge_by_points_then_undo_restores_exactly_and_redo_again(segmented, qtbot, monkeypatch):
    viewer, widget, _ = segmented
    choose_truth(widget, viewer, qtbot)
    layer = widget.labels_layer
    refreshed = []
    refresh = layer.refresh
    monkeypatch.setattr(layer, "refresh", lambda *a, **k: (refreshed.append(1), refresh(*a, **k)))
    original = layer.data.copy()
    a, b = segment_ids(original)[:2]
    widget.points_layer.data = [voxel_of(original, a), voxel_of(original, b)]
    press(widget.points_layer, "shift+m")
    merged = layer.data.copy()
    assert n_segments(merged) == 11 and len(np.intersect1d([a, b], np.unique(merged))) == 1
    assert len(widget.points_layer.data) == 0  # the points are used up
    assert refreshed  # the layer shows the edit
    assert widget.proofreader.labels is layer.data  # edited in place
    qtbot.waitUntil(lambda: not widget.metrics_busy, timeout=30_000)
    assert rand_error(widget) > 0.01  # a false merge shows in the score
    press(layer, "shift+u")
    np.testing.assert_array_equal(layer.data, original)
    qtbot.waitUntil(lambda: not widget.metrics_busy, timeout=30_000)
    assert rand_error(widget) < 0.01
    press(layer, "shift+r")
    np.testing.assert_array_equal(layer.data, merged)
    qtbot.waitUntil(lambda: not widget.metrics_busy, timeout=30_000)
    assert rand_error(widget) > 0.01


def test_merge_one_point_with_the_selected_label(segmented):
    _, widget, _ = segmented
    labels = widget.labels_layer.data
    a, b = segment_ids(labels)[:2]
    widget.labels_layer.selected_label = int(a)
    widget.points_layer.data = [voxel_of(labels, b)]
    edit = widget.proofreading.merge()
    assert edit is not None and sorted(edit.ids) == sorted([int(a), int(b)])
    assert widget.labels_layer.selected_label == edit.new_ids[0]


def test_split_with_two_seed_points(segmented):
    _, widget, _ = segmented
    labels = widget.labels_layer.data
    ids, counts = np.unique(labels, return_counts=True)
    segment = int(ids[np.argmax(counts)])
    inside = np.argwhere(labels == segment)
    first = inside[np.argmin(inside[:, 2])].astype(float)  # its left and right ends
    second = inside[np.argmax(inside[:, 2])].astype(float)
    widget.points_layer.data = [first, second]
    press(widget.points_layer, "shift+s")
    assert n_segments(labels) == 13
    assert labels[tuple(first.astype(int))] == segment
    assert labels[tuple(second.astype(int))] not in (0, segment)
    assert widget.proofreader.edits[-1].operation == "split"


def test_a_merge_split_again_reassigns_whole_fragments(segmented, monkeypatch):
    """The widget hands the agglomeration's fragments to the proofreader: no voxel watershed."""
    from napari_spines.segmentation import proofreading

    _, widget, _ = segmented
    labels = widget.labels_layer.data
    before = labels.copy()
    a, b = segment_ids(labels)[:2]
    seeds = [voxel_of(labels, a), voxel_of(labels, b)]
    widget.points_layer.data = seeds
    widget.proofreading.merge()
    assert labels[tuple(seeds[0].astype(int))] == labels[tuple(seeds[1].astype(int))]
    monkeypatch.setattr(proofreading, "watershed", None)  # a voxel split would fail
    widget.points_layer.data = seeds
    assert widget.proofreading.split() is not None
    pieces = [labels[tuple(s.astype(int))] for s in seeds]
    assert pieces[0] != pieces[1]
    for piece, original in zip(pieces, (a, b), strict=True):
        np.testing.assert_array_equal(labels == piece, before == original)


def test_split_points_on_two_segments_are_refused_with_a_message(segmented, monkeypatch):
    from napari_spines._widgets import segmentation

    shown = []
    monkeypatch.setattr(segmentation, "show_error", shown.append)
    _, widget, _ = segmented
    labels = widget.labels_layer.data
    before = labels.copy()
    a, b = segment_ids(labels)[:2]
    widget.points_layer.data = [voxel_of(labels, a), voxel_of(labels, b)]
    assert widget.proofreading.split() is None
    np.testing.assert_array_equal(labels, before)
    assert len(shown) == 1 and "one segment" in shown[0]
    assert len(widget.points_layer.data) == 2  # kept, to be moved


def test_delete_the_selected_segment_or_the_one_under_a_point(segmented):
    _, widget, _ = segmented
    labels = widget.labels_layer.data
    ids = segment_ids(labels)
    widget.labels_layer.selected_label = int(ids[0])
    press(widget.labels_layer, "shift+d")
    assert ids[0] not in labels and n_segments(labels) == 11
    widget.points_layer.data = [voxel_of(labels, ids[1])]
    press(widget.points_layer, "shift+d")
    assert ids[1] not in labels and n_segments(labels) == 10
    assert [e.operation for e in widget.proofreader.edits] == ["delete", "delete"]


def test_fill_holes_of_the_selected_segment_after_painting(segmented, qtbot):
    from scipy import ndimage as ndi

    _, widget, _ = segmented
    labels = widget.labels_layer.data
    ids, counts = np.unique(labels, return_counts=True)
    target = int(ids[np.argmax(counts)])
    interior = np.argwhere(ndi.binary_erosion(labels == target, np.ones((3, 3, 3), bool)))
    hole = tuple(interior[len(interior) // 2])
    widget.labels_layer.data_setitem(tuple(np.array([[c] for c in hole])), 0)  # a brush click
    assert labels[hole] == 0
    widget.labels_layer.selected_label = target
    press(widget.labels_layer, "shift+f")
    # the painted labels are indexed in a worker, not on napari's thread; then the fill runs
    assert widget.index_busy and labels[hole] == 0
    qtbot.waitUntil(lambda: not widget.index_busy, timeout=30_000)
    assert labels[hole] == target
    assert widget.proofreader.edits[-1].operation == "fill_holes"
    assert widget.proofreader.voxel_count(target) == counts.max()  # reindexed after painting


def test_napari_undo_of_a_brush_stroke_reaches_the_proofreading_index(segmented, qtbot):
    _, widget, _ = segmented
    layer = widget.labels_layer
    labels = layer.data
    ids, counts = np.unique(labels, return_counts=True)
    target = int(ids[np.argmax(counts)])
    voxel = tuple(np.argwhere(labels == target)[0])
    layer.data_setitem(tuple(np.array([[c] for c in voxel])), 0)  # a brush click
    layer.selected_label = target
    press(layer, "shift+f")  # the proofreader indexes the painted labels
    qtbot.waitUntil(lambda: not widget.index_busy, timeout=30_000)
    assert widget.proofreader.voxel_count(target) == counts.max() - 1
    press(layer, "ctrl+z")  # napari's undo of the stroke: the voxel is the target's again
    assert labels[voxel] == target
    press(layer, "shift+f")  # the next edit must index the restored voxel
    qtbot.waitUntil(lambda: not widget.index_busy, timeout=30_000)
    assert widget.proofreader.voxel_count(target) == counts.max()


def test_only_the_latest_request_runs_after_indexing(segmented, qtbot):
    _, widget, _ = segmented
    layer = widget.labels_layer
    labels = layer.data
    voxel = tuple(np.argwhere(labels > 0)[0])
    layer.data_setitem(tuple(np.array([[c] for c in voxel])), 0)  # a brush click
    layer.selected_label = int(np.unique(labels)[-1])
    assert widget.proofreading.delete() is None and widget.index_busy  # waits for the index
    assert widget.proofreading.next_segment() is None  # a newer request replaces it
    qtbot.waitUntil(lambda: not widget.index_busy, timeout=30_000)
    assert widget.proofreader.edits == []  # the delete did not run
    assert layer.selected_label == widget.proofreader.next_segment("largest")


def test_next_segment_selects_the_largest_and_moves_the_view(segmented):
    viewer, widget, _ = segmented
    labels = widget.labels_layer.data
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    viewer.dims.set_point(0, 0.0)
    viewer.scene.camera.center = (0.0, -1.0, -1.0)  # far outside the stack
    press(widget.points_layer, "shift+n")
    assert widget.labels_layer.selected_label == order[0]
    z_world = viewer.dims.point[0]
    centre = (z_world, *viewer.scene.camera.center[-2:])
    voxel = np.round(widget.labels_layer.world_to_data(centre)).astype(int)
    assert labels[tuple(voxel)] == order[0]  # slider and camera on a voxel of the segment
    press(widget.labels_layer, "shift+n")
    assert widget.labels_layer.selected_label == order[1]


def test_next_least_confident_uses_the_agglomeration(segmented):
    _, widget, _ = segmented
    widget.proofreading._order.value = "least confident"
    confidence = widget.segmentation.agglomeration.confidence(widget._threshold.value)
    assert widget.proofreading.next_segment() == min(confidence, key=lambda i: (confidence[i], i))


def test_keys_are_bound_on_the_labels_and_points_layers(segmented):
    _, widget, _ = segmented
    for layer in (widget.labels_layer, widget.points_layer):
        bound = {str(k).lower() for k in layer.keymap}
        assert bound >= {
            "shift+m",
            "shift+s",
            "shift+d",
            "shift+f",
            "shift+n",
            "shift+u",
            "shift+r",
        }


def test_wrong_shape_truth_says_so_in_the_metrics(segmented, qtbot):
    viewer, widget, _ = segmented
    other, other_truth = cells_stack(shape=(4, 32, 32))
    viewer.add_image(other, name="other", scale=VOXEL)
    viewer.add_labels(other_truth, name="other truth", scale=VOXEL)
    widget._image.value = viewer.layers["other"]  # the truth choice follows the image shape
    assert [c.name for c in widget.ground_truth._truth.choices if c is not None] == ["other truth"]
    choose_truth(widget, viewer, qtbot, "other truth")
    assert "must match" in widget.ground_truth._metrics.value


def test_cancel_stops_the_run_and_adds_nothing(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    image, _ = cells_stack(shape=(48, 256, 256), n_cells=80)
    widget._image.value = viewer.add_image(image, scale=VOXEL)
    widget._model.value = "edge-affinity"
    widget._mode.value = "2d"  # progress (and the chance to stop) per section
    cancelled = []
    widget.task.cancelled.connect(lambda: cancelled.append(True))
    widget.task.progressed.connect(lambda *_: widget.task.cancel())
    widget.run()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert cancelled == [True] and len(viewer.layers) == 1
    assert widget.segmentation is None and widget._status.value == "cancelled"
    assert widget._run.enabled


def test_a_2d_image_gives_one_clear_message_and_no_layer(viewer_and_widget, monkeypatch):
    from napari_spines._widgets import segmentation

    shown = []
    monkeypatch.setattr(segmentation, "show_error", shown.append)
    viewer, widget = viewer_and_widget
    widget._image.value = viewer.add_image(np.zeros((64, 64), np.uint8), name="plane")
    widget._model.value = "edge-affinity"
    widget.run()
    assert not widget.task.busy and len(viewer.layers) == 1
    assert len(shown) == 1 and "3D stack" in shown[0]
    assert widget._status.value == shown[0]


def test_a_spine_model_is_refused_with_a_clear_message(
    viewer_and_widget, tiny_package, monkeypatch
):
    from napari_spines._widgets import segmentation

    shown = []
    monkeypatch.setattr(segmentation, "show_error", shown.append)
    viewer, widget = viewer_and_widget
    image, _ = cells_stack()
    widget._image.value = viewer.add_image(image, scale=VOXEL)
    widget._model_path.value = str(tiny_package)
    widget.run()
    assert not widget.task.busy and len(viewer.layers) == 1
    assert len(shown) == 1 and "is a spine-detection model, not affinities" in shown[0]


def test_proofreading_before_segmenting_says_so(viewer_and_widget, monkeypatch):
    from napari_spines._widgets import segmentation

    shown = []
    monkeypatch.setattr(segmentation, "show_error", shown.append)
    _, widget = viewer_and_widget
    assert widget.proofreading.merge() is None and widget.proofreading.next_segment() is None
    assert shown == ["Segment an image first."] * 2


def test_save_writes_the_tiff_and_the_edit_log(segmented, tmp_path):
    from napari_spines.io import read_volumes
    from napari_spines.segmentation.edit_log import load_log

    _, widget, _ = segmented
    labels = widget.labels_layer.data
    a, b = segment_ids(labels)[:2]
    widget.points_layer.data = [voxel_of(labels, a), voxel_of(labels, b)]
    widget.proofreading.merge()
    tiff, log = widget.proofreading.save(tmp_path / "cells.tif")
    assert tiff == tmp_path / "cells.tif" and log == tmp_path / "cells.edits.json"
    volume = read_volumes(tiff)[0]
    np.testing.assert_array_equal(np.asarray(volume.levels[0]), labels)
    assert volume.voxel_size_um == pytest.approx(VOXEL, rel=1e-3)
    (edit,) = load_log(log)
    assert edit["operation"] == "merge" and sorted(edit["ids"]) == sorted([int(a), int(b)])


def test_labels_of_a_stack_without_a_voxel_size_warn_when_saved(segmented, tmp_path):
    from napari_spines.errors import DataWarning

    viewer, widget, _ = segmented
    image = viewer.layers["cells"]
    image.metadata["voxel_size_known"] = False  # as our reader marks a file without one
    show_now(widget.show_segmentation(image, (widget.session, widget.session.relabel(0.5))))
    assert widget.labels_layer.metadata["voxel_size_known"] is False
    _, message = widget.proofreading.save(tmp_path / "cells.tif"), widget._status.value
    assert "assumed" in message and "Voxel size" in message
    with pytest.warns(DataWarning, match="assumed voxel size"):
        widget.labels_layer.save(str(tmp_path / "via-napari.tif"), plugin="napari-spines")


def test_the_line_below_segment_says_what_a_stack_without_voxel_size_is_taken_for(
    viewer_and_widget, qtbot
):
    """No voxel size: the mode is estimated from the stack and shown before Run; a given size
    or a chosen mode replaces the assumption."""
    from napari_spines.synthetic import synthetic_em

    viewer, widget = viewer_and_widget
    isotropic = synthetic_em(shape=(12, 96, 96), n_cells=12, seed=0, voxel_size_um=(0.008,) * 3)
    # as the reader opens a file without a voxel size
    layer = viewer.add_image(isotropic.image, name="fibsem", metadata={"voxel_size_known": False})
    widget._image.value = layer
    widget._model.value = "edge-affinity"

    def line() -> str:  # made in a worker: estimating the anisotropy reads the stack
        qtbot.waitUntil(lambda: not widget.settings_line.busy, timeout=30_000)
        return widget.settings_line.label.value

    assert "no voxel size" in line() and "mode 3d" in line() and "Voxel size" in line()
    widget._mode.value = "2d"
    assert "mode 2d as asked" in line()
    widget._mode.value = "auto"
    layer.scale = VOXEL
    layer.metadata["voxel_size_known"] = True
    widget.reset_choices()
    widget._image.changed.emit(layer)
    assert "from the voxel size" in line() and "mode 2d" in line()
    widget.run()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    labels = viewer.layers["fibsem segmentation"].data
    assert not ((labels[1:] == labels[:-1]) & (labels[1:] > 0)).any()  # 2d: cut at each section
