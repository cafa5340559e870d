"""Training spine-2p: targets, masking, train/inference consistency, train → export → detect."""

import numpy as np
import pytest
import tifffile

from napari_spines.inference import TiledRun, normalisation_stats, plan_axis
from napari_spines.io.points_csv import write_points_csv
from napari_spines.synthetic import synthetic_two_photon
from napari_spines.training import spines as T


def test_head_targets_peak_at_heads_with_the_given_width():
    target = T.head_targets((10, 40, 40), np.array([[5.0, 20.0, 20.0]]))
    assert target[5, 20, 20] == pytest.approx(1.0)
    sigma_y = T.HEAD_SIGMA_UM[1] / T.VOXEL_SIZE_UM[1]
    assert target[5, 20, 22] == pytest.approx(np.exp(-0.5 * (2 / sigma_y) ** 2), rel=1e-5)
    assert target[0, 0, 0] == 0.0


def test_training_input_is_what_the_engine_feeds_the_network():
    """Same resampling and normalisation in training and inference, or the model sees a shift."""
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 255, (8, 64, 80)).astype(np.uint8)
    image, factors = T.to_model_space(stack, (1.0, 0.12, 0.12))
    assert image.shape == (8, 32, 40) and factors == (1.0, 0.5, 0.5)
    offset, gain = normalisation_stats(stack, T.NORMALISATION, channel_axis=False)
    plans = tuple(plan_axis(n, 64, 0, 1, 0) for n in image.shape)
    run = TiledRun(stack, offset, gain, factors, plans)
    tile = run.read_tile((0, 0, 0))[0]
    np.testing.assert_allclose(tile[:, :32, :40], image, atol=1e-5)


def test_loss_ignores_masked_voxels():
    import torch

    logits = torch.zeros(1, 2, 2, 4, 4)
    targets = torch.ones(1, 2, 2, 4, 4)
    masks = torch.zeros(1, 2, 2, 4, 4)
    masks[..., 0, 0, 0] = 1
    loss = T.loss_fn(logits, targets, masks)
    assert float(loss) == pytest.approx(np.log(2), rel=1e-5)  # only the unmasked voxel counts
    logits[..., 1:, :, :] = 100.0  # wrong far away, but masked
    assert float(T.loss_fn(logits, targets, masks)) == pytest.approx(float(loss))


def test_crops_have_the_crop_shape_and_stay_aligned():
    volume = T.synthetic_volume(1, shape=(20, 128, 128))
    image, targets, masks = T.random_crop(volume, np.random.default_rng(0))
    assert image.shape == (1, *T.CROP) and targets.shape == (2, *T.CROP) == masks.shape
    assert targets[0].max() > 0.5  # crops are centred near dendrites, where heads are


def write_session(folder, name, seed):
    sample = synthetic_two_photon(shape=(16, 128, 128), seed=seed)
    tifffile.imwrite(
        folder / f"{name}.tif",
        sample.image,
        imagej=True,
        resolution=(1 / 0.12, 1 / 0.12),
        metadata={"axes": "ZYX", "spacing": 1.0, "unit": "um"},
    )
    write_points_csv(
        folder / f"{name}_spines.csv",
        sample.spines,
        sample.voxel_size_um,
        {"id": np.arange(len(sample.spines)), "is_bad": np.zeros(len(sample.spines), int)},
    )
    write_points_csv(
        folder / f"{name}_dendrites.csv",
        np.argwhere(sample.dendrite_mask)[::20],
        sample.voxel_size_um,
        {"segment_id": np.zeros(len(np.argwhere(sample.dendrite_mask)[::20]), int)},
    )


@pytest.mark.timed
def test_train_export_detect_end_to_end(tmp_path):
    from napari_spines.spines.detection import detect_spines

    for name, seed in (("a", 1), ("b", 2)):
        write_session(tmp_path, name, seed)
    checkpoint = T.train(
        tmp_path,
        ["a"],
        "b",
        tmp_path / "run",
        minutes=0.15,
        width=4,
        batch_size=2,
        synthetic=1,
        validate_every=5,
    )
    assert checkpoint.exists() and (tmp_path / "run" / "log.jsonl").read_text()
    package = T.export(checkpoint, tmp_path / "run" / "spine-2p", command="test")
    stack = tifffile.imread(tmp_path / "b.tif")
    found = detect_spines(stack, "ZYX", str(package), (1.0, 0.12, 0.12), threshold=0.0)
    assert found.coords.shape[1] == 3
    from napari_spines.models import open_package
    from napari_spines.spines.evaluate import load_session

    measured = T.calibrate(package, load_session(tmp_path / "b.tif"), thresholds=(0.3, 0.5))
    spec = open_package(package).spec  # sha256 still matches: only model.yaml changed
    assert spec.name == "spine-2p" and spec.metrics["validation"]["f1"] == measured["f1"]
    assert spec.postprocessing["threshold"] == measured["threshold"] in (0.3, 0.5)
    assert [o.name for o in spec.outputs] == ["heatmap", "dendrite"]
    # fine-tuning continues from the exported package's TorchScript weights
    state = T.load_weights(package)
    assert T.unet_layout(state)[0] == 4 and "head.weight" in state
    again = T.train(
        tmp_path,
        ["a"],
        "b",
        tmp_path / "run2",
        minutes=0.05,
        batch_size=2,
        synthetic=0,
        validate_every=3,
        start_from=package,
    )
    assert T.export(again, tmp_path / "run2" / "pkg").exists()
    assert open_package(tmp_path / "run2" / "pkg").spec.training["base_model"] == str(package)


def test_a_budget_too_short_for_one_step_is_a_clear_error(tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        write_session(tmp_path, name, seed)
    with pytest.raises(ValueError, match="too short for one training step"):
        T.train(tmp_path, ["a"], "b", tmp_path / "run", minutes=0.0, synthetic=0)


def test_train_and_export_names_a_missing_table(tmp_path):
    write_session(tmp_path, "a", 1)
    (tmp_path / "a_dendrites.csv").unlink()
    with pytest.raises(ValueError, match="a_dendrites.csv: no such file"):
        T.train_and_export(tmp_path, ["a"], "a", tmp_path / "run")


def test_rotated_crops_turn_and_magnify_about_their_centre():
    from scipy import ndimage as ndi

    volume = np.random.default_rng(0).random((6, 40, 40)).astype(np.float32)
    centre = (2.6, 20.0, 20.0)
    plain = ndi.map_coordinates(volume, T.rotated_grid(centre, (4, 9, 9), 0.0, 1.0), order=1)
    np.testing.assert_allclose(plain, volume[1:5, 16:25, 16:25])  # whole slices, no turn
    quarter = ndi.map_coordinates(
        volume, T.rotated_grid(centre, (4, 9, 9), np.pi / 2, 1.0), order=1
    )
    np.testing.assert_allclose(quarter, np.rot90(plain, -1, axes=(1, 2)), atol=1e-5)
    bigger = T.rotated_grid(centre, (4, 9, 9), 0.0, 2.0)  # magnified: half the span
    assert np.ptp(bigger[1]) == pytest.approx(4.0) and np.ptp(bigger[2]) == pytest.approx(4.0)
