"""em-affinity training pieces: crops and their targets, test-time flips, the spec."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spines.segmentation.affinities import labels_to_affinities
from napari_spines.training.affinity import flip_averaged, random_crop
from napari_spines.training.em_data import LabelledVolume
from tests.models.tiny import cells_stack


def test_flip_averaging_keeps_affinities_aligned() -> None:
    # a "network" that is exactly the affinities of its input labels: flipping the input and
    # flipping back must give the same affinities, which needs the one-voxel shift
    torch = pytest.importorskip("torch")
    labels = cells_stack((4, 24, 24), n_cells=6, seed=2)[1].astype(np.float32)

    class LabelAffinities(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            aff = labels_to_affinities(x[0, 0].numpy().astype(np.int64))
            return torch.logit(torch.from_numpy(aff[None]).clamp(1e-4, 1 - 1e-4))

    averaged = flip_averaged(LabelAffinities(), ((4,), (3,), (3, 4), (2,)))
    with torch.no_grad():
        out = averaged(torch.from_numpy(labels)[None, None]).numpy()[0]
    expected = labels_to_affinities(labels.astype(np.int64))
    inner = (slice(None), slice(1, None), slice(1, None), slice(1, None))
    np.testing.assert_allclose(out[inner], expected[inner], atol=1e-3)


def test_flip_averaging_keeps_long_range_affinities_aligned() -> None:
    # the same, with offsets of several voxels: each channel shifts by its own offset
    torch = pytest.importorskip("torch")
    from napari_spines.training.affinity import LONG_RANGE_OFFSETS

    labels = cells_stack((4, 64, 64), n_cells=6, seed=2)[1].astype(np.float32)

    class LabelAffinities(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            aff = labels_to_affinities(x[0, 0].numpy().astype(np.int64), LONG_RANGE_OFFSETS)
            return torch.logit(torch.from_numpy(aff[None]).clamp(1e-4, 1 - 1e-4))

    averaged = flip_averaged(LabelAffinities(), ((4,), (3,), (3, 4)), LONG_RANGE_OFFSETS)
    with torch.no_grad():
        out = averaged(torch.from_numpy(labels)[None, None]).numpy()[0]
    expected = labels_to_affinities(labels.astype(np.int64), LONG_RANGE_OFFSETS)
    inner = (slice(None), slice(None), slice(27, None), slice(27, None))
    np.testing.assert_allclose(out[inner], expected[inner], atol=1e-3)


def test_random_crop_targets_follow_the_augmented_labels() -> None:
    image, labels = cells_stack((6, 40, 40), n_cells=8, seed=4)
    volume = LabelledVolume(image.astype(np.float32) / 255, labels.astype(np.int64), True)
    rng = np.random.default_rng(0)
    for _ in range(8):
        crop, affinities, mask = random_crop(volume, rng, (4, 32, 32))
        # walls are dark: wherever the target says "same cell", both voxels are bright
        bright = crop[0] > crop[0].min() + 0.3 * (crop[0].max() - crop[0].min())
        assert bright[affinities[2] * mask[2] > 0].all()
        assert not mask[2][:, :, 0].any()  # no neighbour before the first column


def test_z_affinities_are_masked_for_per_section_labels() -> None:
    image, labels = cells_stack((6, 40, 40), n_cells=8, seed=4)
    volume = LabelledVolume(image.astype(np.float32), labels.astype(np.int64), False)
    _, _, mask = random_crop(volume, np.random.default_rng(0), (4, 32, 32))
    assert not mask[0].any() and mask[1].any() and mask[2].any()


def test_crops_larger_than_the_volume_are_padded_and_masked() -> None:
    image, labels = cells_stack((3, 20, 20), n_cells=4, seed=1)
    volume = LabelledVolume(image.astype(np.float32), labels.astype(np.int64), True)
    crop, affinities, mask = random_crop(volume, np.random.default_rng(1), (4, 32, 32))
    assert crop.shape == (1, 4, 32, 32) and affinities.shape == mask.shape == (3, 4, 32, 32)
    assert mask.sum() < mask.size / 2


def test_in_plane_kernels_do_not_mix_sections() -> None:
    # with (1, 3, 3) kernels everywhere a section's output depends on that section only
    torch = pytest.importorskip("torch")
    from napari_spines.training.unet import build_unet

    torch.manual_seed(0)  # a net this small can be born with dead ReLUs and a constant output
    net = build_unet(1, 1, width=4, pools=((1, 2, 2),), kernels=((1, 3, 3), (1, 3, 3))).eval()
    x = torch.rand(1, 1, 3, 16, 16)
    changed = x.clone()
    changed[:, :, 2] = 0
    with torch.no_grad():
        assert torch.equal(net(x)[:, :, :2], net(changed)[:, :, :2])
        assert not torch.equal(net(x)[:, :, 2], net(changed)[:, :, 2])


def test_elastic_deformation_moves_image_and_labels_together():
    from napari_spines.training.affinity import elastic_deform

    labels = np.repeat(np.arange(64)[:, None] // 8, 64, axis=1)  # stripes 8 px wide
    labels = np.stack([labels, labels])
    warped_image, warped_labels = elastic_deform(
        np.random.default_rng(0), labels.astype(np.float32), labels
    )
    assert warped_labels.shape == labels.shape and warped_labels.dtype == labels.dtype
    assert (warped_labels != labels).mean() > 0.05  # it did deform
    assert (np.round(warped_image) == warped_labels).mean() > 0.95  # in step with the image
    np.testing.assert_array_equal(warped_labels[0], warped_labels[1])  # same in every section


def test_user_volumes_know_whether_their_ids_cross_sections() -> None:
    from napari_spines.training.em_data import user_volume

    image = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    labels = np.ones((3, 16, 16), np.uint32)
    assert user_volume(image, labels).z_known  # one cell through every section
    per_section = labels * np.arange(1, 4, dtype=np.uint32)[:, None, None]
    assert not user_volume(image, per_section).z_known  # ids differ in each section
    for bad, message in (
        (labels[0], "same shape"),
        (labels.astype(float), "integers"),
        (labels * 0, "empty"),
    ):
        with pytest.raises(ValueError, match=message):
            user_volume(image, bad, name="mine.tif")


def write_em_folder(folder):
    """A stand-in for ../shared/data/em: tiny isbi2012/ and gala/ from synthetic EM."""
    import tifffile

    from napari_spines.synthetic import synthetic_em

    def uint8(image):
        image = image - image.min()
        return (255 * image / max(float(image.max()), 1e-6)).astype(np.uint8)

    isbi = synthetic_em(shape=(20, 48, 48), n_cells=6, seed=1)
    membranes = labels_to_affinities(isbi.labels.astype(np.int64))[1:].min(0) == 0
    (folder / "isbi2012").mkdir(parents=True)
    tifffile.imwrite(folder / "isbi2012/isbi2012_train_image.tif", uint8(isbi.image))
    tifffile.imwrite(folder / "isbi2012/isbi2012_train_membranes.tif", membranes.astype(np.uint8))
    gala = synthetic_em(shape=(40, 32, 32), n_cells=5, seed=2)
    (folder / "gala").mkdir()
    tifffile.imwrite(folder / "gala/gala_train_image.tif", uint8(gala.image))
    tifffile.imwrite(folder / "gala/gala_train_labels.tif", gala.labels.astype(np.uint32))


def record_crops(monkeypatch, shape) -> list[bool]:
    """Spy on training crops: True for each one taken from a volume of ``shape``."""
    from napari_spines.training import affinity

    sampled: list[bool] = []
    crop = affinity.random_crop

    def recording_crop(volume, rng, *args, **kwargs):
        sampled.append(volume.image.shape == tuple(shape))
        return crop(volume, rng, *args, **kwargs)

    monkeypatch.setattr(affinity, "random_crop", recording_crop)
    return sampled


@pytest.mark.timed
def test_train_affinities_on_the_users_own_labels(tmp_path, monkeypatch) -> None:
    """``--add IMAGE LABELS`` mixes the user's stack into the crops; bad pairs are one line."""
    import tifffile

    from napari_spines.cli import main
    from napari_spines.models import open_package
    from napari_spines.synthetic import synthetic_em
    from napari_spines.training.affinity import QUANTILE

    write_em_folder(tmp_path / "em")
    mine = synthetic_em(shape=(6, 40, 40), n_cells=4, seed=3)
    tifffile.imwrite(tmp_path / "mine.tif", mine.image.astype(np.float32))
    tifffile.imwrite(tmp_path / "mine_labels.tif", mine.labels.astype(np.uint32))
    sampled = record_crops(monkeypatch, mine.image.shape)
    command = [
        "train",
        "affinities",
        "--data",
        str(tmp_path / "em"),
        "--out",
        str(tmp_path / "run"),
        "--minutes",
        "0.2",
        "--width",
        "4",
    ]
    assert (
        main([*command, "--add", str(tmp_path / "mine.tif"), str(tmp_path / "mine_labels.tif")])
        == 0
    )
    assert (tmp_path / "run/em-affinity/model.onnx").exists()
    spec = open_package(tmp_path / "run/em-affinity").spec
    assert spec.postprocessing["quantile"] == QUANTILE  # median agglomeration, as validated
    assert "leave_one_section_out" in spec.metrics["validation"]["isbi2012 sections 15-19"]
    assert len(sampled) >= 6 and 0 < sum(sampled) < len(sampled)  # about half are the user's
    assert main([*command, "--add", str(tmp_path / "mine.tif"), str(tmp_path / "no.tif")]) == 2


def test_leave_one_section_out_never_picks_the_threshold_on_the_scored_section() -> None:
    from napari_spines.training.affinity import leave_one_section_out

    errors = np.array(
        [
            [0.1, 0.1, 0.9],  # threshold 0: good for sections 0, 1
            [0.2, 0.2, 0.0],
        ]
    )  # threshold 1: best on average (0.133)
    # sections 0 and 1 get threshold 1 (the others' best), section 2 threshold 0
    assert leave_one_section_out(errors) == pytest.approx((0.2 + 0.2 + 0.9) / 3)


def test_the_builtin_package_is_a_start_for_fine_tuning() -> None:
    from napari_spines.models.registry import builtin_dir
    from napari_spines.training.affinity import DEFAULT_RECIPE, recipe_network, recipe_of
    from napari_spines.training.export import load_weights

    state = load_weights(builtin_dir() / "em-affinity")
    assert recipe_of(state) == DEFAULT_RECIPE  # `train --start-from em-affinity` needs no recipe
    recipe_network(recipe_of(state), 12).load_state_dict(state)  # strict: all keys


def test_starting_from_weights_of_another_recipe_is_refused_in_one_line(tmp_path) -> None:
    from napari_spines.models.registry import builtin_dir
    from napari_spines.training.affinity import train

    write_em_folder(tmp_path / "em")
    with pytest.raises(ValueError, match="was trained with the long-range recipe, not boundary"):
        train(
            tmp_path / "em",
            tmp_path / "run",
            0.1,
            start_from=builtin_dir() / "em-affinity",
            recipe="boundary",
        )


def test_boundary_affinities_are_the_smaller_interior_of_two_neighbours() -> None:
    import torch

    from napari_spines.training.boundary import boundary_affinities

    interior = torch.randn(1, 1, 3, 5, 6)
    derived = boundary_affinities(torch.nn.Identity())(interior)
    assert derived.shape == (1, 3, 3, 5, 6)
    assert torch.equal(
        derived[0, 1, :, 1:], torch.minimum(interior[0, 0, :, 1:], interior[0, 0, :, :-1])
    )
    assert torch.equal(derived[0, 2, :, :, 0], interior[0, 0, :, :, 0])  # the first plane: itself


def test_the_boundary_recipe_exports_an_affinity_package_segment_runs(tmp_path) -> None:
    """A 2D interior network trains, exports as an affinity package, and segments a stack."""
    from napari_spines.models import open_package
    from napari_spines.segmentation.pipeline import segment_image
    from napari_spines.training.affinity import export, train

    write_em_folder(tmp_path / "em")
    checkpoint = train(tmp_path / "em", tmp_path / "run", minutes=0.15, width=4, recipe="boundary")
    package = open_package(export(checkpoint, tmp_path / "run" / "package"))
    assert package.spec.task == "affinities" and package.spec.n_output_channels == 3
    assert "interior" in package.spec.description
    image, _ = cells_stack((4, 40, 40), n_cells=4, seed=0)
    labels = segment_image(image, "ZYX", package, mode="2d").labels()
    assert labels.shape == image.shape
    with pytest.raises(ValueError, match="recipe must be one of"):
        train(tmp_path / "em", tmp_path / "bad", minutes=0.1, recipe="lsd")


def test_gala_blocks_that_are_not_neighbours_stay_separate_volumes(tmp_path) -> None:
    from napari_spines.training.em_data import contiguous_runs, load_gala

    write_em_folder(tmp_path / "em")
    volumes = load_gala(tmp_path / "em" / "gala", [0, 1, 2, 3, 20, 21, 22, 23, 24])
    assert [v.image.shape[0] for v in volumes] == [4, 5]
    assert contiguous_runs([3, 1, 2]) == [[1, 2, 3]]


def test_the_long_range_recipe_is_scored_by_the_mutex_watershed(tmp_path) -> None:
    """Long-range affinities train, export with their offsets, and are segmented by mutex."""
    from napari_spines.models import open_package
    from napari_spines.segmentation.pipeline import segment_image
    from napari_spines.training.affinity import LONG_RANGE_OFFSETS, export, train
    from napari_spines.training.mode_settings import errors_by_threshold

    write_em_folder(tmp_path / "em")
    checkpoint = train(tmp_path / "em", tmp_path / "run", minutes=0.2, width=4, recipe="long-range")
    folder = export(checkpoint, tmp_path / "run" / "package")
    package = open_package(folder)
    spec = package.spec
    assert spec.n_output_channels == len(LONG_RANGE_OFFSETS)
    assert spec.outputs[0].offsets == LONG_RANGE_OFFSETS
    assert spec.tiling.halo[1] >= 51 + 27  # the receptive field and the longest flipped shift
    image, labels = cells_stack((4, 40, 40), n_cells=4, seed=0)
    errors = errors_by_threshold(
        package, image, labels, "2d", (0.3, 0.7), method="mutex_watershed", min_size=20
    )
    assert errors.shape == (2, 4) and np.isfinite(errors).all()
    # segment and the widgets agglomerate its nearest-neighbour channels
    image = cells_stack((10, 88, 72), n_cells=6, seed=1)[0]
    assert segment_image(image, "ZYX", package, mode="2d").affinities.shape == (3, *image.shape)


def test_training_on_every_section_chooses_nothing_and_exports_the_last_step(
    tmp_path, monkeypatch
) -> None:
    """``--every-section``: all ISBI 0-19 and gala sections train, none is loaded to choose."""
    import json

    from napari_spines.cli import main
    from napari_spines.models import open_package
    from napari_spines.training import affinity

    write_em_folder(tmp_path / "em")
    loaded: list[tuple[int, ...]] = []
    load_isbi = affinity.load_isbi
    monkeypatch.setattr(
        affinity,
        "load_isbi",
        lambda folder, sections: loaded.append(tuple(sections)) or load_isbi(folder, sections),
    )
    defects: list[bool] = []
    crop = affinity.random_crop
    monkeypatch.setattr(
        affinity,
        "random_crop",
        lambda *a, **k: defects.append(k.get("defects", False)) or crop(*a, **k),
    )
    command = ["train", "affinities", "--data", str(tmp_path / "em"), "--out"]
    command += [str(tmp_path / "run"), "--minutes", "0.15", "--width", "4"]
    assert main([*command, "--every-section", "--section-defects"]) == 0
    assert loaded == [tuple(range(20))], "ISBI 0-19 trains; no validation sections are loaded"
    assert defects and all(defects)
    log = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert "adapted_rand_error" not in log[-1]
    spec = open_package(tmp_path / "run/em-affinity").spec
    assert spec.metrics["training"]["step"] == log[-1]["step"], "the last checkpoint"
    assert "validation" not in spec.metrics
    assert "ISBI 2012 training volume, sections 0-19" in spec.training["data"][0]
    assert "gala example volume, sections 0-49" in spec.training["data"][1]
