"""Latency of proofreading edits on a large label volume, against a naive whole-volume merge.

Run:  .venv/bin/python benchmarks/proofreading_latency.py [--shape 100 1024 1024]
          [--segments 2000] [--repeats 10] [--json PATH]

Builds Voronoi-like cells (nearest of random seeds on a coarse grid, upsampled) as uint32
labels, and an in-plane boundary map from them, then times :class:`Proofreader` construction
(the index) and each edit on different random segments: merge, split (seeded watershed on the
boundaries, and on the distance transform), delete, fill_holes (a one-voxel cavity carved in
each target), undo and redo of all of those, next_segment and relabel_sequential. The baseline
``labels[labels == b] = a`` is what a merge costs when it scans the whole volume.

The cells are also the fragments of a :class:`FragmentGraph`, as agglomeration's fragments
are in the Segmentation widget: a split of a segment made of many cells then reassigns whole
cells. It is timed beside the voxel watershed split of the same segment.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_spines.segmentation.affinities import boundary_map, labels_to_affinities
from napari_spines.segmentation.fragment_graph import FragmentGraph, build_fragment_graph
from napari_spines.segmentation.proofreading import Proofreader

#: Coarse-grid cell size (z, y, x) of the Voronoi seeds; cells come out ~4× these in voxels.
FACTOR = (4, 8, 8)


def make_labels(shape: tuple[int, int, int], segments: int, seed: int = 0) -> np.ndarray:
    """Voronoi cells of ``segments`` random seeds on a coarse grid, upsampled to ``shape``."""
    rng = np.random.default_rng(seed)
    coarse_shape = tuple(-(-s // f) for s, f in zip(shape, FACTOR, strict=True))
    size = int(np.prod(coarse_shape))
    segments = min(segments, size)
    flat = rng.choice(size, segments, replace=False)
    ids = np.zeros(coarse_shape, np.uint32)
    ids.ravel()[flat] = np.arange(1, segments + 1, dtype=np.uint32)
    nearest = ndi.distance_transform_edt(ids == 0, return_distances=False, return_indices=True)
    coarse = ids[tuple(nearest)]
    del nearest
    index = [np.arange(s) // f for s, f in zip(shape, FACTOR, strict=True)]
    return coarse[np.ix_(*index)]


def make_boundaries(labels: np.ndarray, planes: int = 8) -> np.ndarray:
    """In-plane boundary map of the labels, a few planes at a time to bound memory."""
    out = np.empty(labels.shape, np.float32)
    for z in range(0, labels.shape[0], planes):
        out[z : z + planes] = boundary_map(labels_to_affinities(labels[z : z + planes]))
    return out


def carve_cavity(labels: np.ndarray, segment_id: int, box: tuple[slice, ...]) -> bool:
    """Set one voxel deep inside the segment to 0 (a hole for fill_holes); False if too thin."""
    inner = ndi.binary_erosion(labels[box] == segment_id, np.ones((3, 3, 3), bool))
    points = np.argwhere(inner)
    if not len(points):
        return False
    z, y, x = points[len(points) // 2] + [s.start for s in box]
    labels[z, y, x] = 0
    return True


def spanning_halves(boxes: list, shape: tuple[int, int, int]) -> tuple[list[int], list[int]]:
    """Two slabs of cells, side by side, that each span the volume in z and x.

    The cells whose box centre lies in y within 3/8 to 1/2 of the height, and within 1/2 to 5/8:
    each slab is connected, as a neuron spanning the volume is.
    """
    height = shape[1]
    slabs: tuple[list[int], list[int]] = ([], [])
    for i, box in enumerate(boxes, start=1):
        if box is None:
            continue
        centre = (box[1].start + box[1].stop) / 2 / height
        if 3 / 8 <= centre < 1 / 2:
            slabs[0].append(i)
        elif 1 / 2 <= centre < 5 / 8:
            slabs[1].append(i)
    return slabs


def link_halves(graph: FragmentGraph, halves: tuple[list[int], list[int]]) -> FragmentGraph:
    """Weigh the edges inside each group 0 and all others 1, as agglomeration would have.

    The boundaries of these labels are no guide to which cells belong together (every cell
    boundary is as strong, and z-faces carry none in-plane), so a seeded cut of the groups'
    union could split off a single cell. With each group linked, the cut recovers the groups
    and moves half the voxels: the costly case.
    """
    group = np.zeros(len(graph.counts), np.int8)
    for k, cells in enumerate(halves, start=1):
        group[cells] = k
    a, b = group[graph.edges[:, 0]], group[graph.edges[:, 1]]
    return dataclasses.replace(graph, weights=np.where((a == b) & (a > 0), 0, 1).astype(np.float32))


def far_seeds(pr: Proofreader, segment_id: int) -> np.ndarray:
    """Two voxels of the segment, the first and last in scan order."""
    box = pr.bounding_box(segment_id)
    points = np.argwhere(pr.labels[box] == segment_id) + [s.start for s in box]
    return points[[0, -1]]


class Times(dict[str, list[float]]):
    """Seconds per run, by operation."""

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.setdefault(name, []).append(time.perf_counter() - t0)


def time_edits(
    times: Times,
    labels: np.ndarray,
    boundaries: np.ndarray,
    merge_ids: list[int],
    split_ids: list[int],
    delete_ids: list[int],
    fill_ids: list[int],
    halves: tuple[list[int], list[int]],
    repeats: int,
) -> list[np.ndarray]:
    """Time construction, edits, undo, redo and navigation; leave the labels as they were."""
    with times.measure("build_fragment_graph (the cells as fragments; once per segmentation)"):
        graph = build_fragment_graph(labels.copy(), boundaries)
    graph = link_halves(graph, halves)
    with times.measure("Proofreader(labels, boundaries) (index)"):
        Proofreader(labels, boundaries)
    with times.measure("Proofreader(labels, boundaries, fragments) (index and owners)"):
        pr = Proofreader(labels, boundaries, fragments=graph)
    for a, b in zip(merge_ids[::2], merge_ids[1::2], strict=True):
        with times.measure("merge (2 segments)"):
            pr.merge([a, b])
    seeds = [far_seeds(pr, i) for i in split_ids]
    for i, s in zip(split_ids, seeds, strict=True):
        with times.measure("split (2 seeds, boundaries)"):
            pr.split(i, s)
    for i in delete_ids:
        with times.measure("delete"):
            pr.delete(i)
    for i in fill_ids:
        with times.measure("fill_holes (1-voxel cavity)"):
            pr.fill_holes(i)
    n_edits = len(pr.edits)
    edited = labels.copy()
    for _ in range(n_edits):
        with times.measure("undo (each edit above)"):
            pr.undo()
    for _ in range(n_edits):
        with times.measure("redo (each edit above)"):
            pr.redo()
    if not np.array_equal(labels, edited):
        raise RuntimeError("redo did not give back the edited labels")
    for k in range(repeats):
        with times.measure("next_segment (largest)"):
            pr.next_segment("largest", after=k + 1)
    time_spanning_merge(times, pr, boundaries, halves, repeats)
    while pr.undo() is not None:
        pass
    return seeds


def time_spanning_merge(
    times: Times,
    pr: Proofreader,
    boundaries: np.ndarray,
    halves: tuple[list[int], list[int]],
    repeats: int,
) -> None:
    """Merge two segments that each span the volume (many cells merged), then undo; repeat.

    Then split their union with one seed in each, and undo; repeat: by whole fragments, and by
    a voxel watershed (a proofreader without the fragments).
    """
    first, second = halves
    a = pr.merge(first).new_ids[0]
    b = pr.merge(second).new_ids[0]
    sizes = [int(np.prod([s.stop - s.start for s in pr.bounding_box(i)])) for i in (a, b)]
    counts = [pr.voxel_count(i) for i in (a, b)]
    print(
        f"spanning segments: bounding boxes of {sizes[0] / 1e6:.0f} M and "
        f"{sizes[1] / 1e6:.0f} M voxels"
    )
    for _ in range(repeats):
        with times.measure(
            f"merge (2 segments of {len(first)} and {len(second)} cells, spanning the volume)"
        ):
            pr.merge([a, b])
        with times.measure("undo that merge"):
            pr.undo()
    seeds = np.stack([far_seeds(pr, a)[0], far_seeds(pr, b)[0]])
    merged = pr.merge([a, b]).new_ids[0]
    expected = None
    cells = len(first) + len(second)
    for _ in range(repeats):
        with times.measure(f"split (2 seeds) of the merged slabs ({cells} cells), fragments"):
            pr.split(merged, seeds)
        if expected is None:
            expected = {i: pr.voxel_count(i) for i in [*pr.edits[-1].new_ids, merged]}
        with times.measure("undo that split (fragments)"):
            pr.undo()
    print(f"fragment split: voxels per piece {expected}; the merged halves had {counts}")
    by_voxels = Proofreader(pr.labels, boundaries)
    for _ in range(min(repeats, 3)):  # seconds each: a few runs tell the story
        with times.measure(f"split (2 seeds) of the merged slabs ({cells} cells), voxel watershed"):
            by_voxels.split(merged, seeds)
        with times.measure("undo that split (voxels)"):
            by_voxels.undo()


def time_plain(
    times: Times, labels: np.ndarray, split_ids: list[int], seeds: list[np.ndarray]
) -> None:
    """Split without boundaries, then relabel the whole volume and undo that."""
    pr = Proofreader(labels)
    for i, s in zip(split_ids, seeds, strict=True):
        with times.measure("split (2 seeds, distance transform)"):
            pr.split(i, s)
    pr.delete(pr.next_segment("smallest"))  # leave a gap so that every id moves
    with times.measure("relabel_sequential (whole volume)"):
        pr.relabel_sequential()
    with times.measure("undo relabel_sequential"):
        pr.undo()
    while pr.undo() is not None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", type=int, nargs=3, default=[100, 1024, 1024], metavar=("Z", "Y", "X")
    )
    parser.add_argument("--segments", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    shape, repeats = tuple(args.shape), args.repeats
    rng = np.random.default_rng(1)

    t0 = time.perf_counter()
    labels = make_labels(shape, args.segments)
    boxes = ndi.find_objects(labels)
    present = [i + 1 for i, box in enumerate(boxes) if box is not None]
    halves = spanning_halves(boxes, shape)
    in_slabs = set(halves[0] + halves[1])
    pool = [int(i) for i in rng.permutation(present) if i not in in_slabs]
    merge_ids = [pool.pop() for _ in range(2 * repeats)]
    split_ids = [pool.pop() for _ in range(repeats)]
    delete_ids = [pool.pop() for _ in range(repeats)]
    fill_ids = [i for i in pool if carve_cavity(labels, i, boxes[i - 1])][:repeats]
    del boxes
    boundaries = make_boundaries(labels)
    print(
        f"labels {shape} uint32, {len(present)} segments, built in {time.perf_counter() - t0:.1f} s"
    )

    times = Times()
    seeds = time_edits(
        times, labels, boundaries, merge_ids, split_ids, delete_ids, fill_ids, halves, repeats
    )
    del boundaries
    time_plain(times, labels, split_ids, seeds)
    for a, b in rng.choice(present, size=(repeats, 2), replace=False):
        with times.measure("baseline: labels[labels == b] = a"):
            labels[labels == b] = a

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = {
        name: {"n": len(ts), "median_ms": 1000 * statistics.median(ts), "max_ms": 1000 * max(ts)}
        for name, ts in times.items()
    }
    print("| operation | n | median (ms) | max (ms) |")
    print("| --- | --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['n']} | {row['median_ms']:.1f} | {row['max_ms']:.1f} |")
    print(f"peak memory {peak_mib:.0f} MiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "shape": list(shape),
                    "segments": len(present),
                    "peak_mib": peak_mib,
                    "operations": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
