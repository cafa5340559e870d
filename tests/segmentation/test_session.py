"""The Segmentation widget's work without a screen: segment, relabel, proofread, save."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spines.models import open_package
from napari_spines.segmentation.edit_log import load_log
from napari_spines.segmentation.session import SegmentationSession, describe_edit
from tests.models.tiny import cells_stack

VOXEL = (0.05, 0.004, 0.004)


@pytest.fixture
def session(edge_affinity_package):
    image, truth = cells_stack()
    package = open_package(edge_affinity_package)
    made, relabelled = SegmentationSession.segment(image, "ZYX", package, VOXEL, "3d")
    labels = relabelled.proofreader.labels
    made.adopt(relabelled, labels)
    return made, labels, truth


def test_segmenting_gives_the_cells_and_the_model_threshold(session):
    made, labels, truth = session
    assert made.spec is not None and made.spec.task == "affinities"
    assert len(np.unique(labels[labels > 0])) == len(np.unique(truth[truth > 0]))
    np.testing.assert_array_equal(labels, made.segmentation.labels())


def test_relabel_at_a_higher_threshold_merges_and_leaves_the_shown_labels_alone(session):
    made, labels, _ = session
    before = labels.copy()
    merged = made.relabel(1.0)
    assert len(merged.proofreader.segment_ids()) < len(made.proofreader.segment_ids())
    np.testing.assert_array_equal(labels, before)  # safe in a worker: nothing shown changes


def test_merge_by_points_then_undo_and_redo(session):
    made, labels, _ = session
    a, b = (int(i) for i in made.proofreader.segment_ids()[:2])
    points = np.array([np.argwhere(labels == s)[0] for s in (a, b)], float)
    before = labels.copy()
    edit = made.merge(points, selected=0)
    assert sorted(edit.ids) == sorted([a, b]) and made.changed
    assert describe_edit(edit).startswith("merged")
    assert len(np.unique(labels[(before == a) | (before == b)])) == 1
    undone = made.undo()
    assert undone is not None and describe_edit(undone, "undo").startswith("undo: merge")
    np.testing.assert_array_equal(labels, before)
    assert made.redo() is not None and made.undo() is not None and made.undo() is None


def test_points_on_two_segments_cannot_name_one(session):
    made, labels, _ = session
    a, b = (int(i) for i in made.proofreader.segment_ids()[:2])
    points = np.array([np.argwhere(labels == s)[0] for s in (a, b)], float)
    with pytest.raises(ValueError, match="place them on one segment"):
        made.delete(points, selected=0)
    assert made.target(np.empty((0, 3)), selected=a) == a


def test_next_segment_walks_largest_first_and_its_centre_lies_inside(session):
    made, labels, _ = session
    counts = {int(s): int((labels == s).sum()) for s in made.proofreader.segment_ids()}
    first = made.next_segment("largest")
    assert counts[first] == max(counts.values())
    voxel = made.centre_voxel(first)
    assert labels[tuple(voxel)] == first
    assert f"segment {first}: {counts[first]} voxels" in made.describe_segment(first)
    second = made.next_segment("largest")
    assert second != first and counts[second] <= counts[first]


def test_save_writes_labels_and_the_edit_log(session, tmp_path):
    from napari_spines.io import read_volumes

    made, labels, _ = session
    first = made.next_segment("largest")
    made.delete(np.empty((0, 3)), selected=first)
    tiff, log = made.save(tmp_path / "seg.tif", VOXEL)
    volume = read_volumes(tiff)[0]
    np.testing.assert_array_equal(np.asarray(volume.data), labels)
    assert volume.voxel_size_um == pytest.approx(VOXEL, rel=1e-3)
    assert [e["operation"] for e in load_log(log)] == ["delete"]
    with pytest.raises(ValueError, match=".tif or .tiff"):
        made.save(tmp_path / "seg.png", VOXEL)


def test_a_viewer_copy_of_the_labels_gets_its_own_proofreader(session):
    made, labels, _ = session
    copy = labels.copy()
    proofreader = made.proofread(copy)
    assert proofreader.labels is copy
    segment = int(proofreader.segment_ids()[0])
    made.delete(np.empty((0, 3)), selected=segment)
    assert not (copy == segment).any() and (labels == segment).any()
