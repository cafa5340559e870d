"""The Restore widget in napari under Xvfb, with the identity ``restore-em`` package.

``identity_em_package`` (tests/conftest.py) returns its input, so the restored layer must be
linear upsampling of the image, 4× finer in y and x, laid exactly over it.
"""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_spines._widgets._app import PLUGIN
from napari_spines._widgets.restoration import RestorationWidget
from napari_spines.restoration.baselines import linear
from napari_spines.restoration.restore import output_placement
from tests.restoration.packages import GOOD_VOXEL, INPUT_VOXEL

pytestmark = pytest.mark.gui


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
    return [m for severity, m in notes if severity == NotificationSeverity.ERROR]


def docked(viewer) -> RestorationWidget:
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Restore")
    assert isinstance(widget, RestorationWidget)
    return widget


def edges(layer) -> np.ndarray:
    """World coordinates of the first and last voxel edges of ``layer``, per axis."""
    scale, translate = np.asarray(layer.scale), np.asarray(layer.translate)
    shape = np.asarray(layer.data.shape)
    return np.stack([translate - scale / 2, translate + (shape - 0.5) * scale])


def wait(widget, qtbot) -> None:
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)


@pytest.fixture
def em() -> np.ndarray:
    return (np.random.default_rng(0).random((3, 32, 32)) * 1000 + 100).astype(np.float32)


def test_the_dock_widget_opens_from_the_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = docked(viewer)
    assert widget._run.text == "Restore"
    assert not widget.task.busy


def test_restoring_an_em_layer_adds_a_4x_finer_layer_over_it(
    make_napari_viewer, qtbot, identity_em_package, em, notes
):
    viewer = make_napari_viewer()
    image = viewer.add_image(em, name="em", scale=INPUT_VOXEL, translate=(0.0, 1.0, 2.0))
    widget = docked(viewer)
    widget._image.value = image
    widget._model_path.value = str(identity_em_package)
    widget.run()
    assert widget.task.busy and not widget._run.enabled
    wait(widget, qtbot)
    assert not errors(notes), errors(notes)
    assert widget._run.enabled
    assert [layer.name for layer in viewer.layers] == ["em", "em restored"]
    restored = viewer.layers["em restored"]
    assert restored.data.shape == (3, 128, 128)
    scale, translate = output_placement(image.scale, image.translate, (1.0, 4.0, 4.0))
    assert tuple(restored.scale) == pytest.approx(GOOD_VOXEL)
    assert tuple(restored.scale) == pytest.approx(scale)
    assert tuple(restored.translate) == pytest.approx(translate)
    assert tuple(restored.translate) == pytest.approx((0.0, 1.0 - 0.006, 2.0 - 0.006))
    np.testing.assert_allclose(restored.data, linear(em, (1, 4, 4)), rtol=1e-3, atol=1.0)
    assert restored.metadata["restored_by"] == "restore-em@0.1.0"
    # the voxel edges coincide: the fine grid lies exactly over the coarse one
    np.testing.assert_allclose(edges(restored), edges(image), atol=1e-9)


def test_restoring_again_updates_the_layer(make_napari_viewer, qtbot, identity_em_package, em):
    viewer = make_napari_viewer()
    image = viewer.add_image(em, name="em", scale=INPUT_VOXEL)
    widget = docked(viewer)
    widget._image.value = image
    widget._model_path.value = str(identity_em_package)
    for _ in range(2):
        widget.run()
        wait(widget, qtbot)
    assert [layer.name for layer in viewer.layers] == ["em", "em restored"]


def test_a_2d_layer_is_restored(make_napari_viewer, qtbot, identity_em_package, em, notes):
    viewer = make_napari_viewer()
    image = viewer.add_image(em[0], name="slice", scale=INPUT_VOXEL[1:])
    widget = docked(viewer)
    widget._image.value = image
    widget._model_path.value = str(identity_em_package)
    widget.run()
    wait(widget, qtbot)
    assert not errors(notes), errors(notes)
    restored = viewer.layers["slice restored"]
    assert restored.data.shape == (128, 128)
    assert tuple(restored.scale) == pytest.approx(GOOD_VOXEL[1:])
    assert tuple(restored.translate) == pytest.approx((-0.006, -0.006))


def test_a_channel_axis_is_refused_with_an_error(
    make_napari_viewer, qtbot, identity_em_package, em, notes
):
    viewer = make_napari_viewer()
    channels = np.stack([em, em])  # CZYX
    image = viewer.add_image(
        channels, name="two channels", scale=(1.0, *INPUT_VOXEL), metadata={"axes": "CZYX"}
    )
    widget = docked(viewer)
    widget._image.value = image
    widget._model_path.value = str(identity_em_package)
    widget.run()
    wait(widget, qtbot)
    assert any("one channel" in m for m in errors(notes)), notes
    assert [layer.name for layer in viewer.layers] == ["two channels"]
    assert widget._run.enabled


def test_without_an_image_it_says_so(make_napari_viewer, qtbot, identity_em_package, notes):
    viewer = make_napari_viewer()
    widget = docked(viewer)
    widget._model_path.value = str(identity_em_package)
    widget.run()
    wait(widget, qtbot)
    assert any("Choose an image layer" in m for m in errors(notes)), notes
    assert len(viewer.layers) == 0


def test_a_model_of_another_task_fails_with_one_line(make_napari_viewer, qtbot, em, notes):
    viewer = make_napari_viewer()
    image = viewer.add_image(em, name="em", scale=INPUT_VOXEL)
    widget = docked(viewer)
    widget._image.value = image
    assert str(widget._model_path.value) == "."  # no package given: the combo's model is run
    widget._model.choices = ["spine-dog"]  # not a restoration model: refused by the task check
    widget._model.value = "spine-dog"
    widget.run()
    wait(widget, qtbot)
    found = errors(notes)
    assert found and "restoration" in found[-1] and "\n" not in found[-1], notes
    assert [layer.name for layer in viewer.layers] == ["em"]


def test_an_installed_model_is_proposed_for_an_em_layer_and_runs_by_name(
    make_napari_viewer, qtbot, identity_em_package, em, notes
):
    import os
    import shutil
    from pathlib import Path

    from napari_spines.models import clear_cache

    shutil.copytree(identity_em_package, Path(os.environ["NAPARI_SPINES_MODELS"]) / "restore-em")
    clear_cache()
    viewer = make_napari_viewer()
    viewer.add_image(em, name="em", scale=INPUT_VOXEL)
    widget = docked(viewer)
    assert widget._model.value == "restore-em"
    widget.run()
    wait(widget, qtbot)
    assert not errors(notes), errors(notes)
    assert viewer.layers["em restored"].data.shape == (3, 128, 128)


def test_another_voxel_size_shows_a_warning(
    make_napari_viewer, qtbot, identity_em_package, em, notes
):
    viewer = make_napari_viewer()
    image = viewer.add_image(em, name="em", scale=(0.05, 0.02, 0.02))
    widget = docked(viewer)
    widget._image.value = image
    widget._model_path.value = str(identity_em_package)
    widget.run()
    wait(widget, qtbot)
    warned = [m for s, m in notes if s == NotificationSeverity.WARNING]
    assert any("trained on" in m for m in warned), notes
    restored = viewer.layers["em restored"]
    assert restored.data.shape == (3, 160, 160)  # read onto the model's 0.004 µm grid
    assert tuple(restored.scale) == pytest.approx(GOOD_VOXEL)
    np.testing.assert_allclose(edges(restored), edges(image), atol=1e-9)
