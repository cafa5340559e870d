"""The mutex watershed of long-range affinities."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spines.segmentation.affinities import labels_to_affinities, pair_mask
from napari_spines.segmentation.metrics import score_segmentation
from napari_spines.segmentation.mutex import mutex_watershed
from napari_spines.training.affinity import LONG_RANGE_OFFSETS
from tests.models.tiny import cells_stack

pytest.importorskip("mwatershed")


def test_true_affinities_give_back_the_cells() -> None:
    labels = cells_stack((4, 64, 64), n_cells=8, seed=3)[1]
    affinities = labels_to_affinities(labels, LONG_RANGE_OFFSETS)
    found = mutex_watershed(affinities, LONG_RANGE_OFFSETS, 0.5)
    assert score_segmentation(labels, found).adapted_rand_error < 0.01


def test_long_range_edges_split_what_a_leaky_membrane_joins() -> None:
    # two cells with a gap in the wall between them: nearest-neighbour edges leak through the
    # gap, the long-range repulsion across the rest of the wall keeps the cells apart
    labels = np.ones((1, 40, 40), np.int64)
    labels[:, :, 20:] = 2
    labels[:, :, 19] = 0
    affinities = labels_to_affinities(labels, LONG_RANGE_OFFSETS)
    affinities[2, :, 18:22, 19:21] = 0.8  # a leak: x-edges attract, less surely, across the wall
    affinities[1, :, 19:22, 19] = 0.8  # and the gap's voxels attract each other
    nearest = mutex_watershed(affinities[:3], LONG_RANGE_OFFSETS[:3], 0.5)
    long_range = mutex_watershed(affinities, LONG_RANGE_OFFSETS, 0.5)
    assert len(np.unique(nearest[:, :, [5, 35]])) == 1  # merged through the gap
    assert long_range[0, 5, 5] != long_range[0, 5, 35]


def test_2d_mode_keeps_sections_apart() -> None:
    labels = np.ones((3, 16, 16), np.int64)
    affinities = labels_to_affinities(labels, LONG_RANGE_OFFSETS)
    found = mutex_watershed(affinities, LONG_RANGE_OFFSETS, 0.5, mode="2d")
    assert len(np.unique(found)) == 3 and (found[0] == found[0, 0, 0]).all()


def test_channels_must_match_offsets() -> None:
    with pytest.raises(ValueError, match="3 affinity channels for 2 offsets"):
        mutex_watershed(np.zeros((3, 2, 4, 4)), [(0, 0, -1), (0, -1, 0)])


def test_pair_mask_knows_which_partners_lie_inside() -> None:
    mask = pair_mask(np.ones((2, 5, 30), bool), LONG_RANGE_OFFSETS)
    assert not mask[LONG_RANGE_OFFSETS.index((0, 0, -27)), :, :, :27].any()
    assert mask[LONG_RANGE_OFFSETS.index((0, 0, -27)), :, :, 27:].all()


def test_segment_makes_mutex_fragments_where_the_models_settings_say_so(tmp_path) -> None:
    """A mode whose settings name the mutex watershed gets its fragments, merged above 0."""
    import yaml

    from napari_spines.models import open_package
    from napari_spines.segmentation.metrics import score_per_section
    from napari_spines.segmentation.pipeline import segment_image
    from napari_spines.training.mode_settings import scoring_affinities
    from tests.models.tiny import cells_stack, make_long_range_edge_package

    offsets = [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, -4, 0), (0, 0, -4)]
    folder = make_long_range_edge_package(tmp_path / "lr", offsets)
    image, labels = cells_stack((4, 64, 64), n_cells=8, seed=2)
    plain = segment_image(image, "ZYX", open_package(folder), mode="2d")
    card = folder / "model.yaml"
    fields = yaml.safe_load(card.read_text())
    mutex = {"method": "mutex_watershed", "bias": 0.5, "min_size": 5, "threshold": 0.0}
    fields["postprocessing"]["modes"] = {"2d": mutex}
    card.write_text(yaml.safe_dump(fields))
    package = open_package(folder)
    segmentation = segment_image(image, "ZYX", package, mode="2d")
    expected = mutex_watershed(scoring_affinities(package, image), offsets, 0.5, "2d", 5)
    assert segmentation.affinities.shape == (3, *image.shape)
    assert np.array_equal(segmentation.agglomeration.fragments, expected)
    assert not np.array_equal(expected, plain.agglomeration.fragments)
    at_zero = segmentation.labels()  # threshold 0 from the settings: the fragments as they are
    assert len(np.unique(at_zero)) == len(np.unique(expected))
    assert max(s.adapted_rand_error for s in score_per_section(labels, at_zero)) < 0.1
    assert len(np.unique(segmentation.labels(0.999))) < len(np.unique(expected))


def test_from_a_worker_thread_it_runs_in_a_child_process(monkeypatch) -> None:
    """mwatershed keeps the GIL: off the main thread (napari's workers) it must not run here."""
    import threading

    from napari_spines import child_process

    truth = cells_stack((4, 64, 64), n_cells=8, seed=3)[1]
    affinities = labels_to_affinities(truth, LONG_RANGE_OFFSETS)
    children = []
    run_in_child = child_process.run_in_child
    monkeypatch.setattr(
        child_process,
        "run_in_child",
        lambda func, *args, **kwargs: children.append(func) or run_in_child(func, *args, **kwargs),
    )
    here = mutex_watershed(affinities, LONG_RANGE_OFFSETS, 0.5, "2d", 4)
    assert children == [], "on the main thread it runs in this process"
    result = {}
    worker = threading.Thread(
        target=lambda: result.update(
            labels=mutex_watershed(affinities, LONG_RANGE_OFFSETS, 0.5, "2d", 4)
        )
    )
    worker.start()
    worker.join(timeout=120)
    assert len(children) == 1
    np.testing.assert_array_equal(result["labels"], here)
