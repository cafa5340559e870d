"""Mutex watershed of nearest-neighbour and long-range affinities (``mwatershed``).

Every edge between a voxel and its partner at an offset gets the signed weight
``affinity - bias``: nearest-neighbour edges attract when positive and repel when negative;
long-range edges only repel (their positive part is dropped, as in Wolf et al. 2018, so two
distant voxels are never joined except through a chain of neighbours). The mutex watershed takes
the edges in order of decreasing weight magnitude, joins across attractive ones unless a
repulsive edge between the two clusters came first, and needs no seeds and no threshold.

On affinities that are not sure of themselves it leaves thousands of specks of a few voxels
(gala sections 13-20, with a checkpoint of one cross-validation fold that never trained on
them: 21463 segments for 40 cells). ``min_size`` gives segments smaller than that to their
neighbours, by a watershed of the boundary map seeded with the larger ones (per section in
"2d"): on those sections it took the adapted Rand error from 0.494 to 0.241 at 400 voxels.

``mwatershed`` keeps Python's GIL for the whole run (26 s on 20 ISBI sections): from a worker
thread that would freeze napari's window. Called from any thread but the main one,
`mutex_watershed` therefore runs in a child process (`napari_spines.child_process`); on the
main thread (the command line, training) it runs here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from napari_spines.progress import ProgressCallback, raise_if_cancelled
from napari_spines.segmentation.affinities import boundary_map


def mutex_watershed(
    affinities: np.ndarray,
    offsets: Sequence[Sequence[int]],
    bias: float = 0.5,
    mode: str = "3d",
    min_size: int = 0,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Segment affinities with the mutex watershed.

    Parameters
    ----------
    affinities
        ``(len(offsets), Z, Y, X)`` affinities in [0, 1] (`labels_to_affinities`'s convention).
    offsets
        One ``(dz, dy, dx)`` per channel; those with one non-zero step of 1 are the
        nearest-neighbour edges, the others long-range.
    bias
        Affinity at which an edge changes from repulsive to attractive (the analogue of an
        agglomeration threshold).
    mode
        ``"3d"``: every offset; ``"2d"``: offsets within a section only, so each section is
        segmented on its own. Offsets longer than the stack are left out.
    min_size
        Segments of fewer voxels go to their neighbours (`absorb_small_segments`); 0: kept.
    progress
        Only its Cancel is used: off the main thread, a cancelled `CancellableProgress` stops
        the child process at once (mwatershed reports no progress).

    Returns
    -------
    np.ndarray
        uint64 ``(Z, Y, X)`` labels, 1 to the number of segments.

    Raises
    ------
    ValueError
        A channel count that differs from the number of offsets.
    Cancelled
        ``progress`` was cancelled (off the main thread).

    Examples
    --------
    >>> from napari_spines.segmentation.affinities import labels_to_affinities
    >>> truth = np.array([[[1, 1, 2, 2, 2]]])
    >>> offsets = [(0, 0, -1), (0, 0, -2)]
    >>> mutex_watershed(labels_to_affinities(truth, offsets), offsets).tolist()
    [[[1, 1, 2, 2, 2]]]
    """
    if len(affinities) != len(offsets):
        raise ValueError(f"{len(affinities)} affinity channels for {len(offsets)} offsets")
    raise_if_cancelled(progress)
    if threading.current_thread() is not threading.main_thread():  # keep the GIL free
        from napari_spines.child_process import run_in_child

        offsets = [tuple(int(d) for d in o) for o in offsets]
        return run_in_child(
            _mutex_watershed,
            np.asarray(affinities),
            offsets,
            bias,
            mode,
            min_size,
            progress=progress,
            grace_s=0.0,
        )
    return _mutex_watershed(affinities, offsets, bias, mode, min_size)


def _mutex_watershed(
    affinities: np.ndarray,
    offsets: Sequence[Sequence[int]],
    bias: float,
    mode: str,
    min_size: int,
    progress: object = None,
) -> np.ndarray:
    """`mutex_watershed` in this thread (``progress`` is `run_in_child`'s, and unused)."""
    import mwatershed

    shape = np.shape(affinities)[1:]
    keep = [  # an offset longer than the stack has no edges (and would stop mwatershed)
        c
        for c, o in enumerate(offsets)
        if (mode != "2d" or o[0] == 0) and all(abs(d) < n for d, n in zip(o, shape, strict=True))
    ]
    weights = np.asarray(affinities, np.float64)[keep] - bias
    for row, channel in enumerate(keep):
        if sum(abs(int(step)) for step in offsets[channel]) > 1:  # long range: repulsive only
            np.minimum(weights[row], 0.0, out=weights[row])
    labels = mwatershed.agglom(weights, [list(map(int, offsets[c])) for c in keep])
    if min_size > 0:
        nearest = [c for c, o in enumerate(offsets) if sum(abs(int(d)) for d in o) == 1]
        boundaries = boundary_map(affinities[nearest], (1, 2) if mode == "2d" else (0, 1, 2))
        labels = absorb_small_segments(labels, boundaries, min_size, in_plane=mode == "2d")
    _, sequential = np.unique(labels, return_inverse=True)
    return (sequential.reshape(labels.shape) + 1).astype(np.uint64)


def absorb_small_segments(
    labels: np.ndarray, boundaries: np.ndarray, min_size: int, in_plane: bool = False
) -> np.ndarray:
    """Give segments smaller than ``min_size`` voxels to their neighbours.

    A watershed of ``boundaries``, seeded with the segments that are large enough, floods the
    voxels of the small ones. A section (``in_plane``) or volume without a large segment is
    kept as it was.

    Parameters
    ----------
    labels
        ``(Z, Y, X)`` segments.
    boundaries
        ``(Z, Y, X)`` boundary map (`boundary_map`), high on membranes.
    min_size
        Segments of fewer voxels are absorbed.
    in_plane
        Flood each section on its own (labels that never cross sections).

    Returns
    -------
    np.ndarray
        Labels of the same shape and dtype.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 1, 2, 3, 3, 3]]])
    >>> boundaries = np.array([[[0, 0, 0, 0.4, 0.6, 0, 0]]])
    >>> absorb_small_segments(labels, boundaries, 2).tolist()
    [[[1, 1, 1, 1, 3, 3, 3]]]
    """
    from skimage.segmentation import watershed

    if in_plane and labels.shape[0] > 1:
        return np.stack(
            [
                absorb_small_segments(labels[z : z + 1], boundaries[z : z + 1], min_size)[0]
                for z in range(labels.shape[0])
            ]
        )
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    large = (counts >= min_size)[inverse.reshape(labels.shape)]
    if not large.any() or large.all():
        return labels
    return watershed(boundaries, np.where(large, labels, 0)).astype(labels.dtype)
