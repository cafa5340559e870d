"""Restoration models: the spec's output voxel size, `restore` through the engine, and training.

Most tests use the ``identity_em_package`` fixture (tests/conftest.py): a ``restore-em``
package whose network returns its input, so a restored stack must equal linear upsampling of
the input, in the input's grey levels, on the fine grid laid exactly over the coarse one.
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_spines.errors import DataWarning
from napari_spines.models import ModelError, clear_cache
from napari_spines.models.spec import ModelSpec, read_spec
from napari_spines.restoration.baselines import linear
from napari_spines.restoration.crappify import EMCrappifier, TwoPhotonCrappifier, preset
from napari_spines.restoration.quality import quality
from napari_spines.restoration.restore import (
    FALLBACK_MODEL,
    Restored,
    default_model,
    output_placement,
    restore,
)
from napari_spines.restoration.train import (
    RECIPES,
    good_stack,
    restoration_spec,
    train_restoration,
    training_example,
    validation_pairs,
)
from tests.restoration.packages import GOOD_VOXEL, INPUT_VOXEL, make_identity_2p_package


def close_to_linear(restored: np.ndarray, coarse: np.ndarray, scale) -> None:
    """``restored`` equals linear upsampling of ``coarse`` within 1e-3 of its range."""
    expected = linear(coarse, scale)
    assert restored.shape == expected.shape
    span = float(coarse.max() - coarse.min())
    np.testing.assert_allclose(restored, expected, rtol=1e-3, atol=1e-3 * span)


@pytest.fixture(scope="module")
def em() -> np.ndarray:
    """A coarse EM-like stack, 3 × 32 × 32, grey levels 100..1100 (random: any shift shows)."""
    return (np.random.default_rng(0).random((3, 32, 32)) * 1000 + 100).astype(np.float32)


# --- (a) the spec ---


def spec_dict(task: str = "restoration") -> dict:
    spec = restoration_spec(RECIPES["em"], GOOD_VOXEL)
    spec["task"] = task
    spec["weights"] = {"onnx": {"file": "model.onnx", "sha256": "0" * 64}}
    return spec


def test_an_output_voxel_size_parses_and_gives_the_upscale():
    spec = ModelSpec.from_dict(spec_dict())
    assert spec.outputs[0].voxel_size_um == pytest.approx(GOOD_VOXEL)
    assert spec.input.voxel_size_um == pytest.approx(INPUT_VOXEL)
    assert spec.network_voxel_size_um == pytest.approx(GOOD_VOXEL)
    assert spec.upscale == (1.0, 4.0, 4.0)
    assert ModelSpec.from_dict(spec.to_dict()) == spec  # the output voxel size is written back


def test_without_an_output_voxel_size_the_network_runs_on_the_input_grid():
    spec = restoration_spec(RECIPES["two-photon"], (1.0, 0.12, 0.12))
    spec["weights"] = {"onnx": {"file": "model.onnx", "sha256": "0" * 64}}
    del spec["outputs"][0]["voxel_size_um"]
    parsed = ModelSpec.from_dict(spec)
    assert parsed.outputs[0].voxel_size_um is None
    assert parsed.network_voxel_size_um == parsed.input.voxel_size_um
    assert parsed.upscale == (1.0, 1.0, 1.0)
    assert "voxel_size_um" not in parsed.to_dict()["outputs"][0]


def test_the_two_photon_recipe_does_not_upscale():
    spec = ModelSpec.from_dict(
        {
            **restoration_spec(RECIPES["two-photon"], (1.0, 0.12, 0.12)),
            "weights": {"onnx": {"file": "model.onnx", "sha256": "0" * 64}},
        }
    )
    assert spec.upscale == (1.0, 1.0, 1.0)
    assert spec.input.voxel_size_um == spec.outputs[0].voxel_size_um == (1.0, 0.12, 0.12)


@pytest.mark.parametrize("task", ["spine-detection", "affinities", "cell-detection"])
def test_only_a_restoration_model_may_have_an_output_voxel_size(task):
    data = spec_dict(task)
    if task == "affinities":
        data["outputs"][0] = {
            **data["outputs"][0],
            "name": "affinities",
            "channels": 3,
            "offsets": [[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
        }
    with pytest.raises(ModelError, match="only a restoration model"):
        ModelSpec.from_dict(data)


@pytest.mark.parametrize("bad", [[0.05, 0.0, 0.004], [0.05, 0.004], "fine", [0.05, -1, 0.004]])
def test_a_bad_output_voxel_size_is_refused(bad):
    data = spec_dict()
    data["outputs"][0]["voxel_size_um"] = bad
    with pytest.raises(ModelError, match="voxel_size_um"):
        ModelSpec.from_dict(data)


def test_the_exported_package_reads_back(identity_em_package):
    spec = read_spec(identity_em_package / "model.yaml")
    assert spec.task == "restoration" and spec.name == "restore-em"
    assert spec.upscale == (1.0, 4.0, 4.0)
    assert spec.tiling.tile == (1, 128, 128)
    assert spec.postprocessing == {"crappifier": "em-4x"}


# --- (b) restore ---


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_em_stack_is_upscaled_4x_in_its_grey_levels(identity_em_package, em, runtime):
    result = restore(em, "ZYX", identity_em_package, INPUT_VOXEL, runtime=runtime, device="cpu")
    assert isinstance(result, Restored)
    assert result.image.shape == (3, 128, 128) and result.image.dtype == np.float32
    assert result.voxel_size_um == pytest.approx(GOOD_VOXEL)
    assert result.upscale == (1.0, 4.0, 4.0)
    assert result.model == "restore-em@0.1.0"
    close_to_linear(result.image, em, (1, 4, 4))


def test_integer_input_comes_back_in_its_grey_levels(identity_em_package):
    coarse = np.random.default_rng(1).integers(0, 256, (2, 24, 40), dtype=np.uint8)
    result = restore(coarse, "ZYX", identity_em_package, INPUT_VOXEL)
    assert result.image.shape == (2, 96, 160)
    close_to_linear(result.image, coarse.astype(np.float32), (1, 4, 4))


def test_a_2d_image_is_upscaled_like_one_slice(identity_em_package, em):
    result = restore(em[1], "YX", identity_em_package, INPUT_VOXEL[1:])
    assert result.image.shape == (128, 128)
    assert result.voxel_size_um == pytest.approx(GOOD_VOXEL[1:])
    assert result.upscale == (4.0, 4.0)
    close_to_linear(result.image[None], em[1][None], (1, 4, 4))


def test_each_time_point_is_restored(identity_em_package, em):
    series = np.stack([em, 3 * em[::-1] + 50])  # TZYX, time points of different ranges
    reported: list[tuple[int, int]] = []
    result = restore(
        series,
        "TZYX",
        identity_em_package,
        INPUT_VOXEL,
        progress=lambda done, total: reported.append((done, total)),
    )
    assert result.image.shape == (2, 3, 128, 128)
    assert result.voxel_size_um == pytest.approx(GOOD_VOXEL)
    for t in range(2):
        close_to_linear(result.image[t], series[t], (1, 4, 4))
    assert reported and reported[-1][0] == reported[-1][1]
    assert all(b == reported[0][1] for _, b in reported)  # one total over both time points


def test_no_voxel_size_means_the_models_own(identity_em_package, em):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        result = restore(em, "ZYX", identity_em_package, None)
    assert result.image.shape == (3, 128, 128)
    assert result.voxel_size_um == pytest.approx(GOOD_VOXEL)
    close_to_linear(result.image, em, (1, 4, 4))


def test_a_voxel_size_within_5_percent_gives_no_warning(identity_em_package, em):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        restore(em, "ZYX", identity_em_package, (0.051, 0.0163, 0.0157))


@pytest.mark.parametrize("voxel", [(0.05, 0.02, 0.02), (0.1, 0.016, 0.016), (0.05, 0.008, 0.016)])
def test_another_voxel_size_warns(identity_em_package, em, voxel):
    with pytest.warns(DataWarning, match="trained on"):
        result = restore(em, "ZYX", identity_em_package, voxel)
    # read onto the model's grid: the output voxel is the model's, whatever the input's
    assert result.voxel_size_um[1:] == pytest.approx(GOOD_VOXEL[1:])


@pytest.fixture(scope="module")
def identity_2p_package(tmp_path_factory) -> Path:
    """A ``restore-2p`` package (denoising on the input's grid) whose network is the identity."""
    return make_identity_2p_package(tmp_path_factory.mktemp("restore-2p") / "restore-2p")


def test_a_two_photon_stack_is_restored_on_its_own_grid(identity_2p_package):
    stack = (np.random.default_rng(2).random((4, 40, 40)) * 3000).astype(np.float32)
    result = restore(stack, "ZYX", identity_2p_package, (1.0, 0.12, 0.12))
    assert result.image.shape == stack.shape
    assert result.voxel_size_um == pytest.approx((1.0, 0.12, 0.12))
    assert result.upscale == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(result.image, stack, rtol=1e-3, atol=1.0)


@pytest.mark.parametrize("voxel", [(1.0, 0.2, 0.2), (2.0, 0.12, 0.12)])
def test_a_denoiser_on_another_voxel_size_returns_the_input_grid(identity_2p_package, voxel):
    stack = (np.random.default_rng(2).random((4, 40, 40)) * 3000).astype(np.float32)
    with pytest.warns(DataWarning):
        result = restore(stack, "ZYX", identity_2p_package, voxel)
    assert result.image.shape == stack.shape  # resampled back to the input's grid
    # so its voxel size is the input's, and it lies over the input without any rescaling
    assert result.voxel_size_um == pytest.approx(voxel)
    assert result.upscale == (1.0, 1.0, 1.0)


def test_a_channel_axis_is_refused(identity_em_package):
    with pytest.raises(ValueError, match="one channel"):
        restore(np.zeros((2, 3, 32, 32), np.float32), "CZYX", identity_em_package, INPUT_VOXEL)


def test_a_model_of_another_task_is_refused(em):
    with pytest.raises(ModelError, match="restoration"):
        restore(em, "ZYX", "spine-dog", INPUT_VOXEL)


def test_an_unknown_model_is_refused(em):
    with pytest.raises(ModelError):
        restore(em, "ZYX", "no-such-restoration-model", INPUT_VOXEL)


def test_output_placement_doctest_values():
    scale, translate = output_placement((1.0, 0.016, 0.016), (0.0, 0.0, 0.0), (1.0, 4.0, 4.0))
    assert scale == pytest.approx((1.0, 0.004, 0.004))
    assert translate == pytest.approx((0.0, -0.006, -0.006))


def test_output_placement_keeps_time_and_aligns_voxel_edges():
    scale_in, translate_in = (1.0, 0.05, 0.016, 0.016), (3.0, 0.5, 1.0, -2.0)
    scale, translate = output_placement(scale_in, translate_in, (1.0, 4.0, 4.0))
    assert scale == pytest.approx((1.0, 0.05, 0.004, 0.004))
    assert translate == pytest.approx((3.0, 0.5, 1.0 - 0.006, -2.0 - 0.006))
    for s_in, t_in, s, t in zip(scale_in, translate_in, scale, translate, strict=True):
        assert t - s / 2 == pytest.approx(t_in - s_in / 2)  # first edges coincide
    unchanged = output_placement((0.12, 0.12), (1.0, 2.0), (1.0, 1.0))
    assert unchanged == ((0.12, 0.12), (1.0, 2.0))


def test_default_model_without_restoration_models_is_the_fallback(monkeypatch, tmp_path):
    assert default_model(None) == FALLBACK_MODEL
    models = tmp_path / "no-models"
    models.mkdir()
    monkeypatch.setenv("NAPARI_SPINES_MODELS", str(models))
    clear_cache()
    from napari_spines.models.registry import list_models

    if not any(p.spec.task == "restoration" for p in list_models()):
        assert default_model(INPUT_VOXEL) == FALLBACK_MODEL


def test_default_model_proposes_an_installed_restoration_model(identity_em_package, tmp_path):
    import os

    user = Path(os.environ["NAPARI_SPINES_MODELS"])
    user.mkdir(parents=True, exist_ok=True)
    shutil.copytree(identity_em_package, user / "restore-em")
    clear_cache()
    assert default_model(INPUT_VOXEL) == "restore-em"
    assert default_model(None) == FALLBACK_MODEL


# --- training pieces ---


def test_training_example_is_the_crappy_crop_on_the_good_grid():
    rng = np.random.default_rng(0)
    good = (rng.random((4, 64, 64)) * 200).astype(np.float32)
    crappifier = EMCrappifier()
    stack = good_stack(good, GOOD_VOXEL, crappifier)
    image, target, mask = training_example([stack], crappifier, (1, 32, 32), rng)
    assert image.shape == target.shape == mask.shape == (1, 1, 32, 32)
    assert mask.min() == mask.max() == 1
    # the target is a crop of the good stack, normalised like the crappy input
    raw = target[0] / stack.gain + stack.offset
    assert raw.min() >= good.min() - 1e-3 and raw.max() <= good.max() + 1e-3


def test_validation_pairs_compare_the_acquired_slices():
    good = np.random.default_rng(0).random((7, 16, 16)).astype(np.float32)
    ((crappy, fitted, voxel),) = validation_pairs(
        [(good, (1.0, 0.12, 0.12))], TwoPhotonCrappifier(z_step=2)
    )
    assert crappy.shape == fitted.shape == (4, 16, 16)
    np.testing.assert_array_equal(fitted, good[::2])
    assert voxel == pytest.approx((2.0, 0.12, 0.12))
    ((crappy, fitted, voxel),) = validation_pairs([(good[:, :15], GOOD_VOXEL)], EMCrappifier())
    assert crappy.shape == (7, 3, 4) and fitted.shape == (7, 12, 16)
    assert voxel == pytest.approx(INPUT_VOXEL)


# --- (c) a short real training ---


def blobs(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    """A smooth two-photon-like stack, grey levels 0..200."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random(shape).astype(np.float32), (2.0, 4.0, 4.0))
    return (200 * (smooth - smooth.min()) / (smooth.max() - smooth.min())).astype(np.float32)


@pytest.fixture
def one_torch_thread():
    """Train on one thread: on a busy 2-core machine, two OpenMP threads spin and crawl."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.timed
def test_a_short_training_beats_the_crappy_input(tmp_path, one_torch_thread):
    voxel = (1.0, 0.12, 0.12)
    recipe = dataclasses.replace(
        RECIPES["two-photon"], crop=(4, 32, 32), tile=(16, 128, 128), batch_size=4
    )
    trained = train_restoration(
        [(blobs(0, (16, 96, 96)), voxel)],
        [(blobs(1, (8, 64, 64)), voxel)],
        tmp_path / "run",
        recipe,
        minutes=0.35,
        width=4,
        lr=3e-3,
        validate_every=25,
        device="cpu",
    )
    spec = read_spec(trained.package / "model.yaml")
    assert spec.task == "restoration" and spec.upscale == (1.0, 1.0, 1.0)
    assert spec.metrics["validation"]["psnr_db"] > 0
    assert (tmp_path / "run" / "log.jsonl").read_text().strip()
    assert "validation PSNR" in trained.summary

    good = blobs(2, (16, 96, 96))  # held out: neither trained nor validated on
    crappy = preset("2p-low-photon")(good, voxel, seed=5)
    restored = restore(crappy, "ZYX", trained.package, voxel, device="cpu")
    assert restored.image.shape == good.shape
    before, after = quality(crappy, good), quality(restored.image, good)
    assert after.psnr > before.psnr + 1.0, (before, after)
