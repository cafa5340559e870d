"""What the Fine-tune widget offers and checks, without a screen."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from napari_spines.models import find_model
from napari_spines.training.choices import (
    check_request,
    default_output,
    finetunable_models,
    model_choices,
    store_summary,
)
from napari_spines.training.store import add_labels, add_spines, load_store

VOXEL = (1.0, 0.24, 0.24)


def test_the_models_a_store_can_feed_with_torch_weights_are_offered():
    names = [p.spec.name for p in finetunable_models()]
    assert {"spine-2p", "em-affinity"} <= set(names)
    assert all(p.spec.task in ("spine-detection", "affinities") for p in finetunable_models())
    labels = [label for label, _ in model_choices()]
    assert "spine-2p" in labels


def test_a_name_given_twice_shows_its_version():
    package = find_model("spine-2p")
    (one, two) = model_choices([package, package])
    assert one[0] == two[0] == f"spine-2p {package.spec.version}"
    assert one[1] == str(package.root)


def test_the_default_output_is_beside_the_store_and_stamped(tmp_path):
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert default_output(tmp_path / "store", "em-affinity", when) == (
        tmp_path / "models" / "em-affinity-finetuned-20260102-030405"
    )


def test_the_summary_counts_newest_versions_per_task(tmp_path):
    image = np.random.default_rng(0).normal(100, 10, (4, 32, 32)).astype(np.float32)
    source = tmp_path / "stack.tif"
    source.write_bytes(b"a stack")
    for _ in range(2):  # the same region of the same stack twice: one newest version
        add_spines(tmp_path, image, VOXEL, np.array([[2, 5, 5]]), ["accepted"], source=source)
    add_spines(
        tmp_path, image, VOXEL, np.array([[2, 5, 5]]), ["accepted"], box=(0, 0, 0, 4, 16, 16)
    )
    labels = np.ones((4, 32, 32), np.uint32)
    add_labels(tmp_path, image, labels, VOXEL)
    assert store_summary(load_store(tmp_path)) == (
        "2 spines entries, 1 labels entry (newest versions)"
    )


def test_a_request_is_checked_before_any_work(tmp_path):
    spine = find_model("spine-2p")
    with pytest.raises(ValueError, match="does not exist"):
        check_request(tmp_path / "nowhere", spine, tmp_path / "out")
    with pytest.raises(ValueError, match=f"{tmp_path}.*holds no spines entries"):
        check_request(tmp_path, spine, tmp_path / "out")
    image = np.zeros((4, 32, 32), np.float32)
    add_spines(tmp_path, image, VOXEL, np.array([[2, 5, 5]]), ["accepted"])
    assert check_request(tmp_path, spine, tmp_path / "out") == "spines"
    with pytest.raises(ValueError, match="holds no labels entries"):
        check_request(tmp_path, find_model("em-affinity"), tmp_path / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a model package"):
        check_request(tmp_path, spine, tmp_path / "busy")
    assert check_request(tmp_path, spine, spine.root) == "spines"  # an earlier package
