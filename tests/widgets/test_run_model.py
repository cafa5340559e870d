"""The Run model widget end to end under Xvfb, with a tiny real ONNX model."""

import numpy as np
import pytest

from napari_spines._widgets._app import PLUGIN
from napari_spines.io.layers import prediction_layer_data

pytestmark = pytest.mark.gui


@pytest.fixture
def widget_and_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Run model")
    return widget, viewer


def test_run_model_adds_output_layer_with_the_image_scale(widget_and_viewer, tiny_package, qtbot):
    widget, viewer = widget_and_viewer
    data = np.random.default_rng(0).random((6, 40, 40)).astype(np.float32)
    image = viewer.add_image(data, name="stack", scale=(1.0, 0.12, 0.12), units=("micrometer",) * 3)
    widget._image.value = image
    widget._model_path.value = str(tiny_package)
    widget.run()
    assert widget.task.busy and not widget._run.enabled
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert len(viewer.layers) == 2
    output = viewer.layers[-1]
    assert output.data.shape == data.shape
    assert tuple(output.scale) == (1.0, 0.12, 0.12)
    assert tuple(output.units) == tuple(image.units)  # else napari stops rendering units
    assert widget._run.enabled


def test_builtin_model_is_listed_and_default(widget_and_viewer):
    widget, _ = widget_and_viewer
    assert "spine-dog" in widget._model.choices


def test_rgb_layers_are_not_offered_and_run_without_image_says_so(widget_and_viewer, monkeypatch):
    from napari_spines._widgets import run_model

    shown = []
    monkeypatch.setattr(run_model, "show_error", shown.append)
    widget, viewer = widget_and_viewer
    viewer.add_image(np.zeros((4, 30, 30, 3), np.uint8), rgb=True, name="rgb")
    assert widget._image.choices == ()  # RGB images are not offered
    widget.run()
    assert not widget.task.busy
    assert shown == ["Choose an image layer and a model first."]


def test_cancel_leaves_no_layer(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    viewer.add_image(
        np.random.default_rng(1).random((32, 256, 256)).astype(np.float32), scale=(1.0, 0.24, 0.24)
    )
    widget._model.value = "spine-dog"
    widget._tile.value = "4 32 32"
    cancelled = []
    widget.task.cancelled.connect(lambda: cancelled.append(True))
    widget.run()
    qtbot.waitUntil(lambda: widget.task.bar.value() > 0, timeout=30_000)
    widget.task.cancel()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=30_000)
    assert cancelled == [True] and len(viewer.layers) == 1


def test_bad_tile_text_is_refused_before_running(widget_and_viewer, monkeypatch):
    from napari_spines._widgets import run_model

    shown = []
    monkeypatch.setattr(run_model, "show_error", shown.append)
    widget, viewer = widget_and_viewer
    viewer.add_image(np.zeros((4, 8, 8)))
    widget._tile.value = "32 x"
    widget.run()
    assert not widget.task.busy and shown and "tile" in shown[0]


def test_affinities_become_rgb_with_x_red():
    from types import SimpleNamespace as NS

    result = np.zeros((3, 2, 4, 4), np.float32)
    result[0] = 0.1  # z
    result[1] = 0.5  # y
    result[2] = 0.9  # x
    output = NS(name="affinities", channels=3, offsets=((-1, 0, 0), (0, -1, 0), (0, 0, -1)))
    ((rgb, meta, kind),) = prediction_layer_data(result, [output], "em", (0.05, 0.01, 0.01))
    assert kind == "image" and meta["rgb"] and rgb.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(rgb[0, 0, 0], [0.9, 0.5, 0.1])


def test_the_default_model_fits_the_image_voxel_size(widget_and_viewer):
    widget, viewer = widget_and_viewer
    data = np.zeros((4, 32, 32), np.float32)
    em = viewer.add_image(data, name="em", scale=(0.05, 0.004, 0.004))
    two_photon = viewer.add_image(data, name="2p", scale=(1.0, 0.12, 0.12))
    widget._image.value = em
    assert widget._model.value == "em-affinity"
    widget._image.value = two_photon
    assert widget._model.value == "spine-2p"
    assert "em-affinity" in widget._model.choices  # every model stays available
