"""What the Training data widget works out without a screen: boxes, coordinates and counts.

Layers of napari place their data in the world by ``scale`` and ``translate``; the store wants
everything in the image's voxels. These functions convert coordinates between layers, turn a
drawn shape into a box and a traced path into points along it, count proofreading edits, and
sum up a store per task.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from napari_spines.io.layers import LayerData
from napari_spines.training.store import Entry, StoreContents, describe

#: Edit operation of the edit log → what the store counts.
EDIT_COUNTS = {
    "merge": "merged",
    "split": "split",
    "delete": "deleted",
    "fill_holes": "filled",
    "relabel": "relabelled",
}


def layer_to_voxels(
    coords: np.ndarray,
    scale: Sequence[float],
    translate: Sequence[float],
    image_scale: Sequence[float],
    image_translate: Sequence[float],
) -> np.ndarray:
    """Coordinates of one layer's data as voxels of an image layer (through the world).

    Parameters
    ----------
    coords
        ``(N, D)`` data coordinates of the layer.
    scale, translate
        The layer's ``scale`` and ``translate`` (their last ``D`` entries are used).
    image_scale, image_translate
        The image layer's (their last ``D`` entries are used).

    Returns
    -------
    numpy.ndarray
        ``(N, D)`` float voxel coordinates of the image.

    Examples
    --------
    >>> layer_to_voxels(np.array([[2.0, 4.0]]), (0.5, 0.5), (0, 0), (0.25, 0.25), (0, 1.0))
    array([[4., 4.]])
    """
    coords = np.asarray(coords, float)
    if coords.ndim != 2:
        coords = coords.reshape(len(coords), -1)
    d = coords.shape[1]
    s, t = np.asarray(scale, float)[-d:], np.asarray(translate, float)[-d:]
    si, ti = np.asarray(image_scale, float)[-d:], np.asarray(image_translate, float)[-d:]
    return (coords * s + t - ti) / si


def box_of_vertices(vertices: np.ndarray, shape: Sequence[int]) -> tuple[int, ...]:
    """The box ``(z0, y0, x0, z1, y1, x1)`` of the voxels inside a shape's vertices.

    A voxel is in when its centre lies within the vertices' bounding box. A 2D shape, or one
    drawn in a single plane, spans the whole z range.

    Parameters
    ----------
    vertices
        ``(N, 2)`` or ``(N, 3)`` vertices in the image's voxels.
    shape
        The image's shape (Z, Y, X).

    Returns
    -------
    tuple of int
        The box, clipped to ``shape``.

    Raises
    ------
    ValueError
        No vertices, or a box holding no voxel of the image.

    Examples
    --------
    >>> box_of_vertices(np.array([[5.0, 10.2, 20], [5.0, 30, 40.7]]), (16, 64, 64))
    (0, 11, 20, 16, 31, 41)
    """
    from napari_spines.training.store import check_box

    vertices = np.asarray(vertices, float)
    if vertices.size == 0:
        raise ValueError("the region shape has no vertices")
    vertices = vertices.reshape(len(vertices), -1)[:, -3:]
    low = np.ceil(vertices.min(0) - 1e-6).astype(int)
    high = np.floor(vertices.max(0) + 1e-6).astype(int) + 1
    if vertices.shape[1] == 2 or high[0] - low[0] <= 1:  # drawn in a plane: every plane
        low, high = np.r_[0, low[-2:]], np.r_[int(shape[0]), high[-2:]]
    return check_box((*low.tolist(), *high.tolist()), shape)


def densify_path(vertices: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Points every ``step`` voxels along a path through ``vertices`` (the vertices too).

    A traced dendrite drawn as a few vertices becomes points along all of it, so "within so
    many µm of the dendrite" holds between the vertices as well.

    Parameters
    ----------
    vertices
        ``(N, D)`` vertices, in order.
    step
        Largest distance between consecutive points, in voxels.

    Returns
    -------
    numpy.ndarray
        ``(M, D)`` points, ``M >= N``.

    Examples
    --------
    >>> densify_path(np.array([[0.0, 0, 0], [0, 0, 3]])).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, 3.0]]
    """
    vertices = np.asarray(vertices, float)
    if len(vertices) < 2:
        return vertices.copy()
    pieces = []
    for a, b in itertools.pairwise(vertices):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        pieces.append(a + (b - a) * (np.arange(n)[:, None] / n))
    return np.vstack([*pieces, vertices[-1:]])


def edit_counts(edits: Iterable[Mapping[str, Any]], painted: int = 0) -> dict[str, int]:
    """How many proofreading edits of each kind, as the store records them.

    Parameters
    ----------
    edits
        The edit log (dicts with an ``operation``), oldest first.
    painted
        Brush strokes painted by hand.

    Returns
    -------
    dict
        ``merged``, ``split``, ``deleted``, ``filled``, ``relabelled``, ``painted``.

    Examples
    --------
    >>> edit_counts([{"operation": "merge"}, {"operation": "merge"}, {"operation": "split"}], 4)
    {'merged': 2, 'split': 1, 'deleted': 0, 'filled': 0, 'relabelled': 0, 'painted': 4}
    """
    counts = dict.fromkeys(EDIT_COUNTS.values(), 0)
    for edit in edits:
        key = EDIT_COUNTS.get(str(edit.get("operation")))
        if key is not None:
            counts[key] += 1
    counts["painted"] = int(painted)
    return counts


def counts_text(counts: Mapping[str, int]) -> str:
    """``"3 accepted, 1 rejected"``: the counts that are not 0.

    Parameters
    ----------
    counts
        Kind → count.

    Returns
    -------
    str
        ``"no corrections"`` when every count is 0.

    Examples
    --------
    >>> counts_text({"auto": 0, "accepted": 3, "rejected": 1})
    '3 accepted, 1 rejected'
    """
    text = ", ".join(f"{int(v)} {k}" for k, v in counts.items() if v)
    return text or "no corrections"


def store_overview(contents: StoreContents) -> list[str]:
    """What a store holds, per task: a heading, then one line per entry (`describe`).

    The heading counts the entries and sums the corrections of the newest versions.

    Parameters
    ----------
    contents
        From `~napari_spines.training.store.load_store`.

    Returns
    -------
    list of str
        ``["spines: 2 entries (2 newest): 12 accepted, 3 rejected", "  ID  spines  v1 …"]``;
        ``["the store is empty"]`` when it holds nothing.
    """
    lines = describe(contents)
    out = []
    for task in dict.fromkeys(entry.task for entry in contents.entries):
        latest = contents.latest(task)
        summed: dict[str, int] = {}
        for entry in latest:
            for kind, n in entry.record.get("counts", {}).items():
                summed[kind] = summed.get(kind, 0) + int(n)
        entries = [line for e, line in zip(contents.entries, lines, strict=True) if e.task == task]
        plural = "entry" if len(entries) == 1 else "entries"
        out.append(f"{task}: {len(entries)} {plural} ({len(latest)} newest): {counts_text(summed)}")
        out += [f"  {line}" for line in entries]
    return out or ["the store is empty"]


def entry_layer_data(entry: Entry) -> list[LayerData]:
    """An entry of the store as napari layer data: its image, then its spines or labels.

    Spines are coloured by status (`~napari_spines.spines.review.status_colours`); traced
    dendrites, when the entry has them, come last. Everything is placed at the entry's voxel
    size, in µm.

    Parameters
    ----------
    entry
        From `~napari_spines.training.store.load_store`.

    Returns
    -------
    list of LayerData
        ``(data, meta, kind)`` tuples.

    Raises
    ------
    ValueError
        A file of the entry cannot be read.
    """
    from napari_spines.io.layers import placement, spine_points_style, volume_to_layer_data
    from napari_spines.io.points_csv import read_points_csv
    from napari_spines.io.read import read_volumes
    from napari_spines.spines.review import status_colours

    voxel = entry.voxel_size_um
    place = {**placement("ZYX", voxel), "metadata": {"axes": "ZYX", "entry": entry.id}}
    layers = []
    for data, meta, kind in volume_to_layer_data(read_volumes(entry.path("image.tif"))[0]):
        layers.append((data, {**meta, "name": f"{entry.id} image"}, kind))
    if entry.has("points.csv"):
        coords, _, properties = read_points_csv(entry.path("points.csv"))
        statuses = np.asarray(properties.get("status", ["auto"] * len(coords)), dtype=object)
        style = {**spine_points_style(voxel), "border_color": status_colours(statuses)}
        meta = {**place, **style, "name": f"{entry.id} spines", "features": {"status": statuses}}
        layers.append((coords, {**meta, "border_width": 0.15}, "points"))
    if entry.has("labels.tif"):
        labels = np.asarray(read_volumes(entry.path("labels.tif"))[0].data)
        layers.append((labels, {**place, "name": f"{entry.id} labels"}, "labels"))
    if entry.has("dendrites.csv"):
        coords = read_points_csv(entry.path("dendrites.csv"))[0]
        meta = {**place, "name": f"{entry.id} dendrites", "size": 2.0, "face_color": "cyan"}
        layers.append((coords, meta, "points"))
    return layers
