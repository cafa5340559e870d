"""Heatmap → spine heads: 3D local maxima at least a distance in µm apart, with a score each."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree


def ellipsoid_footprint(radius_um: float, voxel_size_um: Sequence[float]) -> np.ndarray:
    """Boolean ellipsoid of ``radius_um`` in physical units, sampled on the voxel grid.

    Parameters
    ----------
    radius_um
        Radius in µm.
    voxel_size_um
        Voxel size in µm on each axis (``z, y, x``).

    Returns
    -------
    numpy.ndarray
        Boolean footprint, ``2 * floor(radius_um / v) + 1`` voxels along each axis; True
        within ``radius_um`` of the centre.

    Examples
    --------
    >>> footprint = ellipsoid_footprint(1.0, (1.0, 0.5, 0.5))
    >>> footprint.shape, int(footprint.sum())
    ((3, 5, 5), 15)
    """
    radii = [max(0, int(np.floor(radius_um / v))) for v in voxel_size_um]
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    distance2 = sum((g * v) ** 2 for g, v in zip(grids, voxel_size_um, strict=True))
    return distance2 <= radius_um**2


def find_peaks(
    heatmap: np.ndarray,
    voxel_size_um: Sequence[float],
    threshold: float,
    min_distance_um: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of a 3D heatmap, refined to sub-voxel positions.

    Parameters
    ----------
    heatmap
        ``(Z, Y, X)`` spine-head likelihood.
    voxel_size_um
        Voxel size of ``heatmap``, so ``min_distance_um`` is physical on anisotropic grids.
    threshold
        Minimum heatmap value of a peak.
    min_distance_um
        A peak is the maximum of the ellipsoid of this radius around it.

    Returns
    -------
    coords
        ``(N, 3)`` float voxel coordinates, strongest first.
    scores
        ``(N,)`` heatmap value at each peak.

    Examples
    --------
    >>> h = np.zeros((5, 20, 20)); h[2, 5, 5] = 1.0; h[2, 15, 15] = 0.6
    >>> coords, scores = find_peaks(h, (1.0, 0.2, 0.2), threshold=0.5)
    >>> coords.round().tolist(), [round(float(s), 2) for s in scores]
    ([[2.0, 5.0, 5.0], [2.0, 15.0, 15.0]], [1.0, 0.6])
    """
    heatmap = np.asarray(heatmap, dtype=np.float32)
    # A box inscribed in the ellipsoid is separable, so the filter is fast; it keeps every true
    # peak and perhaps a few more, which the suppression in µm below removes.
    half = [max(1, int(min_distance_um / np.sqrt(3) / v)) for v in voxel_size_um]
    size = tuple(2 * h + 1 for h in half)
    maxima = heatmap >= threshold
    maxima &= heatmap == ndi.maximum_filter(heatmap, size=size, mode="nearest")
    labels, n = ndi.label(maxima)  # a plateau is one peak, at its centre
    if n == 0:
        return np.zeros((0, 3)), np.zeros(0, np.float32)
    voxels = np.argwhere(maxima)  # few: only the maxima, so group them rather than the volume
    ids = labels[tuple(voxels.T)] - 1
    counts = np.bincount(ids, minlength=n)
    coords = np.stack([np.bincount(ids, voxels[:, a], minlength=n) for a in range(3)], 1)
    coords = _refine(heatmap, coords / counts[:, None])
    scores = np.zeros(n, np.float32)
    np.maximum.at(scores, ids, heatmap[tuple(voxels.T)])
    coords, scores = _suppress_close(coords, scores, voxel_size_um, min_distance_um)
    order = np.argsort(-scores, kind="stable")
    return coords[order], scores[order]


def _refine(heatmap: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Sub-voxel peak positions: a parabola through the log-heatmap on each axis.

    Exact for Gaussian-shaped peaks; a peak on the volume's edge keeps that axis' voxel.
    """
    if len(coords) == 0:
        return coords
    centres = np.round(coords).astype(int)
    refined = centres.astype(float)
    log = np.log(np.maximum(heatmap, 1e-12))
    for axis in range(3):
        inside = (centres[:, axis] > 0) & (centres[:, axis] < heatmap.shape[axis] - 1)
        c = centres[inside]
        below, above = c.copy(), c.copy()
        below[:, axis] -= 1
        above[:, axis] += 1
        lo, mid, hi = (log[tuple(p.T)] for p in (below, c, above))
        curvature = lo - 2 * mid + hi
        offset = np.where(
            curvature < 0, 0.5 * (lo - hi) / np.where(curvature < 0, curvature, -1), 0.0
        )
        refined[inside, axis] += np.clip(offset, -0.5, 0.5)
    return refined


def place_between_slices(heatmap: np.ndarray, coords: np.ndarray, ratio: float) -> np.ndarray:
    """Move a peak halfway to its neighbouring slice when that slice scores nearly as high.

    Annotators click a head on one whole slice, and a head that fills two slices about equally
    is clicked on either. Halfway between them, the peak lies half a slice from both choices;
    the sub-voxel parabola of `find_peaks` stays much closer to the stronger slice.

    Parameters
    ----------
    heatmap
        ``(Z, Y, X)`` map the peaks were found on.
    coords
        ``(N, 3)`` peak coordinates in ``heatmap``'s voxels.
    ratio
        A neighbouring slice counts when its value at the peak's ``(y, x)`` is at least
        ``ratio`` times the peak's.

    Returns
    -------
    numpy.ndarray
        ``(N, 3)`` coordinates: those of heads filling two slices moved halfway between them.

    Examples
    --------
    >>> h = np.zeros((4, 3, 3)); h[1, 1, 1] = 1.0; h[2, 1, 1] = 0.8
    >>> place_between_slices(h, np.array([[1.1, 1.0, 1.0]]), 0.5).tolist()
    [[1.5, 1.0, 1.0]]
    """
    if len(coords) == 0:
        return coords
    z, y, x = np.round(coords).astype(int).T
    last = heatmap.shape[0] - 1
    peak = heatmap[z, y, x]
    below = np.where(z > 0, heatmap[np.maximum(z - 1, 0), y, x], 0.0)
    above = np.where(z < last, heatmap[np.minimum(z + 1, last), y, x], 0.0)
    up = (above >= below) & (above >= ratio * peak)
    down = (below > above) & (below >= ratio * peak)
    placed = coords.astype(float)  # a copy
    placed[:, 0] = np.where(up, z + 0.5, np.where(down, z - 0.5, placed[:, 0]))
    return placed


def _suppress_close(
    coords: np.ndarray, scores: np.ndarray, voxel_size_um: Sequence[float], min_distance_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum suppression in µm (equal maxima in one footprint survive the filter)."""
    if len(coords) < 2:
        return coords, scores
    order = np.argsort(-scores, kind="stable")
    coords, scores = coords[order], scores[order]
    tree = cKDTree(coords * np.asarray(voxel_size_um))
    keep = np.ones(len(coords), bool)
    for i in range(len(coords)):
        if keep[i]:
            for j in tree.query_ball_point(coords[i] * np.asarray(voxel_size_um), min_distance_um):
                if j > i:
                    keep[j] = False
    return coords[keep], scores[keep]


def near_points(
    points: np.ndarray, reference: np.ndarray, voxel_size_um: Sequence[float], within_um: float
) -> np.ndarray:
    """Boolean mask of ``points`` within ``within_um`` of any ``reference`` point (both voxels).

    Parameters
    ----------
    points, reference
        ``(N, 3)`` and ``(M, 3)`` voxel coordinates.
    voxel_size_um
        Voxel size in µm, so distances are physical on anisotropic grids.
    within_um
        Largest distance in µm to the nearest reference point.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` bool; all False when ``reference`` is empty.

    Examples
    --------
    >>> points = np.array([[0, 0, 0], [0, 0, 10]])
    >>> near_points(points, np.array([[0, 0, 1]]), (1.0, 0.2, 0.2), within_um=1.0).tolist()
    [True, False]
    """
    if len(points) == 0 or len(reference) == 0:
        return np.zeros(len(points), bool)
    scale = np.asarray(voxel_size_um, dtype=float)
    distance, _ = cKDTree(reference * scale).query(points * scale)
    return distance <= within_um
