"""Tests for the synthetic two-photon and EM generators (small shapes, a few seconds in all)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as cc_label
from skimage.segmentation import find_boundaries

from napari_spines.synthetic import (
    EMSample,
    TwoPhotonSample,
    synthetic_em,
    synthetic_two_photon,
)

TP_SHAPE = (12, 96, 96)
TP_KW = {"shape": TP_SHAPE, "spine_density_per_um": 1.0}
EM_SHAPE = (8, 96, 96)
EM_KW = {"shape": EM_SHAPE, "n_cells": 12}


@pytest.fixture(scope="module")
def tp() -> TwoPhotonSample:
    return synthetic_two_photon(**TP_KW, seed=1)


@pytest.fixture(scope="module")
def tp_series() -> TwoPhotonSample:
    return synthetic_two_photon(**TP_KW, n_timepoints=3, seed=2)


@pytest.fixture(scope="module")
def em() -> EMSample:
    return synthetic_em(**EM_KW, seed=1)


def _head_voxels(sample: TwoPhotonSample) -> tuple[np.ndarray, ...]:
    return tuple(np.rint(sample.spines[:, -3:]).astype(int).T)


# --- two-photon ---------------------------------------------------------------------------------


def test_two_photon_types_and_shapes(tp: TwoPhotonSample) -> None:
    assert tp.image.dtype == np.uint16 and tp.image.shape == TP_SHAPE
    assert tp.dendrite_mask.dtype == bool and tp.dendrite_mask.shape == TP_SHAPE
    assert tp.spines.dtype == np.float64 and tp.spines.ndim == 2 and tp.spines.shape[1] == 3
    assert tp.spine_ids.dtype == np.int64 and tp.spine_ids.shape == (len(tp.spines),)
    assert len(np.unique(tp.spine_ids)) == len(tp.spine_ids)
    assert len(tp.spines) >= 3
    assert tp.voxel_size_um == (1.0, 0.12, 0.12)


def test_two_photon_deterministic(tp: TwoPhotonSample) -> None:
    again = synthetic_two_photon(**TP_KW, seed=1)
    np.testing.assert_array_equal(again.image, tp.image)
    np.testing.assert_array_equal(again.spines, tp.spines)
    np.testing.assert_array_equal(again.spine_ids, tp.spine_ids)
    np.testing.assert_array_equal(again.dendrite_mask, tp.dendrite_mask)
    other = synthetic_two_photon(**TP_KW, seed=5)
    assert not np.array_equal(other.image, tp.image)
    assert other.spines.shape != tp.spines.shape or not np.allclose(other.spines, tp.spines)


def test_two_photon_dynamic_range(tp: TwoPhotonSample) -> None:
    img = tp.image.astype(float)
    background = np.percentile(img, 10)
    assert 20 < background < 600  # dim background in the 100s of counts
    assert img[tp.dendrite_mask].mean() > 800  # shaft in the 1000s
    assert img[tp.dendrite_mask].mean() > 4 * np.median(img[~tp.dendrite_mask])
    assert 0.001 < tp.dendrite_mask.mean() < 0.2
    assert len(np.unique(tp.image)) > 200  # noisy, not flat


def test_spine_heads_inside_volume_and_bright(tp: TwoPhotonSample) -> None:
    assert np.all(tp.spines >= 0)
    assert np.all(tp.spines <= np.array(TP_SHAPE) - 1)
    img = tp.image.astype(float)
    at_heads = img[_head_voxels(tp)]
    assert at_heads.mean() > 2 * np.percentile(img, 10)
    assert np.mean(at_heads > 2 * np.percentile(img, 10)) > 0.9
    # heads sit on necks outside the shaft, not inside it
    assert np.mean(~tp.dendrite_mask[_head_voxels(tp)]) >= 0.9


def test_spine_head_size_in_um(tp: TwoPhotonSample) -> None:
    """Heads are compact blobs with a physical radius of ~0.3-1 µm, not points or big shapes."""
    img = tp.image.astype(float)
    _, vy, vx = tp.voxel_size_um
    n_y, n_x = TP_SHAPE[1:]
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    near_ratio, far_ratio = [], []
    for z, y, x in np.rint(tp.spines).astype(int):
        centre = img[z, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].mean()

        def ring(radius_um: float, z: int = z, y: int = y, x: int = x) -> np.ndarray:
            ry = np.rint(y + radius_um / vy * np.sin(angles)).astype(int)
            rx = np.rint(x + radius_um / vx * np.cos(angles)).astype(int)
            ok = (ry >= 0) & (ry < n_y) & (rx >= 0) & (rx < n_x)
            return img[z, ry[ok], rx[ok]]

        near_ratio.append(ring(0.25).mean() / centre)  # still within a >= 0.3 µm head
        far_ratio.append(np.percentile(ring(2.5), 25) / centre)  # beyond a <= 1 µm head (+ blur)
    assert np.median(near_ratio) > 0.7
    assert np.median(far_ratio) < 0.3


def test_two_photon_time_series(tp_series: TwoPhotonSample) -> None:
    s = tp_series
    assert s.image.shape == (3, *TP_SHAPE) and s.image.dtype == np.uint16
    assert s.dendrite_mask.shape == (3, *TP_SHAPE)
    assert s.spines.shape[1] == 4 and s.spine_ids.shape == (len(s.spines),)
    t = s.spines[:, 0]
    assert np.all(t == np.rint(t)) and set(np.unique(t)) == {0.0, 1.0, 2.0}
    assert np.all(s.spines[:, 1:] >= 0) and np.all(s.spines[:, 1:] <= np.array(TP_SHAPE) - 1)
    ids = [set(s.spine_ids[t == k].tolist()) for k in range(3)]
    assert all(len(i) == np.sum(t == k) for k, i in enumerate(ids))  # ids unique per session
    assert ids[0] & ids[1]  # the same spines persist ...
    assert ids[0] ^ ids[1]  # ... but some are lost or gained between sessions
    # persistent spines move little: per-spine motion <= 0.3 µm plus global drift
    vox = np.array(s.voxel_size_um)
    shared = sorted(ids[0] & ids[1])
    p0 = {i: p for i, p in zip(s.spine_ids[t == 0], s.spines[t == 0, 1:], strict=True)}
    p1 = {i: p for i, p in zip(s.spine_ids[t == 1], s.spines[t == 1, 1:], strict=True)}
    moves = np.array([(p1[i] - p0[i]) * vox for i in shared])
    assert np.all(np.abs(moves[:, 0]) <= 1.0 * vox[0] + 0.3 + 1e-9)
    assert np.all(np.abs(moves[:, 1:]) <= 3.0 * vox[1] + 0.3 + 1e-9)
    # the same dendrites in every session (up to drift)
    sizes = s.dendrite_mask.reshape(3, -1).sum(axis=1)
    assert sizes.min() > 0.7 * sizes.max()


# --- EM -------------------------------------------------------------------------------------------


def test_em_types_and_dense_labels(em: EMSample) -> None:
    assert em.image.dtype == np.uint8 and em.image.shape == EM_SHAPE
    assert em.labels.dtype == np.uint32 and em.labels.shape == EM_SHAPE
    assert em.voxel_size_um == (0.04, 0.008, 0.008)
    ids = np.unique(em.labels)
    assert ids[0] == 1  # no background
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))  # sequential
    assert len(ids) > 5


def test_em_cells_connected_and_elongated_in_z(em: EMSample) -> None:
    z_extent = []
    for i in range(1, int(em.labels.max()) + 1):
        cell = em.labels == i
        assert cc_label(cell, connectivity=1).max() == 1, f"cell {i} is fragmented"
        z_extent.append(np.any(cell, axis=(1, 2)).sum())
    assert np.median(z_extent) >= EM_SHAPE[0] / 2  # neurites run through several sections


def test_em_deterministic(em: EMSample) -> None:
    again = synthetic_em(**EM_KW, seed=1)
    np.testing.assert_array_equal(again.image, em.image)
    np.testing.assert_array_equal(again.labels, em.labels)
    other = synthetic_em(**EM_KW, seed=2)
    assert not np.array_equal(other.image, em.image)
    assert not np.array_equal(other.labels, em.labels)


def test_em_membranes_darker_than_cytoplasm(em: EMSample) -> None:
    img = em.image.astype(float)
    membrane = np.stack([find_boundaries(sl, mode="thick") for sl in em.labels])
    # cell interiors: more than 4 px (32 nm) away from any in-section boundary
    far = ndi.binary_erosion(~membrane, np.ones((1, 3, 3)), iterations=4, border_value=1)
    assert far.mean() > 0.2
    assert img[far].mean() - img[membrane].mean() > 40
    assert img.std() > 15  # textured, not flat


# --- both ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_timepoints", [1, 3])
def test_two_photon_progress(n_timepoints: int) -> None:
    calls: list[tuple[int, int]] = []
    synthetic_two_photon(
        shape=(6, 48, 48),
        n_timepoints=n_timepoints,
        seed=0,
        progress=lambda d, t: calls.append((d, t)),
    )
    _check_progress(calls)


def test_em_progress() -> None:
    calls: list[tuple[int, int]] = []
    synthetic_em(shape=(4, 48, 48), n_cells=6, seed=0, progress=lambda d, t: calls.append((d, t)))
    _check_progress(calls)


def _check_progress(calls: list[tuple[int, int]]) -> None:
    assert len(calls) >= 2
    done = [d for d, _ in calls]
    totals = {t for _, t in calls}
    assert len(totals) == 1
    assert done == sorted(done) and len(set(done)) == len(done)
    assert done[-1] == totals.pop()


def test_module_does_not_import_gui_or_torch() -> None:
    code = (
        "import sys, napari_spines.synthetic; "
        "bad = [m for m in ('napari', 'torch', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
