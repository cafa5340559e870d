"""The fragment graph, its seeded cut, and splits of whole fragments by the proofreader."""

from __future__ import annotations

import copy
from unittest import mock

import numpy as np
import pytest
from skimage.segmentation import watershed

from napari_spines.segmentation import proofreading
from napari_spines.segmentation.fragment_graph import (
    FragmentGraph,
    build_fragment_graph,
    owners,
    seeded_cut,
)
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


def split_seeds(labels: np.ndarray, fragments: np.ndarray, segment: int) -> np.ndarray | None:
    """Two voxels of ``segment``, in different fragments where it spans several; None if 1."""
    voxels = np.argwhere(labels == segment)
    if len(voxels) < 2:
        return None
    first = voxels[0]
    elsewhere = voxels[fragments[tuple(voxels.T)] != fragments[tuple(first)]]
    return np.array([first, elsewhere[-1] if len(elsewhere) else voxels[-1]])


def split_by_voxels(pr: Proofreader, segment: int, seeds: np.ndarray) -> bool:
    """Split ``segment`` in ``pr``; whether that ran a voxel watershed."""
    with mock.patch.object(proofreading, "watershed", wraps=watershed) as spy:
        pr.split(segment, seeds)
    return spy.called


def assert_split_right(
    pr: Proofreader, segment: int, boundaries: np.ndarray, graph: FragmentGraph
) -> bool | None:
    """Split ``segment`` on a copy of ``pr`` (3D labels) and check the result; None if 1 voxel.

    A split by fragments must equal the split of a proofreader built afresh on the labels
    (which finds the fragments each segment owns with `owners`), and that one must split by
    fragments too; a split by voxels must equal the one of a proofreader without fragments.
    Returns whether the split ran by voxels.
    """
    seeds = split_seeds(pr.labels, graph.fragments, segment)
    if seeds is None:
        return None
    probe = copy.deepcopy(pr)  # splitting pr itself would clear its redo stack
    by_voxels = split_by_voxels(probe, segment, seeds)
    fresh = Proofreader(pr.labels.copy(), boundaries, fragments=None if by_voxels else graph)
    assert split_by_voxels(fresh, segment, seeds) == by_voxels, segment
    np.testing.assert_array_equal(probe.labels, fresh.labels, err_msg=str(segment))
    assert_index_right(probe)
    probe.undo()
    np.testing.assert_array_equal(probe.labels, pr.labels, err_msg=str(segment))
    return by_voxels


def assert_splits_right(pr: Proofreader, boundaries: np.ndarray, graph: FragmentGraph) -> None:
    """Every split ``pr`` would make now is right, also after merging two segments.

    Fragment owners that an edit, undo or redo left stale show as a split by fragments of a
    segment that is not made of the fragments it is thought to own. A segment inside a single
    fragment cannot be split by fragments, so it is also merged (on a copy) with one that is
    split by fragments: the merged segment must then split right too.
    """
    segments = pr.segment_ids().tolist()
    whole = [s for s in segments if assert_split_right(pr, s, boundaries, graph) is False]
    for segment in segments:
        partner = next((s for s in whole if s != segment), None)
        if partner is not None:
            probe = copy.deepcopy(pr)
            merged = probe.merge([segment, partner]).new_ids[0]
            assert_split_right(probe, merged, boundaries, graph)


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
    assert_splits_right(pr, boundaries, graph)
    pr.undo()
    assert (labels == 1).all()
    assert_splits_right(pr, boundaries, graph)
    pr.redo()
    assert (labels[..., 12:] == 2).all()
    assert_splits_right(pr, boundaries, graph)


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
    graph = build_fragment_graph(fragments, boundaries)
    whole = np.ones(fragments.shape, np.uint32)  # whole fragments, but both seeds in one
    one_fragment = np.array([[0, 0, 16], [0, 0, 17]])
    assert split_by_voxels(Proofreader(whole, boundaries, fragments=graph), 1, one_fragment)
    assert whole[0, 0, 16] != whole[0, 0, 17]
    pr = Proofreader(labels, boundaries, fragments=graph)
    # seeds in different fragments, but neither segment is made of whole fragments
    assert split_by_voxels(copy.deepcopy(pr), 3, np.array([[0, 0, 1], [3, 11, 1]]))
    assert split_by_voxels(pr, 1, np.array([[0, 0, 0], [3, 11, 23]]))
    assert (labels[..., 13:] == 4).all() and labels[0, 0, 0] == 1
    assert split_by_voxels(pr, 4, one_fragment)
    assert labels[0, 0, 16] != labels[0, 0, 17]
    assert_index_right(pr)
    assert_splits_right(pr, boundaries, graph)


@pytest.mark.parametrize("seed", range(4))
def test_owners_stay_right_through_random_edits_undo_and_redo(seed):
    rng = np.random.default_rng(seed)
    fragments, boundaries = blocks()
    n = int(fragments.max())
    groups = rng.integers(1, 9, n + 1)  # segments are groups of whole fragments ...
    labels = groups[fragments].astype(np.uint32)
    labels[1, 5, 5] = 0  # ... but for a hole, for fill_holes to fill
    graph = build_fragment_graph(fragments, boundaries)
    pr = Proofreader(labels, boundaries, fragments=graph)
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
        assert_splits_right(pr, boundaries, graph)
        snapshots.append(labels.copy())
    while pr.undo() is not None:
        assert_splits_right(pr, boundaries, graph)
    np.testing.assert_array_equal(labels, snapshots[0])
    while pr.redo() is not None:
        assert_splits_right(pr, boundaries, graph)
    np.testing.assert_array_equal(labels, snapshots[-1])


def test_fragments_of_another_shape_are_refused():
    fragments, boundaries = blocks()
    graph = build_fragment_graph(fragments[:2], boundaries[:2])
    with pytest.raises(ValueError, match="fragments shape"):
        Proofreader(np.ones(fragments.shape, np.uint32), fragments=graph)
    with pytest.raises(ValueError, match="boundaries shape"):
        build_fragment_graph(fragments, boundaries[:2])
