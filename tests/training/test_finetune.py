"""Corrections become loss targets and masks; fine-tuning writes a listed, runnable package."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from napari_spines.training.corrections import GUARD_UM, spine_sample
from napari_spines.training.spines import VOXEL_SIZE_UM, points_to_model
from napari_spines.training.store import add_spines, load_store

VOXEL = (1.0, 0.24, 0.24)  # the model's own: no resampling, voxels map one to one


def entry_with(tmp_path, statuses, coords, trace=None, **options):
    image = np.random.default_rng(1).normal(100, 10, (12, 96, 160)).astype(np.float32)
    trace = np.array([[6, 48, x] for x in range(0, 160, 4)], float) if trace is None else trace
    add_spines(
        tmp_path,
        image,
        VOXEL,
        np.asarray(coords, float),
        statuses,
        dendrites=trace,
        box=(0, 0, 0, 12, 96, 160),
        **options,
    )
    return load_store(tmp_path).entries[-1]


def test_heads_negatives_unreviewed_and_the_region_mean_what_the_loss_needs(tmp_path):
    coords = [[6, 50, 20], [6, 46, 60], [6, 52, 100], [6, 48, 140], [6, 10, 20]]
    statuses = ["accepted", "rejected", "auto", "moved", "added"]
    entry = entry_with(tmp_path, statuses, coords)
    sample = spine_sample(entry, holdout=0)
    volume = sample.train
    at = [tuple(np.round(points_to_model(np.array([c]), (1, 1, 1))[0]).astype(int)) for c in coords]
    assert volume.heads[at[0]] == pytest.approx(1.0) and volume.heads[at[3]] == pytest.approx(1.0)
    assert volume.heads[at[1]] == 0 and volume.mask[at[1]] > 10  # a negative weighs as a head
    assert volume.mask[at[2]] == 0  # unreviewed: not in the loss
    # within 4 µm of the trace (y 48 ± 16 voxels) the rest is background; far away, unknown
    assert volume.mask[6, 48, 120] == 1 and volume.heads[6, 48, 120] == 0
    assert volume.mask[6, 5, 120] == 0
    # an added spine outside the region is still a target, but the region decides the loss
    assert volume.heads[at[4]] == pytest.approx(1.0)
    assert volume.shaft[6, 48, 120] == 1 and volume.shaft[6, 40, 120] == 0


def test_the_held_out_part_never_enters_the_loss(tmp_path):
    coords = [[6, 50, x] for x in range(8, 160, 12)]
    entry = entry_with(tmp_path, ["accepted"] * len(coords), coords)
    sample = spine_sample(entry, holdout=0.25)
    val = sample.held_out
    assert sample.held_out_heads == 4 and sample.train_heads == len(coords) - 4
    cut_x = min(c[2] for c in coords[-4:])
    guard = int(GUARD_UM / VOXEL_SIZE_UM[2])
    assert not sample.train.mask[..., cut_x - guard :].any()
    assert not sample.train.shaft_mask[..., cut_x - guard :].any()
    assert sample.train.mask[..., : cut_x - guard - 1].any()
    assert len(val.session.spines) == 4 and val.start[2] > 0


def test_an_entry_with_no_head_or_no_dendrite_says_why(tmp_path):
    entry = entry_with(tmp_path, ["rejected"], [[6, 50, 20]])
    with pytest.raises(ValueError, match="no accepted, added or moved"):
        spine_sample(entry)
    image = np.zeros((4, 32, 32), np.float32)
    add_spines(tmp_path / "b", image, VOXEL, np.array([[2, 5, 5]]), ["accepted"])
    with pytest.raises(ValueError, match="no traced dendrites and no model"):
        spine_sample(load_store(tmp_path / "b").entries[0])


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A short fine-tuning of spine-2p on one synthetic stack with its true spines."""
    pytest.importorskip("torch")
    from napari_spines.synthetic import synthetic_two_photon
    from napari_spines.training.finetune import finetune

    folder = tmp_path_factory.mktemp("tune")
    sample = synthetic_two_photon(shape=(12, 160, 160), voxel_size_um=VOXEL, seed=4, n_dendrites=3)
    statuses = ["accepted"] * len(sample.spines)
    statuses[:3] = ["rejected"] * 3
    add_spines(
        folder / "store",
        sample.image,
        VOXEL,
        sample.spines,
        statuses,
        dendrites=np.argwhere(sample.dendrite_mask)[::25],
    )
    result = finetune(
        folder / "store", "spine-2p", folder / "tuned", minutes=0.3, validate_every=2, patience=2
    )
    return result, folder


@pytest.mark.timed
def test_finetuning_writes_a_package_with_its_lineage_that_the_registry_lists(tuned):
    from napari_spines.models import find_model, list_models

    result, folder = tuned
    spec = yaml.safe_load((result.package / "model.yaml").read_text())
    entry = load_store(folder / "store").entries[0]
    assert spec["name"] == "spine-2p-finetuned" and spec["version"].startswith("0.1.2+ft.")
    assert spec["training"]["base_model"]["name"] == "spine-2p"
    assert spec["test_time_flips"] == ["x"]  # the base's flip, run by the engine
    assert len(spec["training"]["base_model"]["weights_sha256"]) == 64
    assert spec["training"]["fine_tune_data"] == [
        {"id": entry.id, "sha256": entry.digest, "source": None}
    ]
    assert result.after["f1"] >= result.before["f1"]  # the base model is a candidate too
    assert 0.1 <= spec["postprocessing"]["threshold"] <= 0.8
    # a threshold chosen through detect on the held-out part, or the base's when no step beat it
    assert ("held_out_detect" in spec["metrics"]) != (result.after is result.before)
    assert (result.package / "finetune.jsonl").read_text().count("\n") >= 2
    assert any(p.root == result.package.resolve() for p in list_models())
    assert find_model("spine-2p-finetuned").root == result.package.resolve()


@pytest.mark.timed
def test_the_finetuned_package_detects_spines(tuned):
    from napari_spines.spines.detection import detect_spines
    from napari_spines.synthetic import synthetic_two_photon

    result, _ = tuned
    other = synthetic_two_photon(shape=(12, 128, 128), voxel_size_um=VOXEL, seed=9)
    found = detect_spines(other.image, "ZYX", str(result.package), VOXEL)
    assert len(found) > 0


def test_finetuning_refuses_what_it_cannot_learn_from(tmp_path):
    pytest.importorskip("torch")
    from napari_spines.training.finetune import finetune

    with pytest.raises(ValueError, match="holds no spines entries"):
        finetune(tmp_path, "spine-2p", tmp_path / "out", minutes=0.1)
    with pytest.raises(ValueError, match="not a napari-spines U-Net"):
        finetune(tmp_path, "spine-dog", tmp_path / "out", minutes=0.1)


def test_a_replay_store_is_mixed_into_the_crops_and_recorded(tmp_path, monkeypatch):
    """``replay``: its entries are drawn for their share of the crops, none is held out, and
    the package names them; a replay store without entries of the task is refused.
    """
    pytest.importorskip("torch")
    from napari_spines.synthetic import synthetic_em
    from napari_spines.training import finetune as module
    from napari_spines.training.store import add_labels

    for name, seed in (("store", 2), ("replay", 3)):
        sample = synthetic_em(shape=(8, 64, 64), n_cells=6, seed=seed)
        per_section = np.stack([sample.labels[z] + 1000 * z for z in range(8)])
        add_labels(tmp_path / name, sample.image, per_section, (0.05, 0.004, 0.004))
    seen = {}

    def no_training(job, example, *args):  # what training would draw from, without steps
        seen["example"], seen["validations"] = example, job.validations
        before = {"adapted_rand_error": 0.5, "validation_loss": 1.0}
        return before, before, job.net.state_dict()

    monkeypatch.setattr(module, "_keep_best", no_training)
    result = module.finetune(
        tmp_path / "store",
        "em-affinity",
        tmp_path / "tuned",
        replay=tmp_path / "replay",
        replay_share=0.3,
        register=False,
    )
    example = seen["example"]
    assert len(example.volumes) == 2 and example.chances == pytest.approx([0.7, 0.3])
    assert example.volumes[1].labels.shape == (8, 64, 64)  # the replayed entry, whole
    assert len(seen["validations"]) == 1  # held out of the store only
    replayed = load_store(tmp_path / "replay").entries[0]
    spec = yaml.safe_load((result.package / "model.yaml").read_text())
    assert spec["training"]["replay_data"]["share"] == 0.3
    assert spec["training"]["replay_data"]["entries"] == [
        {"id": replayed.id, "sha256": replayed.digest}
    ]
    with pytest.raises(ValueError, match="replay store holds no labels entries"):
        module.finetune(tmp_path / "store", "em-affinity", tmp_path / "t", replay=tmp_path / "e")
    with pytest.raises(ValueError, match="between 0 and 1"):
        module.finetune(
            tmp_path / "store", "em-affinity", tmp_path / "t", replay=tmp_path, replay_share=1
        )


@pytest.mark.timed
def test_the_builtin_affinity_model_fine_tunes_on_proofread_labels(tmp_path):
    """em-affinity (long-range) fine-tunes on a labels entry; the package keeps its channels,
    and the threshold chosen for a mode goes where that mode reads it.
    """
    pytest.importorskip("torch")
    from napari_spines.models import find_model, open_package
    from napari_spines.segmentation.pipeline import segment_image
    from napari_spines.synthetic import synthetic_em
    from napari_spines.training.finetune import _LabelsRun, finetune
    from napari_spines.training.store import add_labels

    base = find_model("em-affinity").spec
    sample = synthetic_em(shape=(8, 96, 96), n_cells=8, seed=2)
    per_section = np.stack([sample.labels[z] + 1000 * z for z in range(8)])  # ids stay in z
    add_labels(tmp_path / "store", sample.image, per_section, base.network_voxel_size_um)
    result = finetune(
        tmp_path / "store",
        "em-affinity",
        tmp_path / "tuned",
        minutes=0.3,
        validate_every=2,
        patience=1,
        register=False,
    )
    tuned = open_package(result.package).spec
    assert tuned.outputs[0].offsets == base.outputs[0].offsets
    if result.after is result.before:  # no step beat the base: its settings are kept
        assert "kept" in tuned.metrics
        assert tuned.postprocessing["modes"] == base.postprocessing["modes"]
    # the threshold chosen on the held-out part goes where mode 2d reads it
    job = _LabelsRun(
        open_package(result.package), load_store(tmp_path / "store").entries, "cpu", 0.25, 0
    )
    chosen = job.choose_threshold(result.package)
    tuned = open_package(result.package).spec
    assert "0.0" in chosen["modes"]["2d"]["adapted_rand_error_by_threshold"]  # its default
    assert tuned.postprocessing["modes"]["2d"]["threshold"] == chosen["modes"]["2d"]["threshold"]
    assert tuned.postprocessing["modes"]["2d"]["method"] == "mutex_watershed"
    labels = segment_image(sample.image, "ZYX", open_package(result.package), mode="2d").labels()
    assert labels.shape == sample.image.shape and labels.max() > 1
