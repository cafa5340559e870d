"""Hand edits of tracks: relink, split, merge, undo; each keeps one spine per track per session."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spines.sessions.editing import (
    EditHistory,
    merge,
    new_track_id,
    relink,
    spine_of_row,
    split,
)
from napari_spines.sessions.track import Tracked


def ids(*sessions: list[int]) -> list[np.ndarray]:
    return [np.array(s, dtype=int) for s in sessions]


def as_lists(track_ids: list[np.ndarray]) -> list[list[int]]:
    return [t.tolist() for t in track_ids]


def one_spine_per_track_per_session(track_ids: list[np.ndarray]) -> bool:
    return all(len(np.unique(t)) == len(t) for t in track_ids)


def test_relink_moves_a_spine_to_a_track_that_skipped_its_session():
    before = ids([1, 2], [1], [1, 2])
    after, said = relink(before, 1, 0, 2)
    assert as_lists(after) == [[1, 2], [2], [1, 2]]
    assert said == "session 1: spine of track 1 moved to track 2"
    assert as_lists(before) == [[1, 2], [1], [1, 2]]  # the input is left as it was


def test_relink_to_a_track_with_a_spine_there_swaps_the_two():
    after, said = relink(ids([1, 2], [1, 2]), 1, 1, 1)
    assert as_lists(after) == [[1, 2], [2, 1]] and "gave its spine to track 2" in said


def test_relink_to_no_track_makes_a_track_of_its_own():
    after, said = relink(ids([1, 2], [1, 2]), 1, 0)
    assert as_lists(after) == [[1, 2], [3, 2]] and said.endswith("moved to track 3")


@pytest.mark.parametrize(
    ("t", "index", "track", "message"),
    [
        (2, 0, 1, "there is no session 2"),
        (0, 5, 1, "session 0 has no spine 5"),
        (0, 0, 1, "already on track 1"),
        (0, 0, -3, "track ids are positive"),
    ],
)
def test_a_relink_that_cannot_be_made_says_why(t, index, track, message):
    with pytest.raises(ValueError, match=message):
        relink(ids([1, 2], [1, 2]), t, index, track)


def test_split_gives_the_later_sessions_a_new_track():
    after, said = split(ids([1, 2], [1, 2], [2, 1]), 1, 2)
    assert as_lists(after) == [[1, 2], [1, 2], [2, 3]]
    assert said == "track 1 split before session 2: sessions 2 are track 3"


@pytest.mark.parametrize("t", [0, 3])
def test_split_at_the_first_session_or_after_the_last_is_refused(t):
    with pytest.raises(ValueError, match="track 1 is in sessions 0–2"):
        split(ids([1], [1], [1]), 1, t)


def test_merge_joins_tracks_of_different_sessions():
    after, said = merge(ids([1, 2], [3], [3, 2]), 1, 3)
    assert as_lists(after) == [[1, 2], [1], [1, 2]]
    assert said == "track 3 merged into track 1 (sessions 0–2)"


def test_merge_of_tracks_in_one_session_is_refused_and_changes_nothing():
    before = ids([1, 2], [1, 2])
    with pytest.raises(ValueError, match="both have a spine in session 0–1"):
        merge(before, 1, 2)
    with pytest.raises(ValueError, match="there is no track 9"):
        merge(before, 1, 9)
    with pytest.raises(ValueError, match="two different tracks"):
        merge(ids([1], [2]), 1, 1)
    assert as_lists(before) == [[1, 2], [1, 2]]


def test_undo_goes_back_one_edit_at_a_time_and_a_refused_edit_is_not_kept():
    start = ids([1, 2], [1, 3], [3])
    history = EditHistory(start)
    assert not history.can_undo and history.undo() == "nothing to undo"
    history.apply(split, 1, 1)  # track 1 → 1 | 4
    history.apply(merge, 2, 4)
    with pytest.raises(ValueError, match="session 1"):
        history.apply(merge, 2, 3)  # both have a spine in session 1 now
    assert history.edits[:2] == [
        "track 1 split before session 1: sessions 1 are track 4",
        "track 4 merged into track 2 (sessions 0–1)",
    ]
    assert as_lists(history.current) == [[1, 2], [2, 3], [3]]
    assert history.undo().startswith("undone: track 4 merged")
    assert as_lists(history.current) == [[1, 2], [4, 3], [3]]
    history.undo()
    assert as_lists(history.current) == as_lists(start) and not history.can_undo


def test_random_edits_keep_one_spine_per_track_per_session_and_undo_restores_all():
    rng = np.random.default_rng(0)
    start = [rng.permutation(np.arange(1, 9))[: rng.integers(3, 8)] for _ in range(4)]
    history = EditHistory(start)
    made = 0
    for _ in range(300):
        current = history.current
        kind = rng.integers(3)
        t = int(rng.integers(len(current)))
        try:
            if kind == 0:
                index = int(rng.integers(len(current[t])))
                history.apply(relink, t, index, int(rng.integers(0, 12)) or None)
            elif kind == 1:
                history.apply(split, int(rng.choice(current[t])), t)
            else:
                history.apply(merge, *(int(i) for i in rng.integers(1, 12, size=2)))
            made += 1
        except ValueError:
            pass
        assert one_spine_per_track_per_session(history.current)
        assert [len(c) for c in history.current] == [len(s) for s in start]
    assert made > 50
    while history.can_undo:
        history.undo()
    assert as_lists(history.current) == as_lists(start)


def test_spine_of_row_maps_a_4d_layer_row_to_its_session_and_index():
    assert [spine_of_row([2, 0, 3], r) for r in range(5)] == [
        (0, 0),
        (0, 1),
        (2, 0),
        (2, 1),
        (2, 2),
    ]
    with pytest.raises(ValueError, match="there is no spine 5"):
        spine_of_row([2, 0, 3], 5)
    assert new_track_id(ids([], [])) == 1


def test_edited_tracks_count_their_classes_and_dynamics_again():
    points = [np.zeros((2, 3)), np.zeros((1, 3)), np.zeros((2, 3))]
    first = ids([1, 2], [1], [1, 3])
    tracked = Tracked(points, first, [], {}, []).with_track_ids(first)
    assert tracked.classes == {1: "stable", 2: "lost", 3: "gained"}
    # track 2 vanished for a session and came back as 3: merging makes it one stable track
    merged = tracked.with_track_ids(merge(tracked.track_ids, 2, 3)[0])
    assert merged.classes == {1: "stable", 2: "stable"}
    assert [(d.gained, d.lost) for d in merged.dynamics] == [(None, None), (0, 1), (1, 0)]
    with pytest.raises(ValueError, match="do not match the spines"):
        tracked.with_track_ids(ids([1], [1], [1]))


def test_edited_tracks_keep_the_dendrite_lengths():
    points = [np.zeros((2, 3)), np.zeros((2, 3))]
    from napari_spines.sessions.dynamics import session_dynamics

    first = ids([1, 2], [1, 2])
    tracked = Tracked(points, first, [], {}, session_dynamics(first, [4.0, 8.0]))
    edited = tracked.with_track_ids(split(first, 2, 1)[0])
    assert [d.density_per_um for d in edited.dynamics] == [0.5, 0.25]
    assert [d.gained for d in edited.dynamics] == [None, 1]


def test_a_journal_replays_edits_and_undos_and_skips_what_cannot_be_made():
    from napari_spines.sessions.editing import replay, tracks_fingerprint

    start = ids([1, 2], [1, 3], [3])
    lines = [
        {"edit": "split", "args": [1, 1]},
        {"edit": "merge", "args": [2, 4]},
        {"edit": "undo"},
        {"edit": "merge", "args": [9, 9]},  # no such track
        {"edit": "teleport", "args": [1]},  # no such edit
        {"args": [1]},
    ]
    history, skipped = replay(start, lines)
    assert skipped == 3 and history.edits == [
        "track 1 split before session 1: sessions 1 are track 4"
    ]
    assert as_lists(history.current) == [[1, 2], [4, 3], [3]]
    points = [np.zeros((2, 3)), np.ones((2, 3)), np.ones((1, 3))]
    assert tracks_fingerprint(points, start) == tracks_fingerprint(points, ids([1, 2], [1, 3], [3]))
    assert tracks_fingerprint(points, start) != tracks_fingerprint(points, ids([2, 1], [1, 3], [3]))
