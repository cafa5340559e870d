"""Affinities: from labels (training targets, ground truth) and to boundaries.

Convention (the one of ``waterz``): ``affinities[c, z, y, x]`` is the affinity between voxel
``(z, y, x)`` and its neighbour one step back along axis ``c`` (0 = z, 1 = y, 2 = x). On the first
plane of each axis there is no such neighbour and the affinity is 0. Long-range affinities
(mutex watershed) generalise it: channel ``c`` holds the affinity of each voxel to the voxel
at ``offsets[c]`` from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Channel order of affinities: z, y, x.
AXES = ("z", "y", "x")


#: The offsets of nearest-neighbour affinities: one voxel back along z, y and x.
NEAREST = ((-1, 0, 0), (0, -1, 0), (0, 0, -1))


def _pairs(shape: tuple[int, ...], offset: Sequence[int]) -> tuple[tuple, tuple]:
    """Index tuples of the voxels that have a partner at ``offset``, and of those partners."""
    here, there = [], []
    for n, o in zip(shape, offset, strict=True):
        size = max(n - abs(o), 0)  # 0 where the offset is longer than the axis
        here.append(slice(max(-o, 0), max(-o, 0) + size))
        there.append(slice(max(o, 0), max(o, 0) + size))
    return tuple(here), tuple(there)


def labels_to_affinities(
    labels: np.ndarray, offsets: Sequence[Sequence[int]] = NEAREST
) -> np.ndarray:
    """Affinities of a label volume: 1 where a voxel and its partner at an offset share a label.

    Label 0 is boundary: it has affinity 0 to everything, itself included. A voxel whose
    partner lies outside the volume has affinity 0.

    Parameters
    ----------
    labels
        Integer ``(Z, Y, X)`` instance labels.
    offsets
        One ``(dz, dy, dx)`` per channel; the default `NEAREST` gives z, y, x affinities.

    Returns
    -------
    np.ndarray
        float32 ``(len(offsets), Z, Y, X)``.

    Raises
    ------
    ValueError
        ``labels`` that are not 3D.

    Examples
    --------
    >>> labels_to_affinities(np.array([[[1, 1, 0, 2]]]))[2].tolist()  # x-affinities
    [[[0.0, 1.0, 0.0, 0.0]]]
    >>> labels_to_affinities(np.array([[[1, 1, 0, 1]]]), [(0, 0, -3)])[0].tolist()
    [[[0.0, 0.0, 0.0, 1.0]]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D (z, y, x), not {labels.ndim}D")
    affinities = np.zeros((len(offsets), *labels.shape), np.float32)
    for channel, offset in enumerate(offsets):
        here, there = _pairs(labels.shape, offset)
        current = labels[here]
        affinities[(channel, *here)] = (current == labels[there]) & (current != 0)
    return affinities


def pair_mask(valid: np.ndarray, offsets: Sequence[Sequence[int]] = NEAREST) -> np.ndarray:
    """Which affinities are known: both a voxel and its partner at each offset are ``valid``.

    Parameters
    ----------
    valid
        Boolean ``(Z, Y, X)``: the voxels that hold data (not padding).
    offsets
        One ``(dz, dy, dx)`` per channel.

    Returns
    -------
    np.ndarray
        float32 ``(len(offsets), Z, Y, X)``; 0 where a partner lies outside the volume.

    Examples
    --------
    >>> pair_mask(np.array([[[True, True, False]]]), [(0, 0, -1)])[0].tolist()
    [[[0.0, 1.0, 0.0]]]
    """
    mask = np.zeros((len(offsets), *valid.shape), np.float32)
    for channel, offset in enumerate(offsets):
        here, there = _pairs(valid.shape, offset)
        mask[(channel, *here)] = valid[here] & valid[there]
    return mask


def boundary_map(affinities: np.ndarray, axes: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """How much each voxel looks like a boundary: 1 − mean affinity to its neighbours.

    Each voxel's affinities to its previous and next neighbour along ``axes`` are averaged,
    so the map is symmetric. In-plane only (the default) suits anisotropic stacks whose
    z-affinities are weak evidence.

    Parameters
    ----------
    affinities
        ``(3, Z, Y, X)`` affinities in [0, 1] (z, y, x channels).
    axes
        The axes to average over (0 = z, 1 = y, 2 = x); an axis of length 1 is skipped.

    Returns
    -------
    np.ndarray
        float32 ``(Z, Y, X)`` in [0, 1]; 1 means boundary.

    Examples
    --------
    >>> affinities = labels_to_affinities(np.array([[[1, 1, 2, 2]]]))
    >>> boundary_map(affinities).tolist()
    [[[0.0, 0.5, 0.5, 0.0]]]
    """
    affinities = np.asarray(affinities, np.float32)
    total = np.zeros(affinities.shape[1:], np.float32)
    count = np.zeros(affinities.shape[1:], np.float32)
    for axis in axes:
        if affinities.shape[1 + axis] < 2:
            continue
        here = [slice(None)] * 3
        back = [slice(None)] * 3
        here[axis], back[axis] = slice(1, None), slice(None, -1)
        edges = affinities[axis][tuple(here)]  # between each voxel pair along the axis
        total[tuple(here)] += edges
        total[tuple(back)] += edges
        count[tuple(here)] += 1
        count[tuple(back)] += 1
    return 1.0 - total / np.maximum(count, 1)
