"""The Fine-tune widget under Xvfb: detect → review → save → fine-tune → detect with the new model.

Also Cancel (nothing written) and bad input (one clear notification each, never a traceback).
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
import yaml
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_spines._widgets._app import PLUGIN
from napari_spines._widgets._plot import MetricPlot
from napari_spines.models import find_model, list_models
from napari_spines.synthetic import synthetic_two_photon
from napari_spines.training.store import add_spines, load_store, model_record

pytestmark = pytest.mark.gui

VOXEL = (1.0, 0.24, 0.24)  # spine-2p's own voxel size: no resampling
WAIT_MS = 420_000  # a ceiling: a loaded 2-core machine takes ~3 minutes


@pytest.fixture(autouse=True)
def settings(tmp_path, monkeypatch):
    """The user's settings, data and model folders stay untouched."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("NAPARI_SPINES_CONFIG", str(tmp_path / "settings.json"))
    monkeypatch.setenv("NAPARI_SPINES_MODELS", str(tmp_path / "user-models"))


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


def errors(notes) -> list[str]:
    return [m for s, m in notes if s == NotificationSeverity.ERROR]


@pytest.fixture(scope="module")
def sample():
    return synthetic_two_photon(shape=(12, 160, 160), voxel_size_um=VOXEL, seed=4, n_dendrites=3)


def distance_um(points: np.ndarray, spines: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest true spine, in µm."""
    gaps = (points[:, None] - spines[None]) * np.asarray(VOXEL)
    return np.linalg.norm(gaps, axis=2).min(1)


def spine_store(folder, sample):
    """A store with one spines entry: the true spines accepted, three rejected."""
    statuses = ["accepted"] * len(sample.spines)
    statuses[:3] = ["rejected"] * 3
    model = model_record(find_model("spine-2p"))
    add_spines(folder, sample.image, VOXEL, sample.spines, statuses, model=model)
    return folder


def finetune_widget(viewer, qtbot, store):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune")
    widget._store.value = str(store)
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    widget._device.value = "cpu"
    return widget


def test_detect_review_save_finetune_and_detect_with_the_new_model(
    make_napari_viewer, qtbot, tmp_path, sample, notes, monkeypatch
):
    threads = []
    add = MetricPlot.add

    def add_and_note_thread(self, record):
        threads.append(threading.current_thread())
        add(self, record)

    monkeypatch.setattr(MetricPlot, "add", add_and_note_thread)
    viewer = make_napari_viewer()
    image = viewer.add_image(sample.image, name="dendrite", scale=VOXEL)
    _, detection = viewer.window.add_plugin_dock_widget(PLUGIN, "Spine detection")
    detection._image.value = image
    detection._model.value = "spine-2p"
    detection._device.value = "cpu"
    detection.run()
    qtbot.waitUntil(lambda: not detection.task.busy, timeout=60_000)
    layer = detection.layer
    assert layer is not None and len(layer.data) > 10
    # review: accept what lies on a true spine, reject the rest; add a missed spine by hand
    queue = detection.queue
    for _ in range(len(queue.order)):
        index = queue.current if queue.current is not None else int(queue.order[0])
        near = distance_um(layer.data[[index]], sample.spines)[0] < 1.0
        (detection.accept if near else detection.reject)()
    missed = sample.spines[np.argmax(distance_um(sample.spines, layer.data))]
    layer.add(missed[None].astype(float))
    statuses = layer.features["status"].tolist()
    assert statuses.count("accepted") >= 10 and "rejected" in statuses
    assert statuses[-1] == "added"

    store = tmp_path / "store"
    _, saver = viewer.window.add_plugin_dock_widget(PLUGIN, "Training data")
    saver._store.value = str(store)
    saver._corrections.value = layer
    saver._image.value = image
    assert saver.save() is not None
    qtbot.waitUntil(lambda: not saver.busy, timeout=30_000)
    (entry,) = load_store(store).entries
    assert entry.record["counts"]["added"] == 1

    widget = finetune_widget(viewer, qtbot, store)
    assert widget._contents.value == "1 spines entry (newest versions)"
    assert widget._model.current_choice == "spine-2p"
    out = tmp_path / "models"
    assert str(widget._out.value).startswith(str(out / "spine-2p-finetuned-"))
    widget._minutes.value = 0.5
    widget._replay.value = str(store)  # the store itself stands in for older training data
    progress = []
    widget.task.progressed.connect(lambda done, total: progress.append((done, total)))
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=WAIT_MS)
    assert not errors(notes), errors(notes)
    tuned = widget.result
    assert tuned is not None and (tuned.package / "model.yaml").is_file()
    name = tuned.package.name
    assert name.startswith("spine-2p-finetuned-")
    card = yaml.safe_load((tuned.package / "model.yaml").read_text())
    assert card["training"]["replay_data"]["entries"][0]["id"] == entry.id
    assert any(total == 30 for _, total in progress)  # seconds of the budget
    # the live plot: the model as it was (step 0, no loss), then validations while training
    records = widget.plot.records
    assert records[0]["step"] == 0 and "loss" not in records[0]
    assert len(records) >= 2 and all("f1" in r for r in records)
    assert len(widget.plot.points) == len(records)
    assert threads and all(t is threading.main_thread() for t in threads)
    assert any(tuned.summary in m for _, m in notes)
    # the new model is registered and offered by the widgets
    assert name in [p.spec.name for p in list_models()]
    combo = widget._model.native
    assert name in [combo.itemText(i) for i in range(combo.count())]
    assert str(tuned.package.resolve()) in [str(v) for v in widget._model.choices]
    assert name in detection._model.choices
    assert str(widget._out.value) != str(tuned.package)  # the next run goes elsewhere

    detection._model.value = name
    detection.run()
    qtbot.waitUntil(lambda: not detection.task.busy, timeout=60_000)
    assert detection.layer is not layer and len(detection.layer.data) > 0
    assert detection.layer.metadata["model"]["name"] == name
    assert not errors(notes), errors(notes)


def test_cancel_stops_at_the_next_step_and_writes_nothing(
    make_napari_viewer, qtbot, tmp_path, sample, notes
):
    viewer = make_napari_viewer()
    widget = finetune_widget(viewer, qtbot, spine_store(tmp_path / "store", sample))
    out = tmp_path / "out" / "tuned"
    widget._out.value = str(out)
    widget._minutes.value = 5.0
    widget.task.progressed.connect(lambda done, total: total > 0 and widget.task.cancel())
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=WAIT_MS)
    assert widget.result is None
    assert widget._status.value == "cancelled, nothing written"
    assert any("nothing written" in m for _, m in notes)
    assert not out.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir()))
    assert "tuned" not in [p.spec.name for p in list_models()]
    assert not errors(notes)


def test_bad_input_is_one_clear_notification(make_napari_viewer, qtbot, tmp_path, sample, notes):
    viewer = make_napari_viewer()
    empty = tmp_path / "empty"
    empty.mkdir()
    widget = finetune_widget(viewer, qtbot, empty)
    assert widget._contents.value == "the store is empty"
    assert widget.run() is None
    assert str(empty) in errors(notes)[-1] and "holds no spines entries" in errors(notes)[-1]

    widget._store.value = str(tmp_path / "nowhere")
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert "no such folder" in widget._contents.value
    assert widget.run() is None and "does not exist" in errors(notes)[-1]

    store = spine_store(tmp_path / "store", sample)
    widget._store.value = str(store)
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    widget._model.value = str(find_model("em-affinity").root)
    assert widget.run() is None and "holds no labels entries" in errors(notes)[-1]
    widget._model.value = str(find_model("spine-2p").root)
    widget._replay.value = str(tmp_path / "no-replay")
    assert widget.run() is None and "no such replay store folder" in errors(notes)[-1]
    widget._replay.value = ""

    widget._model.value = str(find_model("spine-2p").root)
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    (crowded / "notes.txt").write_text("mine")
    widget._out.value = str(crowded)
    assert widget.run() is None and "not a model package" in errors(notes)[-1]

    widget._out.value = str(tmp_path / "out")
    widget._model.value = str(find_model("spine-dog").root)  # torch weights, but no U-Net
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert "not a napari-spines U-Net" in errors(notes)[-1]
    assert "not a napari-spines U-Net" in widget._status.value

    assert all("Traceback" not in m and "\n" not in m for m in errors(notes))
    assert not (tmp_path / "out").exists()


def test_without_torch_the_install_hint_is_shown(
    make_napari_viewer, qtbot, tmp_path, sample, notes, monkeypatch
):
    viewer = make_napari_viewer()
    widget = finetune_widget(viewer, qtbot, spine_store(tmp_path / "store", sample))
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    assert widget.run() is None  # said before a process starts
    assert not widget.task.busy
    assert "needs PyTorch" in errors(notes)[-1] and "pip install" in errors(notes)[-1]
    assert widget.result is None and "needs PyTorch" in widget._status.value
