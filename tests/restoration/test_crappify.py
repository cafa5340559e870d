"""Crappifiers: deterministic, the right shapes, and the noise statistics they promise."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spines.restoration.crappify import (
    PRESETS,
    EMCrappifier,
    TwoPhotonCrappifier,
    crappified_voxel_size,
    preset,
)

VOXEL_2P = (1.0, 0.12, 0.12)
VOXEL_EM = (0.05, 0.004, 0.004)


@pytest.fixture(scope="module")
def good() -> np.ndarray:
    """A structured uint16 stack (not constant), 8 × 64 × 64."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    smooth = ndimage.gaussian_filter(rng.random((8, 64, 64)), (1, 3, 3))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (100 + 900 * smooth).astype(np.uint16)


# --- determinism ---


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_same_seed_same_stack_other_seed_other_stack(name, good):
    crappifier = PRESETS[name]
    voxel = VOXEL_EM if isinstance(crappifier, EMCrappifier) else VOXEL_2P
    first = crappifier(good, voxel, seed=3)
    again = crappifier(good, voxel, seed=3)
    other = crappifier(good, voxel, seed=4)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert first.shape == other.shape
    assert not np.array_equal(first, other)
    assert first.min() >= 0


def test_the_input_is_not_changed(good):
    before = good.copy()
    PRESETS["em-4x"](good, VOXEL_EM, seed=0)
    PRESETS["2p-low-photon"](good, VOXEL_2P, seed=0)
    np.testing.assert_array_equal(good, before)


# --- shapes ---


@pytest.mark.parametrize(
    ("shape", "factor", "expected"),
    [
        ((3, 64, 64), 4, (3, 16, 16)),
        ((3, 50, 66), 4, (3, 12, 16)),  # cropped to multiples of the factor
        ((2, 30, 31), 2, (2, 15, 15)),
        ((2, 30, 31), 1, (2, 30, 31)),
    ],
)
def test_em_divides_y_and_x_by_the_factor(shape, factor, expected):
    image = np.full(shape, 50.0, np.float32)
    assert EMCrappifier(factor=factor)(image, seed=0).shape == expected


@pytest.mark.parametrize(("z", "step", "expected"), [(8, 2, 4), (7, 2, 4), (7, 3, 3), (5, 1, 5)])
def test_two_photon_keeps_every_kth_slice(z, step, expected):
    image = np.full((z, 16, 20), 50.0, np.float32)
    out = TwoPhotonCrappifier(z_step=step)(image, VOXEL_2P, seed=0)
    assert out.shape == (expected, 16, 20)  # ceil(Z / z_step)


def test_two_photon_keeps_the_first_slice_of_each_step():
    """z undersampling keeps slices 0, k, 2k...: the slice values survive (no noise, no blur)."""
    image = np.arange(7, dtype=np.float32)[:, None, None] * 10 + np.zeros((7, 4, 4), np.float32)
    crappifier = TwoPhotonCrappifier(
        photon_fraction=1.0, photons_per_level=1e6, read_noise=0.0, blur_um=(0, 0, 0), z_step=3
    )
    out = crappifier(image, VOXEL_2P, seed=0)
    np.testing.assert_allclose(out[:, 0, 0], [0, 30, 60], atol=0.05)


# --- statistics ---


@pytest.mark.parametrize(("value", "fraction", "per_level"), [(100, 0.25, 1.0), (40, 0.1, 2.0)])
def test_photon_thinning_is_poisson(value, fraction, per_level):
    """Constant v, fraction p, no read noise, no blur: mean v, variance v / (p · photons)."""
    crappifier = TwoPhotonCrappifier(
        photon_fraction=fraction, photons_per_level=per_level, read_noise=0.0, blur_um=(0, 0, 0)
    )
    out = crappifier(np.full((4, 128, 128), value, np.uint16), VOXEL_2P, seed=1).astype(np.float64)
    assert out.mean() == pytest.approx(value, rel=0.01)
    assert out.var() == pytest.approx(value / (fraction * per_level), rel=0.03)


def test_read_noise_is_gaussian_of_its_standard_deviation():
    """With (almost) all photons kept, only the read noise is left: variance sigma²."""
    crappifier = TwoPhotonCrappifier(
        photon_fraction=1.0, photons_per_level=1e6, read_noise=5.0, blur_um=(0, 0, 0)
    )
    out = crappifier(np.full((4, 128, 128), 100.0), VOXEL_2P, seed=2).astype(np.float64)
    assert out.mean() == pytest.approx(100, rel=0.01)
    assert out.std() == pytest.approx(5.0, rel=0.03)


def test_two_photon_blur_is_in_micrometres():
    """A blur of 0.24 µm on 0.12 µm voxels is 2 voxels: a point spreads like that Gaussian."""
    from scipy import ndimage

    image = np.zeros((1, 41, 41), np.float32)
    image[0, 20, 20] = 1e6
    crappifier = TwoPhotonCrappifier(
        photon_fraction=1.0, photons_per_level=1e3, read_noise=0.0, blur_um=(0, 0.24, 0.24)
    )
    out = crappifier(image, VOXEL_2P, seed=0)
    expected = ndimage.gaussian_filter(image, (0, 2, 2), mode="reflect")
    np.testing.assert_allclose(out, expected, atol=expected.max() * 0.01)
    assert out.sum() == pytest.approx(1e6, rel=0.01)


def test_em_without_noise_keeps_a_constant():
    """Contrast squeezes towards the mean, so a constant stays that constant."""
    crappifier = EMCrappifier(factor=4, dose=1e9, read_noise=0.0, line_noise=0.0, contrast=0.5)
    out = crappifier(np.full((2, 64, 64), 120, np.uint8), seed=0)
    assert out.shape == (2, 16, 16)
    np.testing.assert_allclose(out, 120, rtol=1e-4)


def test_em_averages_blocks_and_squeezes_contrast():
    """No blur, no noise: each output pixel is its block's mean, squeezed towards the mean."""
    rng = np.random.default_rng(5)
    image = rng.uniform(50, 150, (2, 32, 48)).astype(np.float32)
    crappifier = EMCrappifier(
        factor=4, blur_pixels=0.0, dose=1e9, read_noise=0.0, line_noise=0.0, contrast=0.6
    )
    blocks = image.reshape(2, 8, 4, 12, 4).mean(axis=(2, 4))
    expected = blocks.mean() + (blocks - blocks.mean()) * 0.6
    np.testing.assert_allclose(crappifier(image, seed=0), expected, rtol=1e-4)


def test_em_dose_gives_poisson_noise():
    crappifier = EMCrappifier(factor=2, dose=0.5, read_noise=0.0, line_noise=0.0, contrast=1.0)
    out = crappifier(np.full((4, 256, 256), 80.0), seed=3).astype(np.float64)
    assert out.mean() == pytest.approx(80, rel=0.01)
    assert out.var() == pytest.approx(80 / 0.5, rel=0.03)


def test_em_line_noise_offsets_whole_rows():
    """Line noise only: every row is constant, the rows differ by about line_noise."""
    crappifier = EMCrappifier(factor=4, dose=1e9, read_noise=0.0, line_noise=3.0, contrast=0.8)
    out = crappifier(np.full((3, 256, 128), 100.0, np.float32), seed=0).astype(np.float64)
    assert out.shape == (3, 64, 32)
    assert np.abs(out - out[:, :, :1]).max() < 1e-2  # each row constant
    rows = out[:, :, 0]
    assert len(np.unique(np.round(rows, 3))) > 0.9 * rows.size  # the rows differ
    assert rows.std() == pytest.approx(3.0, rel=0.25)
    assert rows.mean() == pytest.approx(100, abs=1.0)


# --- presets ---


def test_preset_overrides_and_ignores_none():
    em = preset("em-4x", factor=2, read_noise=1.5, z_step=None)
    assert isinstance(em, EMCrappifier)
    assert (em.factor, em.read_noise) == (2, 1.5)
    assert em.line_noise == PRESETS["em-4x"].line_noise  # the rest is the preset's
    assert preset("2p-low-photon", photon_fraction=None, factor=None) == PRESETS["2p-low-photon"]
    two_photon = preset("2p-very-low-photon", z_step=3)
    assert isinstance(two_photon, TwoPhotonCrappifier) and two_photon.z_step == 3
    assert two_photon.photon_fraction == PRESETS["2p-very-low-photon"].photon_fraction


def test_preset_does_not_change_the_presets():
    before = dict(PRESETS)
    preset("em-4x", factor=8)
    assert before == PRESETS and PRESETS["em-4x"].factor == 4


def test_unknown_preset_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown preset 'em-8x'.*em-4x"):
        preset("em-8x")


@pytest.mark.parametrize(("name", "parameter"), [("em-4x", "z_step"), ("2p-low-photon", "factor")])
def test_unknown_parameter_is_refused_by_name(name, parameter):
    with pytest.raises(ValueError, match=f"has no parameter {parameter}"):
        preset(name, **{parameter: 2})


# --- voxel sizes ---


@pytest.mark.parametrize(
    ("crappifier", "voxel", "expected"),
    [
        (EMCrappifier(factor=4), VOXEL_EM, (0.05, 0.016, 0.016)),
        (EMCrappifier(factor=2), VOXEL_EM, (0.05, 0.008, 0.008)),
        (TwoPhotonCrappifier(), VOXEL_2P, VOXEL_2P),
        (TwoPhotonCrappifier(z_step=2), VOXEL_2P, (2.0, 0.12, 0.12)),
    ],
)
def test_crappified_voxel_size(crappifier, voxel, expected):
    assert crappified_voxel_size(crappifier, voxel) == pytest.approx(expected)


def test_scale_matches_the_shape_change(good):
    """Shape times scale is the good shape (after cropping): the grids line up."""
    for crappifier in (EMCrappifier(factor=4), TwoPhotonCrappifier(z_step=2)):
        out = crappifier(good, VOXEL_2P, seed=0)
        restored = tuple(n * s for n, s in zip(out.shape, crappifier.scale, strict=True))
        assert restored == tuple(
            g - g % s for g, s in zip(good.shape, crappifier.scale, strict=True)
        )
