"""The Training data widget and the autosave journal, in napari under Xvfb.

A crash is simulated by closing the viewer without saving; a new viewer showing the same
detections (or labels) then offers to restore the edits from the journal.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image, Labels
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_spines._widgets._app import PLUGIN
from napari_spines._widgets._layers import same_layer
from napari_spines._widgets._task import show_now
from napari_spines.io.labels_tiff import read_edit_log
from napari_spines.settings import TRAINING_STORE, save_setting, training_store
from napari_spines.spines.detection import Detections
from napari_spines.synthetic import synthetic_em, synthetic_two_photon
from napari_spines.training import journal
from napari_spines.training.store import load_store
from tests.models.tiny import cells_stack, make_edge_affinity_package

pytestmark = pytest.mark.gui

VOXEL = (1.0, 0.2, 0.2)


@pytest.fixture(autouse=True)
def settings(tmp_path, monkeypatch):
    """The user's settings stay untouched: a settings file of this test only."""
    monkeypatch.setenv("NAPARI_SPINES_CONFIG", str(tmp_path / "settings.json"))
    return tmp_path / "settings.json"


@pytest.fixture
def notes(monkeypatch) -> list:
    """Every notification shown during the test, as (severity, message)."""
    shown: list = []
    monkeypatch.setattr(notification_manager, "catch_error", False, raising=False)
    notification_manager.notification_ready.connect(
        lambda n: shown.append((n.severity, str(n.message)))
    )
    yield shown
    notification_manager.notification_ready.disconnect()


@pytest.fixture(scope="module")
def sample():
    return synthetic_two_photon(shape=(12, 96, 96), voxel_size_um=VOXEL, seed=3)


def detections(sample) -> Detections:
    coords = sample.spines[:8].astype(float)
    return Detections(coords, np.linspace(0.95, 0.55, len(coords)), VOXEL)


def review_three(make_napari_viewer, sample):
    """A viewer whose detections got: accept, reject, and one spine added by hand."""
    viewer = make_napari_viewer()
    image = viewer.add_image(sample.image, name="dendrite", scale=VOXEL)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Spine detection")
    widget._threshold.value = 0.5
    show_now(widget.show_detections(image, detections(sample), model="spine-dog"))
    widget.accept()
    widget.reject()
    widget.layer.add(np.array([[6.0, 40.0, 40.0]]))
    return viewer, widget


def test_the_review_survives_a_crash_and_restores(make_napari_viewer, sample, notes):
    viewer, widget = review_three(make_napari_viewer, sample)
    statuses = widget.layer.features["status"].tolist()
    assert sorted(statuses).count("auto") == 6 and {"accepted", "rejected", "added"} <= set(
        statuses
    )
    assert widget.layer.metadata["model"]["name"] == "spine-dog"
    assert len(widget.layer.metadata["model"]["weights_sha256"]) == 64
    coords = np.asarray(widget.layer.data).copy()
    path = widget.journal.path
    assert path.parent == training_store() / "journal" and len(journal.read_states(path)) == 3
    viewer.close()  # a crash: nothing saved

    again = make_napari_viewer()
    image = again.add_image(sample.image, name="dendrite", scale=VOXEL)
    _, fresh = again.window.add_plugin_dock_widget(PLUGIN, "Spine detection")
    assert not fresh.restore_button.enabled  # nothing shown yet
    show_now(fresh.show_detections(image, detections(sample)))
    assert set(fresh.layer.features["status"]) == {"auto"}
    assert fresh.restore_button.enabled and fresh.restore_button.text.endswith("(3)")
    assert any("Unsaved edits wait" in message for _, message in notes)
    fresh.restore()
    assert fresh.layer.features["status"].tolist() == statuses
    np.testing.assert_allclose(fresh.layer.data, coords, atol=1e-3)
    assert not fresh.restore_button.enabled
    assert fresh._counts.value == "9 spines: 3 reviewed, 6 to review"  # as the restore said
    fresh.next()
    fresh.accept()  # and is journalled again, in the same journal
    states = journal.read_states(path)
    assert len(states) == 4
    assert states[-1]["status"] == fresh.layer.features["status"].tolist()


def test_editing_without_restoring_keeps_the_old_journal_aside(make_napari_viewer, sample):
    viewer, widget = review_three(make_napari_viewer, sample)
    path = widget.journal.path
    viewer.close()
    again = make_napari_viewer()
    image = again.add_image(sample.image, name="dendrite", scale=VOXEL)
    _, fresh = again.window.add_plugin_dock_widget(PLUGIN, "Spine detection")
    show_now(fresh.show_detections(image, detections(sample)))
    earlier = set(path.parent.glob("*.done-*.jsonl"))  # other tests' journals may be aside too
    fresh.reject()  # declined: a new journal begins, the old one is renamed, not lost
    assert not fresh.restore_button.enabled
    assert len(journal.read_states(path)) == 1
    (old,) = set(path.parent.glob("*.done-*.jsonl")) - earlier
    assert len(journal.read_states(old)) == 3


def docked_training_data(viewer, store: Path):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Training data")
    widget._store.value = str(store)
    return widget


def wait(widget, qtbot) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)


def test_saving_reviewed_spines_round_trip(make_napari_viewer, sample, qtbot, tmp_path, notes):
    store = tmp_path / "store"
    save_setting(TRAINING_STORE, str(store))  # where the journal goes, and the widget's default
    viewer, spines = review_three(make_napari_viewer, sample)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Training data")
    assert widget.store == store
    wait(widget, qtbot)
    assert "empty" in widget._contents.value
    image = viewer.layers["dendrite"]
    widget._corrections.value = spines.layer
    widget._image.value = image
    z = 6.0  # a rectangle drawn in one plane: every plane of its y/x box
    rectangle = np.array([[z, 0, 0], [z, 0, 95.0], [z, 95.0, 95.0], [z, 95.0, 0]])
    widget._region.value = viewer.add_shapes(
        [rectangle], shape_type="rectangle", scale=VOXEL, name="region"
    )
    widget._within.value = 5.0
    journal_file = spines.journal.path
    assert journal_file.is_file()
    assert widget.save() is not None
    wait(widget, qtbot)
    (entry,) = load_store(store).entries
    assert entry.record["box"] == [0, 0, 0, 12, 96, 96]
    assert entry.record["region"] == {"near": "shaft", "within_um": 5.0}
    assert entry.record["model"]["name"] == "spine-dog"
    counts = entry.record["counts"]
    assert (counts["accepted"], counts["rejected"], counts["added"], counts["auto"]) == (1, 1, 1, 6)
    assert any(f"saved entry {entry.id} (" in m and "1 accepted" in m for _, m in notes)
    assert not journal_file.exists()  # saved: the journal is done (kept, renamed)
    assert list(journal_file.parent.glob("*.done-*.jsonl"))
    assert "spines: 1 entry (1 newest)" in widget._contents.value
    assert widget._entry.value is not None and widget._entry.value.id == entry.id
    opened = widget.open_entry()
    assert [layer.name for layer in opened] == [f"{entry.id} image", f"{entry.id} spines"]
    for layer in opened:
        np.testing.assert_allclose(layer.scale, VOXEL)
    assert opened[1].features["status"].tolist().count("rejected") == 1
    assert opened[0].data.shape == (12, 96, 96)


def test_a_region_and_dendrites_crop_the_entry(make_napari_viewer, sample, qtbot, tmp_path):
    viewer, spines = review_three(make_napari_viewer, sample)
    widget = docked_training_data(viewer, tmp_path / "store")
    widget._corrections.value = spines.layer
    widget._image.value = viewer.layers["dendrite"]
    box3d = np.array([[2.0, 10, 20], [2, 10, 70], [9, 60, 70], [9, 60, 20]])
    widget._region.value = viewer.add_shapes([box3d], shape_type="polygon", scale=VOXEL)
    path = np.array([[5.0, 20, 30], [5, 50, 60]])
    widget._dendrites.value = viewer.add_shapes([path], shape_type="path", scale=VOXEL)
    widget.save()
    wait(widget, qtbot)
    (entry,) = load_store(widget.store).entries
    assert entry.record["box"] == [2, 10, 20, 10, 61, 71]
    assert entry.record["region"]["near"] == "dendrites" and entry.has("dendrites.csv")
    assert len(widget.open_entry()) == 3


def test_saving_proofread_labels_with_their_edit_log(make_napari_viewer, qtbot, tmp_path):
    em = synthetic_em(shape=(8, 64, 64), seed=1)
    viewer = make_napari_viewer()
    image = viewer.add_image(em.image, name="em", scale=em.voxel_size_um)
    labels = viewer.add_labels(em.labels.astype(np.uint32), name="proofread")
    labels.metadata.update(
        edits=[{"operation": "merge", "ids": [1, 2], "new_ids": [1]}], painted=2, model={}
    )
    widget = docked_training_data(viewer, tmp_path / "store")
    widget._corrections.value, widget._image.value = labels, image
    widget.save()
    wait(widget, qtbot)
    (entry,) = load_store(widget.store).entries
    assert entry.task == "labels"
    assert entry.record["counts"]["merged"] == 1 and entry.record["counts"]["painted"] == 2
    assert '"merge"' in read_edit_log(entry.path("labels.tif"))
    opened = widget.open_entry()
    assert all(isinstance(layer, kind) for layer, kind in zip(opened, (Image, Labels), strict=True))
    np.testing.assert_array_equal(opened[1].data, em.labels)
    np.testing.assert_allclose(opened[1].scale, em.voxel_size_um)


def errors(notes) -> list[str]:
    return [m for severity, m in notes if severity == NotificationSeverity.ERROR]


def test_bad_input_is_a_notification(make_napari_viewer, qtbot, tmp_path, notes):
    viewer = make_napari_viewer()
    widget = docked_training_data(viewer, tmp_path / "store")
    assert widget.save() is None
    assert "Choose the corrections" in errors(notes)[-1]
    points = viewer.add_points(np.zeros((2, 3)), name="plain points")
    widget._corrections.value = points
    assert widget.save() is None and "Choose the image" in errors(notes)[-1]
    widget._image.value = viewer.add_image(np.zeros((4, 16, 16), np.uint16), name="stack")
    assert widget.save() is None and "no review statuses" in errors(notes)[-1]
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    points.features = {"status": ["accepted", "rejected"]}
    widget._store.value = str(blocker / "store")
    assert training_store() == blocker / "store"  # the choice is remembered
    assert widget.save() is None and "Cannot write to the store folder" in errors(notes)[-1]
    widget._store.value = str(tmp_path / "store")
    widget._region.value = viewer.add_shapes(name="empty region", ndim=3)
    assert widget.save() is None and "has no shape" in errors(notes)[-1]
    assert widget.open_entry() == [] and "Choose an entry" in errors(notes)[-1]
    assert widget.restore() is None and "No unsaved spine edits" in errors(notes)[-1]
    wait(widget, qtbot)
    assert viewer.layers[-1].name == "empty region"  # the viewer lives on


def test_a_damaged_store_is_listed_with_its_problems(make_napari_viewer, qtbot, tmp_path, notes):
    from napari_spines.training.store import add_spines

    store = tmp_path / "store"
    entry = add_spines(store, np.zeros((4, 8, 8), np.uint16), VOXEL, [[1, 2, 3]], ["accepted"])
    entry.path("points.csv").write_text("damaged")
    viewer = make_napari_viewer()
    widget = docked_training_data(viewer, store)
    wait(widget, qtbot)
    assert "2 problems:" in widget._contents.value and "sha256 differs" in widget._contents.value
    assert any(s == NotificationSeverity.WARNING and "problems" in m for s, m in notes)


def test_the_training_data_widget_restores_spines_left_unsaved(
    make_napari_viewer, sample, qtbot, tmp_path
):
    viewer, _ = review_three(make_napari_viewer, sample)
    viewer.close()
    again = make_napari_viewer()
    image = again.add_image(sample.image, name="dendrite", scale=VOXEL)
    widget = docked_training_data(again, training_store())
    widget._image.value = image
    assert widget.restore_button.enabled and widget.restore_button.text.endswith("(3)")
    layer = widget.restore()
    assert layer.name == "dendrite spines (restored)"
    assert sorted(set(layer.features["status"])) == ["accepted", "added", "auto", "rejected"]
    np.testing.assert_allclose(layer.scale, VOXEL)
    assert same_layer(widget._corrections.value, layer)
    widget.save()
    wait(widget, qtbot)
    assert len(load_store(widget.store).entries) == 1 and not widget.restore_button.enabled


# -- labels: the Segmentation widget's journal ---------------------------------------------------


@pytest.fixture(scope="module")
def edge_package(tmp_path_factory):
    return make_edge_affinity_package(tmp_path_factory.mktemp("edge") / "edge-affinity")


def segment(make_napari_viewer, qtbot, edge_package):
    target = Path(os.environ["NAPARI_SPINES_MODELS"]) / "edge-affinity"
    if not target.exists():
        shutil.copytree(edge_package, target)
    viewer = make_napari_viewer()
    image, _ = cells_stack()
    layer = viewer.add_image(image, name="cells", scale=(0.05, 0.004, 0.004))
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segmentation")
    widget._image.value, widget._model.value, widget._mode.value = layer, "edge-affinity", "3d"
    widget.run()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert widget.labels_layer is not None
    return viewer, widget


def test_proofreading_survives_a_crash_and_replays(make_napari_viewer, qtbot, edge_package):
    viewer, widget = segment(make_napari_viewer, qtbot, edge_package)
    labels = widget.labels_layer.data
    ids = np.setdiff1d(np.unique(labels), [0])
    voxel = [np.argwhere(labels == i)[0].astype(float) for i in ids[:3]]
    widget.points_layer.data = voxel[:2]
    assert widget.proofreading.merge() is not None
    widget.points_layer.data = voxel[2:3]
    assert widget.proofreading.delete() is not None
    assert widget.proofreading.undo() is not None and widget.proofreading.redo() is not None
    labels[0, :2, :3] = 77  # a brush stroke, as napari reports it
    stroke = (np.zeros(6, int), *np.indices((2, 3)).reshape(2, -1))
    widget.labels_layer.events.paint(value=[(stroke, None, 77)])
    assert widget.labels_layer.metadata["painted"] == 1
    assert [e["operation"] for e in widget.labels_layer.metadata["edits"]] == ["merge", "delete"]
    edited = labels.copy()
    assert widget.labels_layer.metadata["model"]["name"] == "edge-affinity"
    viewer.close()

    _, fresh = segment(make_napari_viewer, qtbot, edge_package)
    assert fresh.proofreading.restore_button.enabled
    assert fresh.proofreading.restore_button.text.endswith("(5)")
    assert fresh.proofreading.restore() == 5
    np.testing.assert_array_equal(fresh.labels_layer.data, edited)
    assert [e["operation"] for e in fresh.labels_layer.metadata["edits"]] == ["merge", "delete"]
    a, b = np.setdiff1d(np.unique(edited), [0, 77])[:2]
    fresh.points_layer.data = [np.argwhere(edited == a)[0], np.argwhere(edited == b)[0]]
    fresh.proofreading.merge()  # the replayed labels are indexed first, then merged
    metadata = fresh.labels_layer.metadata
    qtbot.waitUntil(lambda: len(metadata["edits"]) == 3, timeout=30_000)
    assert [e["operation"] for e in metadata["edits"]] == ["merge", "delete", "merge"]
    assert len(journal.read_states(fresh.proofreading.journal.journal.path)) == 7
