"""The Sessions widget in napari under Xvfb: tracking, export, bad input, the next session."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from napari.layers import Points, Tracks
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_spines._widgets._app import PLUGIN
from napari_spines._widgets.sessions import DYNAMICS_COLOURS, SessionsWidget
from napari_spines.sessions.dynamics import SessionDynamics
from napari_spines.sessions.linking import link_score
from napari_spines.synthetic import synthetic_two_photon

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def sample():
    return synthetic_two_photon(shape=(12, 96, 96), n_timepoints=3, seed=1)


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


def docked(viewer) -> SessionsWidget:
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Sessions")
    assert isinstance(widget, SessionsWidget)
    return widget


def wait(widget, qtbot) -> None:
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=60_000)


def per_session(t: np.ndarray, ids: np.ndarray, n: int) -> list[np.ndarray]:
    return [np.asarray(ids)[np.asarray(t) == i] for i in range(n)]


@pytest.fixture
def tracked(make_napari_viewer, qtbot, sample):
    """The sample's 4D image and its true spines, tracked in the widget."""
    viewer = make_napari_viewer()
    scale = (1.0, *sample.voxel_size_um)
    image = viewer.add_image(sample.image, name="sessions", scale=scale)
    truth = viewer.add_points(
        sample.spines, name="truth", scale=scale, features={"id": sample.spine_ids}
    )
    widget = docked(viewer)
    widget._sessions.value = [image]
    widget._points.value = [truth]
    assert widget.track() is not None
    wait(widget, qtbot)
    return viewer, widget


def test_tracking_the_true_spines_finds_the_true_links(tracked, sample):
    viewer, widget = tracked
    points = viewer.layers["tracked spines"]
    tracks = viewer.layers["spine tracks"]
    assert isinstance(points, Points) and isinstance(tracks, Tracks)
    assert tuple(points.scale) == pytest.approx((1.0, *sample.voxel_size_um))
    np.testing.assert_allclose(points.data, sample.spines, atol=1e-6)  # same rows, same order
    found = per_session(points.data[:, 0], points.features["track_id"], 3)
    truth = per_session(sample.spines[:, 0], sample.spine_ids, 3)
    assert link_score(truth, found) == (1.0, 1.0, 1.0)
    # every spine is coloured by the class of its track
    assert set(points.features["dynamics"]) <= set(DYNAMICS_COLOURS)
    first = points.features["dynamics"].iloc[0]
    np.testing.assert_allclose(
        points.face_color[0][:3],
        [int(DYNAMICS_COLOURS[first][k : k + 2], 16) / 255 for k in (1, 3, 5)],
        atol=1e-2,
    )
    # tracks: track_id, t, z, y, x, sorted by track then t
    data = np.asarray(tracks.data)
    assert data.shape == (len(sample.spines), 5)
    assert (np.lexsort((data[:, 1], data[:, 0])) == np.arange(len(data))).all()
    counts = [r.count for r in widget.tracked.dynamics]
    assert counts == [int((sample.spines[:, 0] == t).sum()) for t in range(3)]
    assert widget._counts.value.startswith(f"t0: {counts[0]} · t1: {counts[1]} (+")
    assert widget.plot.isVisible() or not widget.native.isVisible()


def test_export_writes_tracks_dynamics_and_plot(tracked, tmp_path):
    _, widget = tracked
    widget._export_path.value = str(tmp_path / "out" / "rr.csv")
    written = widget.export()
    assert [p.name for p in written] == ["rr.csv", "rr_dynamics.csv", "rr_dynamics.png"]
    with open(written[0], newline="") as fh:
        header = next(csv.reader(fh))
    assert header == list(widget.tracked.table(widget.voxel_um))
    with open(written[1], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(SessionDynamics(0, 0, None, None, None, None, None).row())
    assert [int(r["count"]) for r in rows] == [d.count for d in widget.tracked.dynamics]
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in written
    )  # no temporaries left


def test_bad_input_is_one_clear_notification(make_napari_viewer, notes, sample):
    viewer = make_napari_viewer()
    widget = docked(viewer)
    voxel = sample.voxel_size_um
    assert widget.export() == [] and "Track sessions first" in errors(notes)[-1]
    assert widget.track() is None and "Choose the sessions" in errors(notes)[-1]
    first = viewer.add_image(sample.image[0], name="t0", scale=voxel)
    widget._sessions.value = [first]
    assert widget.track() is None
    assert errors(notes)[-1] == "tracking needs at least two sessions, got 1"
    other = viewer.add_image(sample.image[1], name="t1", scale=(2.0, *voxel[1:]))
    widget._sessions.value = [first, other]
    assert widget.track() is None and "voxel size" in errors(notes)[-1]
    other.scale = voxel
    points = viewer.add_points(sample.spines[sample.spines[:, 0] == 0, 1:], scale=voxel)
    widget._points.value = [points]
    assert widget.track() is None
    assert "2 sessions need 2 points layers" in errors(notes)[-1]
    widget.proposals._previous.value = widget.proposals._next.value = first
    assert widget.proposals.propose() is None and "two different images" in errors(notes)[-1]
    widget.proposals._next.value = other
    widget.proposals._previous_points.value = viewer.add_points(sample.spines, name="4D")
    assert widget.proposals.propose() is None and "4D is not 3D" in errors(notes)[-1]
    assert [layer.name for layer in viewer.layers] == ["t0", "t1", "Points", "4D"]
    assert not widget.task.busy


@pytest.fixture
def proposed(make_napari_viewer, qtbot, sample):  # ask for notes first to see its messages
    """The sample's t1 proposed from its true t0 spines (with their track ids), with spine-dog."""
    viewer = make_napari_viewer()
    voxel = sample.voxel_size_um
    first = viewer.add_image(sample.image[0], name="t0", scale=voxel)
    second = viewer.add_image(sample.image[1], name="t1", scale=voxel)
    at0 = sample.spines[:, 0] == 0
    spines = viewer.add_points(
        sample.spines[at0, 1:],
        name="t0 spines",
        scale=voxel,
        features={"track_id": sample.spine_ids[at0]},
    )
    widget = docked(viewer)
    widget._model.value = "spine-dog"
    widget.proposals._previous.value, widget.proposals._previous_points.value = first, spines
    widget.proposals._next.value = second
    assert widget.proposals.propose() is not None
    wait(widget, qtbot)
    return viewer, widget


def test_propose_next_session_adds_carried_and_new_spines(notes, proposed, sample):
    viewer, _ = proposed
    voxel = sample.voxel_size_um
    at0 = sample.spines[:, 0] == 0
    layer = viewer.layers["t1 proposed spines"]
    statuses = set(layer.features["status"])
    assert len(layer.data) > 0 and statuses <= {"carried", "new"}
    assert set(layer.features.columns) >= {"status", "track_id", "score"}
    doubt = layer.features["doubt"].to_numpy()
    assert (np.diff(doubt) <= 0).all()  # the most doubtful first
    carried = layer.features["track_id"][layer.features["status"] == "carried"]
    assert set(carried) <= set(sample.spine_ids[at0])
    assert tuple(layer.scale) == pytest.approx(voxel)
    assert any("not found" in m for _, m in notes)
    assert not errors(notes)


def test_3d_sessions_are_tracked_with_detected_spines(make_napari_viewer, qtbot, notes, sample):
    viewer = make_napari_viewer()
    voxel = sample.voxel_size_um
    layers = [
        viewer.add_image(stack, name=f"t{t}", scale=voxel) for t, stack in enumerate(sample.image)
    ]
    widget = docked(viewer)
    widget._sessions.value = layers
    widget._model.value = "spine-dog"
    assert widget.track() is not None
    wait(widget, qtbot)
    points = viewer.layers["tracked spines"]
    assert set(np.unique(points.data[:, 0])) <= {0.0, 1.0, 2.0}
    assert tuple(points.scale) == pytest.approx((1.0, *voxel))
    assert len(widget.tracked.dynamics) == 3 and not errors(notes)


def ids_by_session(points) -> list[list[int]]:
    return [
        points.features["track_id"][points.data[:, 0] == t].tolist()
        for t in np.unique(points.data[:, 0])
    ]


def test_split_merge_relink_and_undo_edit_the_layers_and_dynamics(tracked, notes):
    viewer, widget = tracked
    points = viewer.layers["tracked spines"]
    before = ids_by_session(points)
    counts_before = widget._counts.value
    rows = np.flatnonzero(points.data[:, 0] == 1)
    row = int(rows[0])
    old = int(points.features["track_id"][row])
    # split the track of the first spine of t1 there: t1 on is a new track
    points.selected_data = {row}
    said = widget.edits.split()
    assert said is not None and said.startswith(f"track {old} split before session 1")
    assert points.selected_data == {row}  # the selection stays for the next edit
    new = int(points.features["track_id"][row])
    assert new != old and widget.tracked.classes[new] in {"gained", "transient"}
    assert widget._counts.value != counts_before  # t1 gains one, loses one
    tracks = np.asarray(viewer.layers["spine tracks"].data)
    assert new in set(tracks[:, 0].astype(int))
    assert points.face_color[row][:3] == pytest.approx(
        [
            int(DYNAMICS_COLOURS[widget.tracked.classes[new]][k : k + 2], 16) / 255
            for k in (1, 3, 5)
        ],
        abs=1e-2,
    )
    # merge the two halves again: select a spine of each
    earlier = int(
        np.flatnonzero((points.data[:, 0] == 0) & (points.features["track_id"] == old))[0]
    )
    points.selected_data = {earlier, row}
    assert widget.edits.merge() == f"track {new} merged into track {old} (sessions 0–2)"
    assert ids_by_session(points) == before
    # relink that spine to a new track of its own, then undo it, and undo the merge
    points.selected_data = {row}
    widget.edits._to_track.value = 0
    assert widget.edits.relink().endswith(f"moved to track {new}")  # the free id again
    assert widget.edits.undo().startswith("undone: session 1")
    assert widget.edits.undo().startswith(f"undone: track {new} merged")
    assert int(points.features["track_id"][row]) == new
    widget.edits.undo()
    assert ids_by_session(points) == before and widget._counts.value == counts_before
    assert not widget.edits._undo.enabled
    # exported tracks are the edited ones
    points.selected_data = {row}
    widget.edits.split()
    assert widget.tracked.table(widget.voxel_um)["track_id"][row] == new
    assert not errors(notes)


def test_a_track_edit_that_cannot_be_made_is_one_message(tracked, notes):
    viewer, widget = tracked
    points = viewer.layers["tracked spines"]
    before = ids_by_session(points)
    points.selected_data = set()
    assert (
        widget.edits.relink() is None and errors(notes)[-1] == "Select one spine to relink, not 0."
    )
    points.selected_data = {0}
    assert (
        widget.edits.split() is None
        and "split it at a session after its first" in errors(notes)[-1]
    )
    assert (
        widget.edits.merge() is None and "Select two spines of two different" in errors(notes)[-1]
    )
    both = np.flatnonzero(points.data[:, 0] == 0)[:2]
    points.selected_data = set(both.tolist())
    assert widget.edits.merge() is None and "both have a spine in session" in errors(notes)[-1]
    points.selected_data = set()
    points.add([1.0, 5.0, 40.0, 40.0])
    points.selected_data = {0}
    assert widget.edits.relink() is None and "track the sessions again" in errors(notes)[-1]
    assert [ids.tolist() for ids in widget.tracked.track_ids] == before


def test_traced_dendrites_give_densities_per_um(make_napari_viewer, qtbot, notes, sample):
    viewer = make_napari_viewer()
    voxel = sample.voxel_size_um
    scale = (1.0, *voxel)
    image = viewer.add_image(sample.image, name="sessions", scale=scale)
    truth = viewer.add_points(sample.spines, name="truth", scale=scale)
    # t0 and t1: one 40-voxel path along x each, as Shapes; t2: no trace
    paths = [np.array([[t, 5, 20, 10], [t, 5, 20, 30], [t, 5, 20, 50]], float) for t in (0, 1)]
    traced = viewer.add_shapes(paths, shape_type="path", name="traced", scale=scale)
    widget = docked(viewer)
    widget._sessions.value, widget._points.value = [image], [truth]
    widget._dendrites.value = [traced]
    assert widget.track() is not None
    wait(widget, qtbot)
    length = 40 * voxel[2]
    rows = widget.tracked.dynamics
    assert [r.dendrite_length_um for r in rows] == pytest.approx([length, length, None])
    assert rows[0].density_per_um == pytest.approx(rows[0].count / length)
    assert rows[2].density_per_um is None
    assert f"{rows[0].count / length:.2f}/µm" in widget._counts.value
    # the same from points of a dendrites CSV: segment_id, in order along each segment
    line = np.array([[5, 20, x] for x in range(10, 51)], float)
    per_session = [
        viewer.add_points(line, name=f"d{t}", scale=voxel, features={"segment_id": [0] * 41})
        for t in range(3)
    ]
    widget._dendrites.value = per_session
    widget.track()
    wait(widget, qtbot)
    assert [r.dendrite_length_um for r in widget.tracked.dynamics] == pytest.approx([length] * 3)
    assert not errors(notes)


def test_dendrites_that_cannot_give_a_length_are_one_message(make_napari_viewer, notes, sample):
    viewer = make_napari_viewer()
    scale = (1.0, *sample.voxel_size_um)
    image = viewer.add_image(sample.image, name="sessions", scale=scale)
    widget = docked(viewer)
    widget._sessions.value = [image]
    widget._model.value = "spine-dog"
    unordered = viewer.add_points(np.zeros((3, 4)), name="dots", scale=scale)
    widget._dendrites.reset_choices()
    assert "dots" not in [name for name, _ in widget._dendrites.choices]  # points, not a trace
    from napari_spines._widgets._session_layers import gather_dendrite_lengths

    with pytest.raises(ValueError, match="need a segment_id feature"):
        gather_dendrite_lengths([unordered], 3, sample.voxel_size_um)
    corners = [[0, 5, 0, 0], [0, 5, 0, 9], [0, 5, 9, 9], [0, 5, 9, 0]]
    box = viewer.add_shapes([np.array(corners)], shape_type="rectangle")
    widget._dendrites.value = [box]
    assert widget.track() is None and "has no path" in errors(notes)[-1]
    three = viewer.add_shapes([np.array([[5, 0, 0], [5, 9, 9]])], shape_type="path", name="3d")
    widget._dendrites.value = [three]
    assert widget.track() is None and "3 sessions need one 4D dendrites layer" in errors(notes)[-1]
    late = viewer.add_shapes([np.array([[7, 5, 0, 0], [7, 5, 9, 9]])], shape_type="path")
    widget._dendrites.value = [late]
    assert widget.track() is None and "a trace at t = 7" in errors(notes)[-1]
    assert not widget.task.busy


def test_rr30a_dendrites_opened_in_napari_give_the_command_lines_length(
    make_napari_viewer, real_data
):
    from napari_spines._widgets._session_layers import gather_dendrite_lengths
    from napari_spines.cli.sessions import traced_length_um

    folder = real_data / "two_photon" / "rr30a"
    viewer = make_napari_viewer()
    layers = [
        viewer.open(str(folder / f"rr30a_tp{t}_dendrites.csv"), plugin=PLUGIN)[0] for t in range(3)
    ]
    voxel = (1.0, 0.12, 0.12)  # the stacks' voxel size (their TIFF tags)
    lengths = gather_dendrite_lengths(layers, 3, voxel)
    expected = [traced_length_um(folder / f"rr30a_tp{t}_dendrites.csv", voxel) for t in range(3)]
    assert lengths == pytest.approx(expected, rel=1e-9)
    assert 300 < lengths[0] < 700  # µm, not voxels


def test_proposed_spines_are_reviewed_most_doubtful_first(notes, proposed):
    viewer, widget = proposed
    layer = viewer.layers["t1 proposed spines"]
    n = len(layer.data)
    assert (
        n >= 3 and widget.proposals.review._counts.value == f"{n} spines: 0 reviewed, {n} to review"
    )
    origin = layer.features["status"].tolist()
    assert widget.proposals.review.next() == 0 and layer.selected_data == {0}  # the most doubtful
    assert viewer.dims.current_step[0] == round(layer.data[0][0])  # its plane is shown
    assert widget.proposals.review.accept() == 1
    assert widget.proposals.review.reject() == 2
    assert layer.features["status"].tolist()[:2] == ["accepted", "rejected"]
    assert layer.features["origin"].tolist() == origin  # carried / new is kept
    assert widget.proposals.review._counts.value == f"{n} spines: 2 reviewed, {n - 2} to review"
    assert tuple(layer.border_color[1]) == pytest.approx((0.6, 0.6, 0.6, 0.35))
    assert widget.proposals.review.undo() == 1 and layer.features["status"][1] == origin[1]
    widget.proposals.review.reject()
    # the reviewed layer is the next session's previous spines: the rejected one is left out
    from napari_spines._widgets._session_layers import world_um

    assert len(world_um(layer)) == n - 1
    # a spine placed by hand is "added", reviewed, and joins the queue
    layer.add([5.0, 40.0, 40.0])
    assert layer.features["status"].iloc[-1] == "added"
    assert layer.features["track_id"].iloc[-1] > layer.features["track_id"].iloc[:-1].max()
    widget.proposals.review.next()
    assert widget.proposals.review._counts.value == f"{n + 1} spines: 3 reviewed, {n - 2} to review"
    start = layer.data[3].copy()  # a drag in select mode: press on the point, then move
    layer._move({3}, start)
    layer._move({3}, start + np.array([0.0, 3.0, 3.0]))
    assert layer.features["status"].iloc[3] == "moved"
    assert widget.proposals.review._counts.value == f"{n + 1} spines: 4 reviewed, {n - 3} to review"
    assert not errors(notes)


def test_track_edits_survive_a_crash_and_an_export_retires_them(
    tracked, make_napari_viewer, qtbot, sample, tmp_path
):
    viewer, widget = tracked
    points = viewer.layers["tracked spines"]
    row = int(np.flatnonzero(points.data[:, 0] == 1)[0])
    points.selected_data = {row}
    widget.edits.split()
    points.selected_data = {int(np.flatnonzero(points.data[:, 0] == 2)[0])}
    widget.edits._to_track.value = 0
    widget.edits.relink()
    widget.edits.undo()
    points.selected_data = {row}
    widget.edits.split()  # split again the track it is on now (its own): refused, not journalled
    edited = [ids.tolist() for ids in widget.tracked.track_ids]
    assert widget.edits.journal is not None and widget.edits.journal.path.exists()
    # napari closes without an export (a crash): the same tracking in a new window offers them
    scale = (1.0, *sample.voxel_size_um)
    again = make_napari_viewer()
    image = again.add_image(sample.image, name="sessions", scale=scale)
    truth = again.add_points(sample.spines, name="truth", scale=scale)
    second = docked(again)
    second._sessions.value, second._points.value = [image], [truth]
    second.track()
    wait(second, qtbot)
    assert second.edits.restore_button.enabled
    assert second.edits.restore_button.text == "Restore unsaved edits (3)"
    assert second.edits.restore() == "restored 1 track edit"
    assert [ids.tolist() for ids in second.tracked.track_ids] == edited
    assert again.layers["tracked spines"].features["track_id"].tolist() == [
        i for ids in edited for i in ids
    ]
    second.edits.undo()  # the restored edits can be undone
    assert [ids.tolist() for ids in second.tracked.track_ids] != edited
    # an export retires the journal: tracking once more offers nothing
    second._export_path.value = str(tmp_path / "tracks.csv")
    assert len(second.export()) == 3
    second.track()
    wait(second, qtbot)
    assert not second.edits.restore_button.enabled


def test_track_edit_keys_are_bound_on_the_tracked_layer(tracked):
    viewer, _ = tracked
    points = viewer.layers["tracked spines"]
    keys = {str(k).lower(): f for k, f in points.keymap.items()}
    assert {"shift+l", "shift+s", "shift+m", "shift+u"} <= set(keys)
    row = int(np.flatnonzero(points.data[:, 0] == 1)[0])
    old = int(points.features["track_id"][row])
    points.selected_data = {row}
    keys["shift+s"](points)
    assert int(points.features["track_id"][row]) != old
    keys["shift+u"](points)
    assert int(points.features["track_id"][row]) == old
