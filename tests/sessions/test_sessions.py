"""Sessions: registration, linking, dynamics and detection from the previous session."""

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from napari_spines.cli import main
from napari_spines.io.points_csv import read_points_csv, write_points_csv
from napari_spines.sessions.dynamics import session_dynamics, track_classes
from napari_spines.sessions.linking import link_score, link_sessions
from napari_spines.sessions.registration import Registration, register_sessions
from napari_spines.sessions.track import detect_from_previous, track_sessions
from napari_spines.synthetic import synthetic_two_photon

VOXEL = (1.0, 0.12, 0.12)


def warp(stack, points_vox, shift_x):
    """Deform ``stack`` by a displacement ``shift_x(y)`` along x; move ``points_vox`` with it.

    The image at x is read from x - u(y), so a point at x goes to x + u(y).
    """
    z, y, x = np.meshgrid(*[np.arange(n, dtype=float) for n in stack.shape], indexing="ij")
    warped = ndi.map_coordinates(
        stack.astype(float), [z, y, x - shift_x(y)], order=1, mode="nearest"
    )
    moved = points_vox.copy()
    moved[:, 2] += shift_x(points_vox[:, 1])
    return warped.astype(stack.dtype), moved


def sine(y):
    """Up to 6 voxels (0.72 µm) along x, one period over the 160-voxel stack."""
    return 6.0 * np.sin(2 * np.pi * y / 160)


@pytest.fixture(scope="module")
def sessions():
    """Three synthetic sessions with drift, spine gains and losses, the last also deformed."""
    sample = synthetic_two_photon(shape=(16, 160, 160), n_timepoints=3, seed=3)
    stacks = list(sample.image)
    points = [sample.spines[sample.spines[:, 0] == t, 1:] for t in range(3)]
    ids = [sample.spine_ids[sample.spines[:, 0] == t] for t in range(3)]
    stacks[2], points[2] = warp(stacks[2], points[2], sine)
    return stacks, points, ids, sample.voxel_size_um


def test_registration_finds_a_known_translation():
    rng = np.random.default_rng(0)
    stack = ndi.gaussian_filter(rng.random((12, 128, 128)), (1, 3, 3)).astype(np.float32)
    moved = ndi.shift(stack, (2.0, -8.0, 12.0), order=1, mode="wrap")
    found = register_sessions(stack, moved, VOXEL, deformable=False)
    np.testing.assert_allclose(found.shift_um, (2.0, -0.96, 1.44), atol=0.13)


def test_the_deformable_step_follows_what_a_translation_cannot():
    sample = synthetic_two_photon(shape=(16, 160, 160), n_timepoints=2, seed=3)
    voxel = np.asarray(sample.voxel_size_um)
    t = sample.spines[:, 0]
    _, ia, ib = np.intersect1d(sample.spine_ids[t == 0], sample.spine_ids[t == 1], True, True)
    # a shear: x moves by -1.44 µm at the top of the stack to +1.44 µm at the bottom
    sheared, moved = warp(
        sample.image[1], sample.spines[t == 1, 1:], lambda y: 24 * (y / 160 - 0.5)
    )
    errors = []
    for deformable in (False, True):
        reg = register_sessions(sample.image[0], sheared, voxel, deformable)
        carried = reg.apply(sample.spines[t == 0, 1:][ia] * voxel)
        errors.append(np.median(np.linalg.norm(carried - moved[ib] * voxel, axis=1)))
    assert errors[1] < 0.8 * errors[0]


def test_synthetic_sessions_are_tracked_exactly(sessions):
    stacks, points, ids, voxel = sessions
    tracked = track_sessions(stacks, voxel, [p * np.asarray(voxel) for p in points])
    assert link_score(ids, tracked.track_ids) == (1.0, 1.0, 1.0)
    # the same spine has one id in every session it is in, and different spines different ids
    truth = np.concatenate(ids)
    found = np.concatenate(tracked.track_ids)
    pairs = set(zip(truth.tolist(), found.tolist(), strict=True))
    assert len(pairs) == len(set(truth.tolist())) == len(set(found.tolist()))


def test_a_spine_missing_for_a_session_keeps_its_track():
    same = Registration((0.0, 0.0, 0.0))
    a = np.array([[5.0, 0, 0], [5.0, 10, 0]])
    b = np.array([[5.0, 10, 0]])  # the first spine is not seen in the middle session
    c = np.array([[5.0, 0.3, 0], [5.0, 10, 0.2]])
    ids = link_sessions([a, b, c], [same, same])
    assert ids[0].tolist() == ids[2].tolist() == [1, 2]
    assert track_classes(ids) == {1: "stable", 2: "stable"}
    no_gaps = link_sessions([a, b, c], [same, same], max_gap=0)
    assert no_gaps[2][0] not in no_gaps[0]


def test_dynamics_counts_gains_losses_and_classes():
    ids = [np.array([1, 2, 3]), np.array([1, 3, 4, 5]), np.array([1, 5, 6])]
    assert track_classes(ids) == {
        1: "stable",
        2: "lost",
        3: "lost",
        4: "transient",
        5: "gained",
        6: "gained",
    }
    rows = session_dynamics(ids, [10.0, 10.0, 12.0])
    assert [(r.count, r.gained, r.lost) for r in rows] == [(3, None, None), (4, 2, 1), (3, 1, 2)]
    assert rows[1].turnover == pytest.approx(3 / 7)
    assert rows[2].density_per_um == pytest.approx(0.25)


def test_detection_from_the_previous_session_carries_track_ids(sessions):
    stacks, points, ids, voxel = sessions
    found = detect_from_previous(
        stacks[1], voxel, stacks[0], points[0] * np.asarray(voxel), ids[0], model="spine-dog"
    )
    assert set(found.statuses) <= {"carried", "new"}
    carried = found.statuses == "carried"
    assert carried.sum() >= 0.5 * len(points[0])
    # a carried spine keeps the id of the previous spine it continues, and lies near it
    truth = dict(zip(ids[1].tolist(), points[1] * np.asarray(voxel), strict=True))
    right = [
        np.linalg.norm(truth[t] - p) < 1.5
        for t, p in zip(found.track_ids[carried], found.coords_um[carried], strict=True)
        if t in truth
    ]
    assert np.mean(right) > 0.8
    new_ids = found.track_ids[~carried]
    assert not set(new_ids.tolist()) & set(ids[0].tolist())


def write_stack(path, stack, voxel=VOXEL):
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / voxel[2], 1 / voxel[1]),
        metadata={"axes": "ZYX", "unit": "um", "spacing": voxel[0]},
    )
    return path


def test_track_command_writes_tracks_and_dynamics(sessions, tmp_path, capsys):
    stacks, points, ids, voxel = sessions
    images, tables = [], []
    for t in range(3):
        images.append(str(write_stack(tmp_path / f"s{t}.tif", stacks[t], voxel)))
        tables.append(str(write_points_csv(tmp_path / f"s{t}.csv", points[t], voxel)))
    out, dynamics = tmp_path / "tracks.csv", tmp_path / "dynamics.csv"
    args = ["track", "--images", *images, "--points", *tables, "-o", str(out)]
    assert main([*args, "--dynamics-out", str(dynamics)]) == 0
    assert "tracks over 3 sessions" in capsys.readouterr().err
    header = out.read_text().splitlines()[0]
    assert header == "t,track_id,z,y,x,z_um,y_um,x_um"
    coords, _, columns = read_points_csv(out)
    found = [columns["track_id"][coords[:, 0] == t].astype(int) for t in range(3)]
    assert link_score(ids, found)[2] == 1.0
    np.testing.assert_allclose(coords[coords[:, 0] == 1, 1:], points[1], atol=1e-3)
    assert dynamics.read_text().splitlines()[0].startswith("t,count,gained,lost,turnover")


def test_detect_from_previous_command(sessions, tmp_path, capsys):
    stacks, points, ids, voxel = sessions
    before = write_stack(tmp_path / "a.tif", stacks[0], voxel)
    after = write_stack(tmp_path / "b.tif", stacks[1], voxel)
    spines = write_points_csv(tmp_path / "a.csv", points[0], voxel, {"track_id": ids[0]})
    out = tmp_path / "b.csv"
    argv = ["detect", str(after), "-o", str(out), "-m", "spine-dog"]
    assert main([*argv, "--previous", str(before), "--previous-spines", str(spines)]) == 0
    assert "carried from a.tif" in capsys.readouterr().err
    _, _, columns = read_points_csv(out)
    assert set(columns["status"]) <= {"carried", "new"}
    assert set(columns["track_id"][columns["status"] == "carried"]) <= set(ids[0].tolist())


def test_track_edit_command_applies_edits_in_order_and_counts_again(tmp_path, capsys):
    from napari_spines.io.points_csv import write_table_csv

    tracks = write_table_csv(
        tmp_path / "tracks.csv",
        {
            "t": [0, 0, 1, 1, 2],
            "track_id": [1, 2, 1, 3, 1],
            "z": [1, 2, 1, 2, 1],
            "y": [5, 9, 5, 9, 5],
            "x": [5, 9, 5, 9, 5],
            "z_um": [1.0, 2.0, 1.0, 2.0, 1.0],
            "y_um": [0.6, 1.08, 0.6, 1.08, 0.6],
            "x_um": [0.6, 1.08, 0.6, 1.08, 0.6],
        },
    )
    out, dynamics = tmp_path / "edited.csv", tmp_path / "dyn.csv"
    argv = ["track-edit", str(tracks), "-o", str(out), "--dynamics-out", str(dynamics)]
    assert main([*argv, "--merge", "2", "3", "--split", "1", "2", "--relink", "1", "1", "0"]) == 0
    err = capsys.readouterr().err
    assert "track 3 merged into track 2" in err and "3 edits" in err
    coords, voxel, columns = read_points_csv(out)
    assert voxel == pytest.approx((1.0, 0.12, 0.12))
    assert columns["track_id"].astype(int).tolist() == [1, 2, 4, 2, 3]
    np.testing.assert_allclose(
        coords[:, 1:], [[1, 5, 5], [2, 9, 9], [1, 5, 5], [2, 9, 9], [1, 5, 5]]
    )
    rows = dynamics.read_text().splitlines()
    assert rows[0].startswith("t,count,gained,lost") and rows[2].startswith("1,2,1,1")


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ([], "no edits: give --relink, --split or --merge"),
        (
            ["--merge", "1", "2"],
            "edit 1 (--merge 1 2): tracks 1 and 2 both have a spine in session 0",
        ),
        (["--split", "2", "1"], "edit 1 (--split 2 1): track 2 is in sessions 0"),
        (["--relink", "1", "2", "5"], "edit 1 (--relink 1 2 5): track 2 has no spine in session 1"),
    ],
)
def test_track_edit_that_cannot_be_made_is_one_line_and_writes_nothing(
    tmp_path, capsys, edits, message
):
    tracks = write_points_csv(
        tmp_path / "t.csv",
        np.array([[0, 1, 2, 3], [0, 2, 3, 4], [1, 1, 2, 3]]),
        (1, 1, 1),
        {"track_id": np.array([1, 2, 1])},
    )
    out = tmp_path / "out.csv"
    assert main(["track-edit", str(tracks), "-o", str(out), *edits]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"napari-spines: error: {message}")
    assert not out.exists()


def test_track_edit_of_a_csv_that_is_not_tracks_says_so(tmp_path, capsys):
    plain = write_points_csv(tmp_path / "p.csv", np.array([[1.0, 2, 3]]), (1, 1, 1))
    assert main(["track-edit", str(plain), "-o", str(tmp_path / "o.csv"), "--merge", "1", "2"]) == 2
    assert "needs t, track_id, z, y, x columns" in capsys.readouterr().err
