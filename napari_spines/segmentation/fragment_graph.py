"""The fragments under a segmentation: their adjacency graph, and a seeded cut of it.

Agglomeration builds segments out of watershed fragments. A split that reassigns whole fragments
needs no voxel watershed: it cuts the fragments' adjacency graph between the seeds (a seeded
minimum spanning forest, the graph form of a seeded watershed) and rewrites only the moved
fragments, inside their own bounding boxes. That keeps a split of a segment spanning a
100 × 1024 × 1024 volume in milliseconds, where a voxel watershed over its bounding box takes
seconds (`benchmarks/proofreading_latency.py`).

The graph is built once per set of fragments (one pass over the volume, a few planes at a time);
`owners` tells which fragments lie wholly inside which segment of a label volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import fastremap
import numpy as np
from scipy import ndimage as ndi

from napari_spines.progress import ProgressCallback, raise_if_cancelled


@dataclass(frozen=True)
class FragmentGraph:
    """Fragments, their adjacency and the mean boundary value between neighbours.

    Attributes
    ----------
    fragments
        ``(Z, Y, X)`` fragment ids (0: none), the over-segmentation the labels are made of.
    edges
        ``(E, 2)`` int64 pairs ``a < b`` of fragments that touch (6-connectivity).
    weights
        ``(E,)`` float32 mean boundary value over each pair's touching voxels (the higher of the
        two voxels' values): low means the fragments belong together.
    boxes
        ``(N + 1, 6)`` int64 bounding box of each fragment id (``lo_z, lo_y, lo_x, hi_z, hi_y,
        hi_x``, hi exclusive); zeros for absent ids.
    counts
        ``(N + 1,)`` int64 voxel count of each fragment id.
    """

    fragments: np.ndarray
    edges: np.ndarray
    weights: np.ndarray
    boxes: np.ndarray
    counts: np.ndarray


def _interface_sums(
    fragments: np.ndarray, boundaries: np.ndarray, axis: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys ``a * n + b`` of touching pairs along ``axis`` with their summed weights, counts."""
    lo = [slice(None)] * 3
    hi = [slice(None)] * 3
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    a, b = fragments[tuple(lo)], fragments[tuple(hi)]
    touching = (a != b) & (a != 0) & (b != 0)
    a, b = a[touching].astype(np.uint64), b[touching].astype(np.uint64)
    value = np.maximum(boundaries[tuple(lo)][touching], boundaries[tuple(hi)][touching])
    keys = np.minimum(a, b) * np.uint64(n) + np.maximum(a, b)
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, weights=value, minlength=len(unique))
    return unique, sums, np.bincount(inverse, minlength=len(unique)).astype(np.float64)


def build_fragment_graph(
    fragments: np.ndarray,
    boundaries: np.ndarray,
    planes: int = 8,
    progress: ProgressCallback | None = None,
) -> FragmentGraph:
    """Adjacency graph of ``fragments`` weighted by the ``boundaries`` between them.

    Parameters
    ----------
    fragments
        Non-negative integer ``(Z, Y, X)`` or ``(Y, X)`` fragment ids (0: none).
    boundaries
        Float map of the same shape, high on cell boundaries (1 − affinity).
    planes
        Sections handled at a time, to bound memory.
    progress
        ``(done, total)`` callback per block of planes; may raise `Cancelled`.

    Returns
    -------
    FragmentGraph
        The fragments with the edges between touching ones and their boundary weights.

    Raises
    ------
    ValueError
        Fragments that are not integers, or boundaries of another shape.
    """
    fragments = np.asarray(fragments)
    boundaries = np.asarray(boundaries)
    if not np.issubdtype(fragments.dtype, np.integer):
        raise ValueError(f"fragments must be integers, got dtype {fragments.dtype}")
    if boundaries.shape != fragments.shape:
        raise ValueError(
            f"boundaries shape {boundaries.shape} does not match fragments shape {fragments.shape}"
        )
    if fragments.ndim == 2:
        fragments, boundaries = fragments[np.newaxis], boundaries[np.newaxis]
    if fragments.ndim != 3:
        raise ValueError(f"fragments must be 2D or 3D, not {fragments.ndim}D")
    n = int(fragments.max()) + 1 if fragments.size else 1
    depth = fragments.shape[0]
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    starts = range(0, depth, planes)
    for done, z in enumerate(starts):
        raise_if_cancelled(progress)
        block = slice(z, min(z + planes + 1, depth))  # one plane of overlap for z-pairs
        f, b = fragments[block], boundaries[block]
        parts.append(_interface_sums(f, b, 0, n))
        inner = slice(0, min(planes, depth - z))  # in-plane pairs of this block's own planes
        for axis in (1, 2):
            parts.append(_interface_sums(f[inner], b[inner], axis, n))
        if progress is not None:
            progress(done + 1, len(starts))
    keys = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint64)
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(
        inverse,
        weights=np.concatenate([p[1] for p in parts]) if parts else None,
        minlength=len(unique),
    )
    touching = np.bincount(
        inverse,
        weights=np.concatenate([p[2] for p in parts]) if parts else None,
        minlength=len(unique),
    )
    edges = np.column_stack([unique // np.uint64(n), unique % np.uint64(n)]).astype(np.int64)
    weights = (sums / np.maximum(touching, 1)).astype(np.float32)
    ids, sizes = fastremap.unique(fragments, return_counts=True)  # no int64 copy of the volume
    counts = np.zeros(n, np.int64)
    counts[ids.astype(np.int64)] = sizes
    return FragmentGraph(fragments, edges, weights, _fragment_boxes(fragments, n), counts)


def _fragment_boxes(fragments: np.ndarray, n: int) -> np.ndarray:
    boxes = np.zeros((n, 6), np.int64)
    objects = ndi.find_objects(fragments, max_label=n - 1)
    for i, box in enumerate(objects, start=1):
        if box is not None:
            boxes[i] = [s.start for s in box] + [s.stop for s in box]
    return boxes


def owners(
    graph: FragmentGraph, labels: np.ndarray, planes: int = 8
) -> tuple[np.ndarray, set[int]]:
    """Which segment each fragment lies wholly in, and the segments not made of whole fragments.

    Parameters
    ----------
    graph
        The fragments.
    labels
        ``(Z, Y, X)`` segment ids, the shape of ``graph.fragments``.
    planes
        Sections compared at a time, to keep temporaries small.

    Returns
    -------
    owner : np.ndarray
        ``owner[f]`` is the segment every voxel of fragment ``f`` has, or 0 when its voxels
        have several ids (or are background).
    mixed : set of int
        Segments with voxels in a fragment they do not own: a split of those must work voxel
        by voxel.
    """
    fragments = graph.fragments
    n = len(graph.counts)
    owner = np.zeros(n, np.int64)
    mapping = fastremap.component_map(fragments, labels)
    if mapping:
        keys = np.fromiter(mapping.keys(), np.int64, len(mapping))
        owner[keys] = np.fromiter(mapping.values(), np.int64, len(mapping))
    expected = owner.astype(labels.dtype)
    shared = np.zeros(n, bool)  # fragments holding voxels of another segment than their owner's
    mixed: set[int] = set()
    for z in range(0, fragments.shape[0], planes):  # a few planes at a time: small temporaries
        block = slice(z, z + planes)
        wrong = labels[block] != expected[fragments[block]]
        if wrong.any():
            shared[fastremap.unique(fragments[block][wrong]).astype(np.int64)] = True
    if shared.any():
        owner[shared] = 0
        for z in range(0, fragments.shape[0], planes):
            block = slice(z, z + planes)
            mixed.update(fastremap.unique(labels[block][shared[fragments[block]]]).tolist())
        mixed.discard(0)
    owner[0] = 0
    return owner, mixed


def seeded_cut(edges: np.ndarray, weights: np.ndarray, seeds: np.ndarray) -> dict[int, int]:
    """Assign the nodes of a graph to seeds along its strongest links.

    A seeded minimum spanning forest: edges are taken from the lowest weight up, joining two
    trees unless both already hold a seed. Nodes no seed reaches are left out.

    Parameters
    ----------
    edges
        ``(E, 2)`` node ids.
    weights
        ``(E,)`` edge weights (low: belong together).
    seeds
        ``(K,)`` distinct node ids, one per seed.

    Returns
    -------
    dict
        Node id → seed index ``0..K-1``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    nodes = np.unique(np.concatenate([np.ravel(edges), np.ravel(seeds)]).astype(np.int64))
    local = np.searchsorted(nodes, edges).reshape(-1, 2)
    size = len(nodes)
    shift = 1.0 - float(np.min(weights)) if len(weights) else 0.0  # the MST ignores zero weights
    graph = coo_matrix(
        (np.asarray(weights, np.float64) + shift, (local[:, 0], local[:, 1])), shape=(size, size)
    )
    tree = minimum_spanning_tree(graph).tocoo()
    order = np.argsort(tree.data, kind="stable")
    parent = list(range(size))
    seed_of = [-1] * size
    for k, node in enumerate(np.searchsorted(nodes, seeds).tolist()):
        seed_of[node] = k

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(tree.row[order].tolist(), tree.col[order].tolist(), strict=True):
        ra, rb = find(a), find(b)
        if seed_of[ra] >= 0 and seed_of[rb] >= 0:
            continue  # would join two seeds: the cut goes here
        parent[ra] = rb
        seed_of[rb] = max(seed_of[ra], seed_of[rb])
    assigned = {}
    for i in range(size):
        k = seed_of[find(i)]
        if k >= 0:
            assigned[int(nodes[i])] = k
    return assigned
