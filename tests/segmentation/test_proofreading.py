"""Proofreading core: merge, split, delete, fill holes, relabel, undo/redo, index, log."""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from napari_spines.segmentation import edit_log, proofreading
from napari_spines.segmentation.edit_log import Edit, load_log
from napari_spines.segmentation.proofreading import Proofreader


def make_labels() -> np.ndarray:
    """Four box segments with distinct sizes: 7 (320) > 3 (256) > 12 (216) > 5 (64)."""
    labels = np.zeros((6, 20, 24), np.uint16)
    labels[1:5, 2:10, 2:10] = 3
    labels[1:5, 2:10, 12:22] = 7
    labels[0:6, 12:18, 2:8] = 12
    labels[2:4, 13:17, 12:20] = 5
    return labels


def assert_index_right(pr: Proofreader) -> None:
    """The incremental index equals one built from scratch on a copy of the labels."""
    fresh = Proofreader(pr.labels.copy())
    np.testing.assert_array_equal(pr.segment_ids(), fresh.segment_ids())
    for i in fresh.segment_ids():
        assert pr.voxel_count(i) == fresh.voxel_count(i), f"count of {i}"
        assert pr.bounding_box(i) == fresh.bounding_box(i), f"box of {i}"


# -- index ---------------------------------------------------------------------------------


def test_index_matches_find_objects_and_counts():
    labels = make_labels()
    pr = Proofreader(labels)
    assert pr.labels is labels
    np.testing.assert_array_equal(pr.segment_ids(), [3, 5, 7, 12])
    assert pr.bounding_box(3) == (slice(1, 5), slice(2, 10), slice(2, 10))
    assert pr.voxel_count(7) == 320
    assert pr.voxel_count(99) == 0
    assert pr.bounding_box(99) is None
    assert pr.bounding_box(0) is None


def test_index_with_huge_and_negative_ids():
    labels = np.zeros((3, 5, 6), np.int64)
    labels[0, 1:3, 1:4] = 10**12
    labels[1:3, 4, :] = -4
    pr = Proofreader(labels)
    assert pr.bounding_box(10**12) == (slice(0, 1), slice(1, 3), slice(1, 4))
    assert pr.voxel_count(10**12) == 6
    assert pr.bounding_box(-4) == (slice(1, 3), slice(4, 5), slice(0, 6))
    assert pr.voxel_count(-4) == 12
    assert pr.next_segment("smallest") == 10**12
    assert pr.next_segment("smallest", after=10**12) == -4


def test_next_segment_with_ids_past_int64():
    labels = np.zeros((2, 3), np.uint64)
    labels[0, 0] = 2**64 - 5
    labels[1, 1:] = 2**63 + 1
    pr = Proofreader(labels)
    assert pr.next_segment("smallest") == 2**64 - 5
    assert pr.next_segment("smallest", after=2**64 - 5) == 2**63 + 1


def test_operations_never_rebuild_the_index(monkeypatch):
    pr = Proofreader(make_labels())

    def boom(volume):
        raise AssertionError("an operation rescanned the whole volume")

    monkeypatch.setattr(proofreading, "build_index", boom)
    pr.merge([3, 7])
    pr.split(7, [[2, 5, 13], [2, 5, 18]])
    pr.delete(12)
    pr.fill_holes(5)
    pr.undo()
    pr.redo()
    pr.next_segment()


def test_index_stays_right_through_a_sequence_and_its_undo():
    labels = make_labels()
    labels[2:4, 4:7, 4:7] = 0  # an enclosed cavity in 3
    labels[3, 5, 5] = 5  # segment 5 in pieces: one voxel inside the cavity of 3
    original = labels.copy()
    pr = Proofreader(labels)
    snapshots = [labels.copy()]
    steps = [
        lambda: pr.merge([12, 5]),
        lambda: pr.fill_holes(3),
        lambda: pr.split(12, [[1, 14, 3], [2, 14, 13], [3, 16, 18]]),
        lambda: pr.delete(7),
        lambda: pr.relabel_sequential(),
        lambda: pr.merge([1, 2]),
    ]
    for step in steps:
        step()
        assert_index_right(pr)
        snapshots.append(labels.copy())
    assert len(pr.edits) == len(steps)
    for snapshot in reversed(snapshots[:-1]):
        assert pr.undo() is not None
        np.testing.assert_array_equal(labels, snapshot)
        assert_index_right(pr)
    np.testing.assert_array_equal(labels, original)
    assert pr.undo() is None
    for snapshot in snapshots[1:]:
        assert pr.redo() is not None
        np.testing.assert_array_equal(labels, snapshot)
        assert_index_right(pr)
    assert pr.redo() is None


# -- merge ---------------------------------------------------------------------------------


def test_merge_into_segment_with_most_voxels():
    labels = make_labels()
    before = labels.copy()
    pr = Proofreader(labels)
    edit = pr.merge([3, 5, 7], coordinates=[[2, 4, 4]])
    assert edit.operation == "merge"
    assert edit.ids == [3, 5, 7]
    assert edit.new_ids == [7]
    assert edit.coordinates == [[2.0, 4.0, 4.0]]
    assert not np.isin(labels, [3, 5]).any()
    np.testing.assert_array_equal(labels == 7, np.isin(before, [3, 5, 7]))
    np.testing.assert_array_equal(labels[before == 12], 12)
    assert pr.voxel_count(7) == 320 + 256 + 64
    assert_index_right(pr)


def test_merge_tie_goes_to_smaller_id():
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, 0, :2] = 9
    labels[0, 3, :2] = 4
    assert Proofreader(labels).merge([9, 4]).new_ids == [4]


def test_merge_undo_redo_round_trip():
    labels = make_labels()
    original = labels.copy()
    pr = Proofreader(labels)
    pr.merge([12, 3])
    merged = labels.copy()
    assert pr.undo().operation == "merge"
    np.testing.assert_array_equal(labels, original)
    assert_index_right(pr)
    assert pr.edits == []
    assert pr.redo().operation == "merge"
    np.testing.assert_array_equal(labels, merged)
    assert_index_right(pr)
    assert [e.operation for e in pr.edits] == ["merge"]


def test_new_operation_clears_redo():
    pr = Proofreader(make_labels())
    pr.merge([3, 7])
    pr.undo()
    pr.delete(5)
    assert pr.redo() is None
    assert [e.operation for e in pr.edits] == ["delete"]


def test_changed_region_is_the_touched_box():
    pr = Proofreader(make_labels())
    assert pr.changed_region() is None
    pr.merge([7, 5])  # 5 is absorbed: only its box changes
    assert pr.changed_region() == (slice(2, 4), slice(13, 17), slice(12, 20))
    pr.undo()
    assert pr.changed_region() == (slice(2, 4), slice(13, 17), slice(12, 20))
    pr.fill_holes(7)  # nothing to fill
    assert pr.changed_region() is None


# -- split ---------------------------------------------------------------------------------


def test_split_follows_boundary_ridge():
    labels = np.zeros((3, 10, 24), np.uint32)
    labels[:, 1:9, 1:23] = 4
    boundaries = np.zeros(labels.shape, np.float32)
    boundaries[:, :, 6] = 1.0  # ridge well off the middle, where a distance split would cut
    pr = Proofreader(labels, boundaries=boundaries)
    edit = pr.split(4, np.array([[1, 4, 2], [1, 4, 20]]))
    assert edit.ids == [4]
    assert edit.new_ids == [5]
    assert edit.coordinates == [[1.0, 4.0, 2.0], [1.0, 4.0, 20.0]]
    assert (labels[:, 1:9, 1:6] == 4).all()
    assert (labels[:, 1:9, 7:23] == 5).all()
    assert set(np.unique(labels[:, 1:9, 6])) <= {4, 5}
    assert_index_right(pr)


def test_split_without_boundaries_cuts_at_the_neck():
    labels = np.zeros((1, 9, 25), np.uint16)
    labels[0, 1:8, 1:8] = 2  # left blob
    labels[0, 1:8, 15:24] = 2  # right blob
    labels[0, 4, 8:15] = 2  # a thin neck
    original = labels.copy()
    pr = Proofreader(labels)
    pr.split(2, [[0, 4, 3], [0, 4, 20]])
    assert (labels[0, 1:8, 1:8] == 2).all()
    assert (labels[0, 1:8, 15:24] == 3).all()
    pr.undo()
    np.testing.assert_array_equal(labels, original)


def test_split_three_seeds_fresh_ids_and_round_trip():
    labels = make_labels()
    original = labels.copy()
    pr = Proofreader(labels)
    edit = pr.split(7, [[2, 5, 12], [2, 5, 17], [2, 5, 21]])
    assert edit.new_ids == [13, 14]
    assert set(np.unique(labels[original == 7])) == {7, 13, 14}
    assert labels[2, 5, 12] == 7 and labels[2, 5, 17] == 13 and labels[2, 5, 21] == 14
    np.testing.assert_array_equal(labels[original != 7], original[original != 7])
    split = labels.copy()
    assert_index_right(pr)
    pr.undo()
    np.testing.assert_array_equal(labels, original)
    assert_index_right(pr)
    pr.redo()
    np.testing.assert_array_equal(labels, split)
    assert_index_right(pr)


def test_split_piece_without_seed_keeps_id():
    labels = np.zeros((1, 6, 20), np.uint8)
    labels[0, 1:5, 1:8] = 3
    labels[0, 1:5, 12:19] = 3  # a second, disconnected piece with no seed
    pr = Proofreader(labels)
    pr.split(3, [[0, 2, 2], [0, 2, 6]])
    assert (labels[0, 1:5, 12:19] == 3).all()
    assert set(np.unique(labels[0, 1:5, 1:8])) == {3, 4}
    assert_index_right(pr)


# -- delete, fill holes, relabel -------------------------------------------------------------


def test_delete_and_undo():
    labels = make_labels()
    original = labels.copy()
    pr = Proofreader(labels)
    edit = pr.delete(12, coordinates=[[1, 14, 4]])
    assert (edit.operation, edit.ids, edit.new_ids) == ("delete", [12], [])
    assert not (labels == 12).any()
    np.testing.assert_array_equal(labels[original != 12], original[original != 12])
    assert 12 not in pr.segment_ids()
    assert_index_right(pr)
    pr.undo()
    np.testing.assert_array_equal(labels, original)
    assert_index_right(pr)


def hollow_cube(open_side: bool) -> np.ndarray:
    labels = np.zeros((9, 9, 9), np.uint16)
    labels[1:8, 1:8, 1:8] = 1
    labels[3:6, 3:6, 3:6] = 0
    labels[4, 4, 4] = 2  # a whole segment inside the cavity
    if open_side:
        labels[4, 4, 6:8] = 0  # a tunnel from the cavity to the outside
    return labels


def test_fill_holes_fills_an_enclosed_cavity():
    labels = hollow_cube(open_side=False)
    original = labels.copy()
    pr = Proofreader(labels)
    edit = pr.fill_holes(1)
    assert (edit.ids, edit.new_ids) == ([1, 2], [1])
    assert (labels[1:8, 1:8, 1:8] == 1).all()
    assert 2 not in pr.segment_ids()
    assert pr.voxel_count(1) == 7**3
    assert_index_right(pr)
    pr.undo()
    np.testing.assert_array_equal(labels, original)
    assert_index_right(pr)


def test_fill_holes_leaves_an_open_cavity():
    labels = hollow_cube(open_side=True)
    original = labels.copy()
    pr = Proofreader(labels)
    edit = pr.fill_holes(1)
    assert edit.operation == "fill_holes"
    np.testing.assert_array_equal(labels, original)
    assert pr.edits == []  # a no-op is not recorded
    assert pr.undo() is None


def test_fill_holes_partly_swallowed_segment_shrinks():
    labels = hollow_cube(open_side=False)
    labels[0, 0, 0] = 2  # 2 also has a piece outside the cube
    pr = Proofreader(labels)
    pr.fill_holes(1)
    assert pr.voxel_count(2) == 1
    assert pr.bounding_box(2) == (slice(0, 1), slice(0, 1), slice(0, 1))
    assert_index_right(pr)


def test_relabel_sequential_keeps_order_and_undoes():
    labels = make_labels()
    original = labels.copy()
    pr = Proofreader(labels, confidence={3: 0.5, 12: 0.1})
    edit = pr.relabel_sequential()
    assert edit.operation == "relabel"
    assert dict(zip(edit.ids, edit.new_ids, strict=True)) == {3: 1, 5: 2, 7: 3, 12: 4}
    expected = np.select(
        [original == 3, original == 5, original == 7, original == 12], [1, 2, 3, 4], 0
    )
    np.testing.assert_array_equal(labels, expected)
    assert pr.confidence == {1: 0.5, 4: 0.1}
    assert pr.changed_region() == (slice(0, 6), slice(0, 20), slice(0, 24))
    assert_index_right(pr)
    pr.undo()
    np.testing.assert_array_equal(labels, original)
    assert pr.confidence == {3: 0.5, 12: 0.1}
    assert_index_right(pr)
    pr.redo()
    np.testing.assert_array_equal(labels, expected)
    assert pr.relabel_sequential().ids == []  # already sequential: not recorded
    assert len(pr.edits) == 1


def test_relabel_of_non_contiguous_view_lands_in_it():
    base = np.zeros((2, 6, 12), np.uint32)
    view = base[:, :, ::2]
    view[:, 1:3, 1:3] = 8
    view[:, 4, :] = 20
    pr = Proofreader(view)
    pr.relabel_sequential()
    assert set(np.unique(base)) == {0, 1, 2}
    pr.undo()
    assert set(np.unique(base)) == {0, 8, 20}


# -- navigation ----------------------------------------------------------------------------


def test_next_segment_orders():
    pr = Proofreader(make_labels(), confidence={12: 0.2, 3: 0.9, 5: 0.2})

    def walk(order: str) -> list[int]:
        out, current = [], pr.next_segment(order)
        while current is not None:
            out.append(current)
            current = pr.next_segment(order, after=current)
        return out

    assert walk("largest") == [7, 3, 12, 5]
    assert walk("smallest") == [5, 12, 3, 7]
    assert walk("least_confident") == [5, 12, 3, 7]  # tie on 0.2 → smaller id; unscored last
    with pytest.raises(ValueError, match="unknown order 'random'"):
        pr.next_segment("random")
    with pytest.raises(ValueError, match="segment 99 is not in the labels"):
        pr.next_segment(after=99)


def test_next_segment_after_a_deleted_segment():
    pr = Proofreader(make_labels())
    pr.delete(3)
    assert pr.next_segment("largest", after=3) == 12
    assert pr.next_segment("largest", after=5) is None
    empty = Proofreader(np.zeros((2, 2), np.uint8))
    assert empty.next_segment() is None


# -- errors --------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    labels = make_labels()
    with pytest.raises(ValueError, match="labels must be an integer array, got dtype float32"):
        Proofreader(labels.astype(np.float32))
    with pytest.raises(ValueError, match=r"boundaries shape \(6, 20\) does not match labels"):
        Proofreader(labels, boundaries=np.zeros((6, 20), np.float32))
    with pytest.raises(ValueError, match="2D .* or 3D"):
        Proofreader(labels[np.newaxis])
    pr = Proofreader(labels)
    with pytest.raises(ValueError, match="place at least two seed points inside segment 7"):
        pr.split(7, [[2, 5, 15]])
    with pytest.raises(ValueError, match=r"seed \(2, 5, 5\) is outside segment 7"):
        pr.split(7, [[2, 5, 15], [2, 5, 5]])
    with pytest.raises(ValueError, match=r"seed \(2, 5, 40\) is outside segment 7"):
        pr.split(7, [[2, 5, 15], [2, 5, 40]])
    with pytest.raises(ValueError, match="different voxels"):
        pr.split(7, [[2, 5, 15], [2, 5, 15.2]])
    with pytest.raises(ValueError, match=r"seeds must be an \(N, 3\) array"):
        pr.split(7, [[5, 15], [5, 16]])
    with pytest.raises(ValueError, match="segments 40, 41 not in the labels"):
        pr.merge([3, 40, 41])
    with pytest.raises(ValueError, match="at least two different segment ids"):
        pr.merge([3, 3])
    with pytest.raises(ValueError, match="0 is the background"):
        pr.delete(0)
    with pytest.raises(ValueError, match="segment 8 not in the labels"):
        pr.fill_holes(8)
    np.testing.assert_array_equal(labels, make_labels())  # failed calls change nothing
    assert pr.edits == []


def test_split_runs_out_of_ids():
    labels = np.zeros((1, 2, 4), np.uint8)
    labels[0, 0, :] = 255
    with pytest.raises(ValueError, match="no free ids left in dtype uint8"):
        Proofreader(labels).split(255, [[0, 0, 0], [0, 0, 3]])


# -- log -----------------------------------------------------------------------------------


def test_edit_to_dict_is_plain_json():
    edit = Edit("merge", [np.uint32(3), np.int64(4)], [np.uint16(4)], [[np.float32(1.5), 2]])
    d = edit.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["ids"] == [3, 4] and type(d["ids"][0]) is int
    assert d["coordinates"] == [[1.5, 2.0]]
    assert d["time"].endswith("Z")


def test_save_and_load_log_round_trip(tmp_path):
    pr = Proofreader(make_labels())
    pr.merge([3, 5], coordinates=[[2, 4, 4]])
    pr.split(12, [[1, 13, 3], [4, 16, 6]])
    pr.delete(7)
    pr.undo()
    path = pr.save_log(tmp_path / "sub" / "edits.json")
    assert path == tmp_path / "sub" / "edits.json"
    edits = load_log(path)
    assert edits == [e.to_dict() for e in pr.edits]
    assert [e["operation"] for e in edits] == ["merge", "split"]
    assert edits[1]["coordinates"] == [[1.0, 13.0, 3.0], [4.0, 16.0, 6.0]]
    (tmp_path / "other.json").write_text('{"foo": 1}')
    with pytest.raises(ValueError, match="not a proofreading log"):
        load_log(tmp_path / "other.json")


def test_save_log_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "edits.json"
    path.write_text('{"edits": []}')
    pr = Proofreader(make_labels())
    pr.merge([3, 5])

    def half_then_fail(obj, fh, **kwargs):
        fh.write('{"edits": [{"operation": "mer')
        raise OSError("disk full")

    monkeypatch.setattr(edit_log.json, "dump", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        pr.save_log(path)
    assert path.read_text() == '{"edits": []}'
    assert [p.name for p in tmp_path.iterdir()] == ["edits.json"]


# -- 2D --------------------------------------------------------------------------------------


def test_2d_labels():
    labels = np.zeros((12, 20), np.int32)
    labels[1:11, 1:9] = 1
    labels[4:7, 4:6] = 0  # a hole, enclosed in 2D
    labels[1:11, 11:19] = 2
    original = labels.copy()
    pr = Proofreader(labels, boundaries=np.zeros(labels.shape, np.float32))
    assert pr.bounding_box(2) == (slice(1, 11), slice(11, 19))
    pr.fill_holes(1)
    assert (labels[1:11, 1:9] == 1).all()
    assert pr.changed_region() == (slice(1, 11), slice(1, 9))
    edit = pr.split(2, [[2, 12], [9, 17]])
    assert edit.new_ids == [3]
    assert edit.coordinates == [[2.0, 12.0], [9.0, 17.0]]
    assert labels[2, 12] == 2 and labels[9, 17] == 3
    pr.merge([1, 3])
    assert pr.bounding_box(1) == (slice(1, 11), slice(1, 19))
    assert_index_right(pr)
    for _ in range(3):
        pr.undo()
    np.testing.assert_array_equal(labels, original)
    assert_index_right(pr)
    with pytest.raises(ValueError, match=r"seeds must be an \(N, 2\) array"):
        pr.split(2, [[0, 2, 12], [0, 9, 17]])


def memory_kept(action: Callable[[], Edit]) -> tuple[Edit, int]:
    """What ``action`` returns, and the bytes (numpy arrays included) it left allocated."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        edit = action()
        gc.collect()
        return edit, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_undo_records_are_compact_for_dense_and_sparse_edits():
    labels = np.zeros((20, 192, 192), np.uint32)
    labels[:, :96] = 1
    labels[:, 96:] = 2
    labels[:, ::8, ::8] = 3  # 11520 voxels spread over a 20 × 185 × 185 box: 1 in 59
    original = labels.copy()
    pr = Proofreader(labels)
    slack = 8192  # the edit, its index entries and the record's small Python objects
    dense_box = 20 * 96 * 192  # merging the halves rewrites most of one half's box
    edit, kept = memory_kept(lambda: pr.merge([1, 2]))
    assert kept <= dense_box // 8 + slack  # one bit per voxel of the box, not a bool or index
    _, kept = memory_kept(lambda: pr.merge([edit.new_ids[0], 3]))
    assert kept <= 11520 * 4 + slack  # one uint32 per changed voxel, not bits of the box
    after = labels.copy()
    pr.undo()
    pr.undo()
    np.testing.assert_array_equal(labels, original)
    pr.redo()
    pr.redo()
    np.testing.assert_array_equal(labels, after)
    assert_index_right(pr)
