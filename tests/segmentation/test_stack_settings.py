"""A stack without a voxel size is not taken for serial sections: its mode comes from the stack."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_spines.segmentation.anisotropy import estimate_anisotropy
from napari_spines.segmentation.stack_settings import (
    default_mode,
    mode_for_anisotropy,
    stack_settings,
)
from napari_spines.synthetic import synthetic_em

ISOTROPIC = (0.008, 0.008, 0.008)
FIVE_TIMES = (0.04, 0.008, 0.008)
SECTIONS = (0.05, 0.004, 0.004)


def em_image(voxel_size_um, seed=0) -> np.ndarray:
    return synthetic_em(
        shape=(12, 128, 128), n_cells=20, seed=seed, voxel_size_um=voxel_size_um
    ).image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_estimate_orders_stacks_by_their_true_anisotropy(seed) -> None:
    estimates = [estimate_anisotropy(em_image(v, seed)) for v in (ISOTROPIC, FIVE_TIMES, SECTIONS)]
    assert estimates == sorted(estimates)
    assert mode_for_anisotropy(estimates[0]) == "3d"
    assert mode_for_anisotropy(estimates[1]) == "2d+z"
    assert mode_for_anisotropy(estimates[2]) != "3d"


def test_noise_does_not_move_the_estimate() -> None:
    image = em_image(FIVE_TIMES)
    noisy = image + np.random.default_rng(0).normal(0, image.std(), image.shape)
    assert estimate_anisotropy(noisy) == pytest.approx(estimate_anisotropy(image), rel=0.05)


def test_a_single_section_or_a_constant_stack_cannot_be_told() -> None:
    assert estimate_anisotropy(em_image(ISOTROPIC)[:1]) is None
    assert estimate_anisotropy(np.zeros((4, 32, 32))) is None


@pytest.fixture
def spec():
    from napari_spines.models import find_model

    return find_model("em-affinity").spec


def test_without_a_voxel_size_the_mode_is_estimated_and_said(spec) -> None:
    settings = stack_settings(em_image(ISOTROPIC), spec, None)
    assert settings.assumed and settings.mode == "3d"
    assert "no voxel size" in settings.reason and "isotropic" in settings.reason
    single = stack_settings(em_image(ISOTROPIC)[:1], spec, None)
    assert single.assumed and single.mode == "2d" and "single section" in single.reason


def test_a_given_voxel_size_or_mode_is_used_and_z_is_never_resampled(spec) -> None:
    never_read = np.zeros((0, 0, 0))  # nothing to estimate when the voxel size is known
    settings = stack_settings(never_read, spec, SECTIONS)
    assert not settings.assumed and settings.mode == default_mode(SECTIONS) == "2d"
    assert settings.run_voxel_um[0] == spec.network_voxel_size_um[0]
    assert stack_settings(never_read, spec, None, mode="2d+z").mode == "2d+z"
    assert stack_settings(never_read, spec, None, mode="2d", threshold=0.3).threshold == 0.3


def test_settings_per_mode_come_from_the_model(spec) -> None:
    own = {"threshold": 0.7, "modes": {"3d": {"threshold": 0.9, "in_plane_scale": 2.0}}}
    spec = dataclasses.replace(spec, postprocessing={**spec.postprocessing, **own})
    image = em_image(ISOTROPIC)
    three_d = stack_settings(image, spec, None)
    assert three_d.threshold == 0.9
    z, y, x = spec.network_voxel_size_um
    assert three_d.run_voxel_um == (z, 2 * y, 2 * x)  # sections upsampled twice
    assert "upsampled 2×" in three_d.reason
    per_section = stack_settings(image, spec, None, mode="2d")
    assert per_section.threshold == 0.7 and per_section.run_voxel_um is None


def test_real_stacks_without_a_voxel_size_get_the_mode_of_their_acquisition(
    spec, real_data: Path
) -> None:
    isbi = tifffile.imread(real_data / "em/isbi2012/isbi2012_train_image.tif")
    gala = tifffile.imread(real_data / "em/gala/gala_train_image.tif")
    assert stack_settings(isbi, spec, None).mode == "2d"  # 50 nm sections of 4 nm pixels
    assert stack_settings(gala, spec, None).mode == "3d"  # FIB-SEM-like
    assert estimate_anisotropy(isbi) > 8 and estimate_anisotropy(gala) < 2
