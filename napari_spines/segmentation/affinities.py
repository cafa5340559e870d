"""Nearest-neighbour affinities: from labels (training targets, ground truth) and to boundaries.

Convention (the one of ``waterz``): ``affinities[c, z, y, x]`` is the affinity between voxel
``(z, y, x)`` and its neighbour one step back along axis ``c`` (0 = z, 1 = y, 2 = x). On the first
plane of each axis there is no such neighbour and the affinity is 0.
"""

from __future__ import annotations

import numpy as np

#: Channel order of affinities: z, y, x.
AXES = ("z", "y", "x")


def labels_to_affinities(labels: np.ndarray) -> np.ndarray:
    """Affinities of a label volume: 1 where a voxel and its previous neighbour share a label.

    Label 0 is boundary: it has affinity 0 to everything, itself included.

    Parameters
    ----------
    labels
        Integer ``(Z, Y, X)`` instance labels.

    Returns
    -------
    np.ndarray
        float32 ``(3, Z, Y, X)``.

    Raises
    ------
    ValueError
        ``labels`` that are not 3D.

    Examples
    --------
    >>> labels_to_affinities(np.array([[[1, 1, 0, 2]]]))[2].tolist()  # x-affinities
    [[[0.0, 1.0, 0.0, 0.0]]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D (z, y, x), not {labels.ndim}D")
    affinities = np.zeros((3, *labels.shape), np.float32)
    for axis in range(3):
        here = [slice(None)] * 3
        back = [slice(None)] * 3
        here[axis], back[axis] = slice(1, None), slice(None, -1)
        current = labels[tuple(here)]
        affinities[(axis, *here)] = (current == labels[tuple(back)]) & (current != 0)
    return affinities


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
