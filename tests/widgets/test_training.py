"""The Train model widget under Xvfb: checks, a short real training run, Cancel."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_spines._widgets._app import PLUGIN
from napari_spines.io.points_csv import write_points_csv
from napari_spines.synthetic import synthetic_two_photon

pytestmark = pytest.mark.gui


def write_session(folder, name, seed):
    """A synthetic session: NAME.tif with its spine and dendrite tables."""
    sample = synthetic_two_photon(shape=(16, 128, 128), seed=seed)
    tifffile.imwrite(
        folder / f"{name}.tif",
        sample.image,
        imagej=True,
        resolution=(1 / 0.12, 1 / 0.12),
        metadata={"axes": "ZYX", "spacing": 1.0, "unit": "um"},
    )
    n = len(sample.spines)
    write_points_csv(
        folder / f"{name}_spines.csv",
        sample.spines,
        sample.voxel_size_um,
        {"id": np.arange(n), "is_bad": np.zeros(n, int)},
    )
    centre_line = np.argwhere(sample.dendrite_mask)[::20]
    write_points_csv(
        folder / f"{name}_dendrites.csv",
        centre_line,
        sample.voxel_size_um,
        {"segment_id": np.zeros(len(centre_line), int)},
    )


@pytest.fixture
def widget(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Train model")
    for name, seed in (("a", 1), ("b", 2)):
        write_session(tmp_path, name, seed)
    widget._data.value = tmp_path
    widget._train.value = "a"
    widget._validate.value = "b"
    widget._out.value = tmp_path / "run"
    return widget


def test_choosing_a_data_folder_proposes_its_sessions(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Train model")
    assert widget._train.value == widget._validate.value == ""  # no data set's names
    for name, seed in (("day1", 1), ("day2", 2), ("day3", 3)):
        write_session(tmp_path, name, seed)
    (tmp_path / "unannotated.tif").write_bytes(b"")
    widget._data.value = tmp_path
    assert widget._train.value == "day1 day2"
    assert widget._validate.value == "day3"


def test_training_without_a_data_folder_says_so(widget, tmp_path):
    widget._data.value = tmp_path / "nowhere"
    widget.run()
    assert not widget.task.busy and "data folder" in widget._status.value


def test_a_missing_session_is_one_clear_line(widget, qtbot):
    widget._train.value = "a missing"
    widget.run()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert widget.result is None
    assert "missing.tif: no such file" in widget._status.value
    assert "\n" not in widget._status.value


def test_the_defaults_are_those_of_the_train_commands(widget):
    import inspect

    from napari_spines.cli import build_parser
    from napari_spines.training import affinity, spines

    for model, train in (("spines", spines.train), ("affinities", affinity.train)):
        cli = build_parser().parse_args(
            ["train", model, "--data", "d", "--out", "o"]
            + ["--train", "a", "--validate", "b"] * (model == "spines")
        )
        defaults = inspect.signature(train).parameters
        assert cli.width == defaults["width"].default
        assert cli.lr == defaults["lr"].default == widget._lr.value
        assert cli.seed == defaults["seed"].default == widget._seed.value
        assert widget._width.value == cli.width, model
        widget._model.value = "em-affinity (EM affinities)"  # the next model


def test_em_affinity_hides_the_session_names(widget):
    assert widget._recipe.native.isHidden()  # spine-2p has one recipe
    widget._model.value = "em-affinity (EM affinities)"
    assert not widget._train.visible and not widget._validate.visible
    assert not widget._recipe.native.isHidden() and widget._recipe.value == "long-range"
    assert not widget._every_section.native.isHidden() and not widget._every_section.value
    assert not widget._defects.native.isHidden() and not widget._defects.value
    assert str(widget._out.value).endswith("em-affinity")


@pytest.mark.timed
def test_training_makes_a_scored_package(widget, qtbot):
    widget._minutes.value = 0.4
    widget._width.value, widget._lr.value, widget._seed.value = 4, 0.00035, 7
    reports = []
    widget.task.progressed.connect(lambda done, total: reports.append((done, total)))
    widget.run()
    assert widget.task.busy and not widget._run.enabled
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=300_000)
    assert (24, 24) in reports  # the bar counts seconds of the 24 s budget ...
    assert reports[-1] == (0, 0)  # ... then moves without a count while exporting and scoring
    assert widget.result is not None and (widget.result.package / "model.onnx").exists()
    assert "b: F1" in widget._status.value and widget._run.enabled
    # the model card's command line trains the same model: width, lr and seed included
    import shlex

    from napari_spines.cli import build_parser
    from napari_spines.models import open_package

    command = open_package(widget.result.package).spec.training["command"]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.what, args.train, args.validate) == ("spines", ["a"], "b")
    assert (args.width, args.lr, args.seed, args.minutes) == (4, 0.00035, 7, 0.4)
    assert args.out == widget._out.value and args.data == widget._data.value


def test_cancel_stops_training(widget, qtbot):
    widget._minutes.value = 30.0
    widget.run()
    qtbot.waitUntil(lambda: widget.task.bar.maximum() == 30 * 60, timeout=120_000)
    widget.task.cancel()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)
    assert widget.result is None and "cancelled" in widget._status.value


def test_em_affinity_trains_on_the_stack_and_labels_open_in_the_viewer(
    widget, qtbot, tmp_path, monkeypatch
):
    from napari_spines.synthetic import synthetic_em
    from tests.training.test_affinity_training import write_em_folder

    write_em_folder(tmp_path / "em")
    mine = synthetic_em(shape=(6, 40, 40), n_cells=4, seed=3)
    viewer = widget._viewer
    image = viewer.add_image(mine.image, name="mine")
    viewer.add_labels(mine.labels.astype(np.uint32), name="mine proofread")
    viewer.add_labels(np.zeros((2, 8, 8), np.uint32), name="other shape")
    widget._model.value = "em-affinity (EM affinities)"
    assert not widget._own_image.native.isHidden() and not widget._own_labels.native.isHidden()
    widget._data.value = tmp_path / "em"
    widget._own_image.value = image
    assert [name for name, _ in widget._labels_choices()] == ["mine proofread"]
    widget.run()  # a stack without its labels
    assert not widget.task.busy and "both" in widget._status.value
    widget._own_labels.value = viewer.layers["mine proofread"]
    sent = record_child_jobs(monkeypatch)
    widget._minutes.value = 0.2
    widget._out.value = tmp_path / "run"
    widget._recipe.value = "boundary"
    widget._every_section.value = widget._defects.value = True
    widget.run()
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=300_000)
    assert widget.result is not None, widget._status.value
    # the recipe chosen is the one trained
    from napari_spines.models import open_package

    assert "interior" in open_package(widget.result.package).spec.description
    # the training process got this stack and its labels (the core test checks they are used)
    _, options = sent[0]
    stack, labels, name = options["own"]
    np.testing.assert_array_equal(stack, mine.image)
    np.testing.assert_array_equal(labels, mine.labels)
    assert name == "mine proofread"
    # ... and the two checkboxes: every section trains, none chooses; defects augment
    assert options["every_section"] and options["defects"]
    command = open_package(widget.result.package).spec.training["command"]
    assert "--recipe boundary --every-section --section-defects" in command
    assert command.endswith("(and --add with the viewer's layers 'mine' and 'mine proofread')")
    assert "em_shipped_settings" in widget.result.summary


def record_child_jobs(monkeypatch) -> list[tuple]:
    """Spy on what the Train widget hands to its child process."""
    from napari_spines._widgets import training

    sent: list[tuple[tuple, dict]] = []
    real = training.run_in_child

    def recording(func, *args, **kwargs):
        sent.append((args, kwargs))
        return real(func, *args, **kwargs)

    monkeypatch.setattr(training, "run_in_child", recording)
    return sent
