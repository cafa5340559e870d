"""Affinities → fragments → a merge hierarchy that relabels at any threshold instantly.

Fragments come from a seeded watershed of the boundary map (1 − mean affinity): seeds at the
maxima of the distance to the nearest boundary, per section for anisotropic stacks. The fragments
are then merged over the region adjacency graph by mean affinity, best edge first, recomputing
the mean of every edge a merge touches. That agglomeration is ``waterz``'s (C++, the tool the
connectomics field uses); it runs once down to the last merge, and its merge history is kept, so
`Agglomeration.labels` at another threshold is a union-find over a prefix of that history and a
lookup-table relabel, no new agglomeration.

Threshold: a merge's score is ``1 − mean affinity`` of the edge it merges; merging goes on while
the score is below the threshold. Higher thresholds merge more.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_spines.progress import ProgressCallback, raise_if_cancelled
from napari_spines.segmentation.affinities import boundary_map

#: Default merge threshold (score = 1 − mean affinity).
DEFAULT_THRESHOLD = 0.5


def check_affinities(affinities: np.ndarray) -> None:
    """Raise ValueError unless ``affinities`` has shape ``(3, Z, Y, X)``.

    Only the shape is checked, not that the values lie in [0, 1].

    Parameters
    ----------
    affinities
        The array to check (z, y, x channels first).

    Raises
    ------
    ValueError
        Any other shape.
    """
    shape = tuple(np.shape(affinities))
    if len(shape) != 4 or shape[0] != 3:
        raise ValueError(f"affinities must have shape (3, Z, Y, X) (z, y, x channels); got {shape}")


def watershed_fragments(
    affinities: np.ndarray,
    in_plane: bool = True,
    seed_boundary: float = 0.5,
    min_seed_distance: float = 2.0,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Over-segment a volume into fragments that follow the affinity boundaries.

    Parameters
    ----------
    affinities
        ``(3, Z, Y, X)`` affinities in [0, 1].
    in_plane
        True: 2D fragments per section from in-plane affinities (for anisotropic stacks, whose
        sections are agglomerated through z-affinities afterwards). False: 3D fragments.
    seed_boundary
        Voxels whose boundary value is below this are inside a cell.
    min_seed_distance
        Seeds are maxima of the distance to the boundary at least this far (voxels) from it;
        cells too thin for that get a seed at their farthest voxel.
    progress
        ``(done, total)`` callback per section; may raise `Cancelled`.

    Returns
    -------
    np.ndarray
        uint64 fragment ids 1..N, every voxel assigned.
    """
    from skimage.segmentation import watershed

    check_affinities(affinities)
    affinities = np.asarray(affinities, np.float32)
    boundaries = boundary_map(affinities, (1, 2) if in_plane else (0, 1, 2))
    blocks = [(z,) for z in range(boundaries.shape[0])] if in_plane else [()]
    fragments = np.zeros(boundaries.shape, np.uint64)
    offset = 0
    for done, index in enumerate(blocks):
        raise_if_cancelled(progress)
        boundary = boundaries[index]
        inside = boundary < seed_boundary
        distance = ndi.distance_transform_edt(inside)
        peaks = (distance == ndi.maximum_filter(distance, size=3)) & (distance >= min_seed_distance)
        seeds, n = ndi.label(peaks)
        # cells with no seed far enough from the boundary: seed their inside as a whole
        cells, n_cells = ndi.label(inside)
        unseeded = np.setdiff1d(np.arange(1, n_cells + 1), np.unique(cells[seeds > 0]))
        if len(unseeded):
            extra = np.isin(cells, unseeded)
            seeds[extra] = n + np.searchsorted(unseeded, cells[extra]) + 1
            n += len(unseeded)
        if n == 0:  # no inside at all: one fragment
            seeds[np.unravel_index(np.argmin(boundary), boundary.shape)] = n = 1
        block = watershed(boundary, seeds)
        fragments[index] = block.astype(np.uint64) + offset
        offset += n
        if progress is not None:
            progress(done + 1, len(blocks))
    return fragments


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence what C++ extensions print on the process's stdout (waterz logs every step)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@dataclass
class Agglomeration:
    """Fragments and the order in which mean-affinity agglomeration merges them.

    ``merges[i] = (a, b)`` is the i-th merge, of the segments containing fragments ``a`` and
    ``b``, at ``scores[i]`` (1 − mean affinity of the merged edge).
    """

    fragments: np.ndarray
    merges: np.ndarray
    scores: np.ndarray

    def merge_count(self, threshold: float) -> int:
        """How many merges agglomeration to ``threshold`` makes.

        Agglomeration stops at the first merge scoring at or above the threshold.

        Parameters
        ----------
        threshold
            Merge threshold (score = 1 − mean affinity); higher merges more.

        Returns
        -------
        int
            The length of the prefix of `merges` made.
        """
        running_max = np.maximum.accumulate(self.scores) if len(self.scores) else self.scores
        return int(np.searchsorted(running_max, threshold, side="left"))

    def lookup(self, threshold: float) -> np.ndarray:
        """Fragment id → segment id (1..M, 0 stays 0) at ``threshold``.

        Parameters
        ----------
        threshold
            Merge threshold (see `merge_count`).

        Returns
        -------
        np.ndarray
            uint64 table indexed by fragment id, ``fragments.max() + 1`` long.
        """
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = int(self.fragments.max()) + 1 if self.fragments.size else 1
        k = self.merge_count(threshold)
        a, b = self.merges[:k, 0], self.merges[:k, 1]
        graph = coo_matrix((np.ones(k, np.int8), (a, b)), shape=(n, n))
        _, component = connected_components(graph, directed=False)
        # compact the components to 1..M; fragment 0 (background) is never merged and stays 0
        table = np.zeros(n, np.uint64)
        table[1:] = np.unique(component[1:], return_inverse=True)[1] + 1
        return table

    def labels(self, threshold: float) -> np.ndarray:
        """The segmentation at ``threshold``: ``lookup(threshold)[fragments]``.

        Parameters
        ----------
        threshold
            Merge threshold (see `merge_count`).

        Returns
        -------
        np.ndarray
            uint64 segment ids, the shape of `fragments`.

        Examples
        --------
        >>> merged = Agglomeration(np.array([[[1, 2, 3]]]), np.array([[1, 2], [2, 3]]),
        ...                        np.array([0.1, 0.6]))
        >>> merged.labels(0.5).tolist(), merged.labels(0.7).tolist()
        ([[[1, 1, 2]]], [[[1, 1, 1]]])
        """
        return self.lookup(threshold)[self.fragments]

    def confidence(self, threshold: float) -> dict[int, float]:
        """Per segment at ``threshold``: 1 − the highest score of the merges that built it.

        Segments built from one fragment have confidence 1; a low value means some merge
        inside the segment was weakly supported.

        Parameters
        ----------
        threshold
            Merge threshold (see `merge_count`).

        Returns
        -------
        dict of int to float
            Segment id (as in `labels`) → confidence in [0, 1].
        """
        k = self.merge_count(threshold)
        table = self.lookup(threshold)
        worst: dict[int, float] = {}
        for (a, _b), score in zip(self.merges[:k], self.scores[:k], strict=True):
            segment = int(table[a])
            worst[segment] = max(worst.get(segment, 0.0), float(score))
        ids = np.unique(table[table > 0])
        return {int(i): 1.0 - worst.get(int(i), 0.0) for i in ids}


def scoring_function(quantile: int | None = None) -> str:
    """The ``waterz`` edge score: 1 − mean affinity, or 1 − a quantile (10 to 95, step 5).

    Parameters
    ----------
    quantile
        Percent quantile of an edge's affinities; None: their mean.

    Returns
    -------
    str
        The ``scoring_function`` for ``waterz.agglomerate``.

    Raises
    ------
    ValueError
        A quantile not in 10, 15, ..., 95.
    """
    if quantile is None:
        return "OneMinus<MeanAffinity<RegionGraphType, ScoreValue>>"
    if quantile not in range(10, 100, 5):
        raise ValueError(f"quantile must be one of 10, 15, ..., 95; got {quantile}")
    return (
        f"OneMinus<HistogramQuantileAffinity<RegionGraphType, {quantile}, ScoreValue, 256, false>>"
    )


def agglomerate(
    affinities: np.ndarray,
    fragments: np.ndarray,
    quantile: int | None = None,
    progress: ProgressCallback | None = None,
) -> Agglomeration:
    """Agglomerate ``fragments`` down to the last merge with ``waterz``.

    Edges are scored by their mean affinity, or by the ``quantile`` (percent) of their
    affinities, which a few boundary voxels inside a fragment cannot pull down.

    Parameters
    ----------
    affinities
        ``(3, Z, Y, X)`` affinities in [0, 1].
    fragments
        ``(Z, Y, X)`` fragment ids (`watershed_fragments`).
    quantile
        10 to 95 in steps of 5; None scores edges by their mean affinity.
    progress
        ``(done, total)`` callback; may raise `Cancelled`.

    Returns
    -------
    Agglomeration
        The fragments and their full merge history.

    Raises
    ------
    ValueError
        Affinities not shaped ``(3, Z, Y, X)``, or an unsupported ``quantile``.
    """
    import waterz

    check_affinities(affinities)
    raise_if_cancelled(progress)
    affinities = np.ascontiguousarray(affinities, np.float32)
    with _quiet_stdout():
        _, history = next(
            waterz.agglomerate(
                affinities,
                [1.0 + 1e-6],
                fragments=np.array(fragments, np.uint64, order="C"),
                return_merge_history=True,
                scoring_function=scoring_function(quantile),
            )
        )
    merges = np.array([(m["a"], m["b"]) for m in history], np.int64).reshape(-1, 2)
    scores = np.array([m["score"] for m in history], np.float64)
    if progress is not None:
        progress(1, 1)
    return Agglomeration(np.asarray(fragments), merges, scores)
