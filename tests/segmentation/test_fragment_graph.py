"""The fragment graph, its seeded cut, and splits of whole fragments by the proofreader."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spines.segmentation import proofreading
from napari_spines.segmentation.fragment_graph import build_fragment_graph, owners, seeded_cut
from napari_spines.segmentation.proofreading import Proofreader
from tests.segmentation.test_proofreading import assert_index_right


def test_graph_of_four_fragments():
    fragments = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4]], np.uint64)
    boundaries = np.zeros(fragments.shape, np.float32)
    boundaries[:, 1:3] = 0.9
    graph = build_fragment_graph(fragments, boundaries)
    np.testing.assert_array_equal(graph.edges, [[1, 2], [1, 3], [2, 4], [3, 4]])
    # 1-2 and 3-4 touch across the ridge; 1-3 and 2-4 touch on one column of it, one not
    np.testing.assert_allclose(graph.weights, [0.9, 0.45, 0.45, 0.9])
    np.testing.assert_array_equal(graph.counts, [0, 4, 4, 2, 2])
    np.testing.assert_array_equal(graph.boxes[4], [0, 2, 2, 1, 3, 4])


def test_graph_pairs_across_blocks_of_planes():
    """Pairs between the last plane of one block and the first of the next are not lost."""
    fragments = np.repeat(np.arange(1, 6, dtype=np.uint32), 4)[:, None, None] * np.ones(
        (1, 3, 3), np.uint32
    )
    graph = build_fragment_graph(fragments, np.zeros(fragments.shape, np.float32), planes=3)
    np.testing.assert_array_equal(graph.edges, [[1, 2], [2, 3], [3, 4], [4, 5]])


def test_seeded_cut_cuts_the_weakest_link_between_seeds():
    edges = np.array([[1, 2], [2, 3], [3, 4], [4, 5], [7, 8]])
    weights = np.array([0.1, 0.9, 0.2, 0.3, 0.0])
    assert seeded_cut(edges, weights, np.array([1, 5])) == {1: 0, 2: 0, 3: 1, 4: 1, 5: 1}
    assert seeded_cut(edges, weights, np.array([4, 2, 1])) == {1: 2, 2: 1, 3: 0, 4: 0, 5: 0}


def test_owners_marks_fragments_shared_by_segments():
    fragments = np.array([[[1, 1, 2, 2], [3, 3, 4, 4]]], np.uint64)
    labels = np.array([[[5, 5, 5, 5], [5, 5, 7, 6]]], np.uint32)
    graph = build_fragment_graph(fragments, np.zeros(fragments.shape, np.float32))
    owner, mixed = owners(graph, labels)
    np.testing.assert_array_equal(owner, [0, 5, 5, 5, 0])
    assert mixed == {6, 7}


def test_owners_compare_block_by_block():
    """A fragment shared across a block boundary (planes=1) is found, with its segments."""
    fragments = np.array([[[1, 1, 2, 2]], [[1, 1, 2, 2]]], np.uint64)
    labels = np.array([[[5, 5, 6, 6]], [[5, 5, 8, 8]]], np.uint32)
    graph = build_fragment_graph(fragments, np.zeros(fragments.shape, np.float32))
    owner, mixed = owners(graph, labels, planes=1)
    np.testing.assert_array_equal(owner, [0, 5, 0])
    assert mixed == {6, 8}


def blocks(shape=(4, 12, 24), size=(2, 4, 4)) -> tuple[np.ndarray, np.ndarray]:
    """A grid of box fragments, and a boundary map high between columns 11 and 12."""
    index = [np.arange(n) // s for n, s in zip(shape, size, strict=True)]
    counts = [-(-n // s) for n, s in zip(shape, size, strict=True)]
    fragments = (np.ravel_multi_index(np.ix_(*index), counts) + 1).astype(np.uint64)
    boundaries = np.zeros(shape, np.float32)
    boundaries[..., 11:13] = 1.0
    return fragments, boundaries


def assert_owners_right(pr: Proofreader) -> None:
    """A fragment's owner has all its voxels; a segment not mixed is its owned fragments."""
    graph, owner = pr._graph, pr._owner
    assert graph is not None and owner is not None
    for fragment in np.flatnonzero(owner):
        assert (pr._volume[graph.fragments == fragment] == owner[fragment]).all(), fragment
    for segment in pr.segment_ids().tolist():
        if segment not in pr._mixed:
            np.testing.assert_array_equal(
                pr._volume == segment,
                np.isin(graph.fragments, np.flatnonzero(owner == segment)),
                err_msg=str(segment),
            )


def test_fragment_split_cuts_along_the_boundary_and_touches_only_moved_fragments(monkeypatch):
    fragments, boundaries = blocks()
    labels = np.ones(fragments.shape, np.uint32)
    graph = build_fragment_graph(fragments, boundaries)
    pr = Proofreader(labels, boundaries, fragments=graph)
    monkeypatch.setattr(proofreading, "watershed", None)  # a voxel watershed would fail
    edit = pr.split(1, np.array([[0, 0, 0], [3, 11, 23]]))
    assert edit.new_ids == [2]
    assert (labels[..., :12] == 1).all() and (labels[..., 12:] == 2).all()
    assert_index_right(pr)
    assert_owners_right(pr)
    pr.undo()
    assert (labels == 1).all()
    assert_owners_right(pr)
    pr.redo()
    assert (labels[..., 12:] == 2).all()
    assert_owners_right(pr)


def test_fragment_split_matches_the_voxel_split_on_clean_boundaries():
    fragments, boundaries = blocks()
    by_voxels = np.ones(fragments.shape, np.uint32)
    Proofreader(by_voxels, boundaries).split(1, np.array([[0, 0, 0], [3, 11, 23]]))
    by_fragments = np.ones(fragments.shape, np.uint32)
    Proofreader(
        by_fragments, boundaries, fragments=build_fragment_graph(fragments, boundaries)
    ).split(1, np.array([[0, 0, 0], [3, 11, 23]]))
    np.testing.assert_array_equal(by_fragments, by_voxels)


def test_seeds_in_one_fragment_or_a_mixed_segment_split_by_voxels():
    fragments, boundaries = blocks()
    labels = np.ones(fragments.shape, np.uint32)
    labels[:, :, 1] = 3  # segment 1 and 3 share the first column of fragments: both mixed
    pr = Proofreader(labels, boundaries, fragments=build_fragment_graph(fragments, boundaries))
    assert {1, 3} <= pr._mixed
    pr.split(1, np.array([[0, 0, 0], [3, 11, 23]]))
    assert (labels[..., 13:] == 4).all() and labels[0, 0, 0] == 1
    pr.split(4, np.array([[0, 0, 16], [0, 0, 17]]))  # one fragment (4 × 4 in plane)
    assert labels[0, 0, 16] != labels[0, 0, 17]
    assert_index_right(pr)
    assert_owners_right(pr)


@pytest.mark.parametrize("seed", range(4))
def test_owners_stay_right_through_random_edits_undo_and_redo(seed):
    rng = np.random.default_rng(seed)
    fragments, boundaries = blocks()
    n = int(fragments.max())
    groups = rng.integers(1, 9, n + 1)  # segments are groups of whole fragments ...
    labels = groups[fragments].astype(np.uint32)
    labels[1, 5, 5] = 0  # ... but for a hole, for fill_holes to fill
    pr = Proofreader(labels, boundaries, fragments=build_fragment_graph(fragments, boundaries))
    snapshots = [labels.copy()]
    for _ in range(12):
        ids = pr.segment_ids().tolist()
        op = rng.choice(["merge", "split", "delete", "fill", "relabel"])
        target = int(rng.choice(ids))
        if op == "merge" and len(ids) > 1:
            pr.merge(rng.choice(ids, 2, replace=False).tolist())
        elif op == "split":
            box = pr.bounding_box(target)
            points = np.argwhere(labels[box] == target) + [s.start for s in box]
            if len(points) > 1:
                pr.split(target, points[rng.choice(len(points), 2, replace=False)])
        elif op == "delete" and len(ids) > 1:
            pr.delete(target)
        elif op == "fill":
            pr.fill_holes(target)
        elif op == "relabel":
            pr.relabel_sequential()
        assert_owners_right(pr)
        snapshots.append(labels.copy())
    while pr.undo() is not None:
        assert_owners_right(pr)
    np.testing.assert_array_equal(labels, snapshots[0])
    while pr.redo() is not None:
        assert_owners_right(pr)
    np.testing.assert_array_equal(labels, snapshots[-1])


def test_fragments_of_another_shape_are_refused():
    fragments, boundaries = blocks()
    graph = build_fragment_graph(fragments[:2], boundaries[:2])
    with pytest.raises(ValueError, match="fragments shape"):
        Proofreader(np.ones(fragments.shape, np.uint32), fragments=graph)
    with pytest.raises(ValueError, match="boundaries shape"):
        build_fragment_graph(fragments, boundaries[:2])
