"""The per-segment index of a label volume: each segment's voxel count and bounding box.

A :class:`~napari_spines.segmentation.proofreading.Proofreader` builds this index once
(:func:`build_index`, two passes over the volume) and keeps it up to date edit by edit, so that
every operation works only inside the bounding boxes of the segments it touches: edits on a
100 × 1024 × 1024 volume take milliseconds.

Boxes are flat tuples ``(lo_z, lo_y, lo_x, hi_z, hi_y, hi_x)`` (hi exclusive; half as many
numbers in 2D), regions are the matching tuples of slices; the helpers here convert between
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import fastremap
import numpy as np
from scipy import ndimage as ndi

Region = tuple[slice, ...]
Box = tuple[int, ...]  # (lo_z, lo_y, lo_x, hi_z, hi_y, hi_x), hi exclusive


class SegmentEntry(NamedTuple):
    """Voxel count and bounding box of one segment."""

    count: int
    box: Box


@dataclass(frozen=True)
class LabelIndex:
    """What a proofreader knows of its labels, built by `Proofreader.index_labels`.

    Attributes
    ----------
    entries
        Segment id → its voxel count and bounding box.
    owner
        Fragment → the segment it lies wholly in, or 0; None without fragments.
    mixed
        Segments that are not a union of fragments they own.
    """

    entries: dict[int, SegmentEntry]
    owner: np.ndarray | None
    mixed: set[int]


def build_index(volume: np.ndarray) -> dict[int, SegmentEntry]:
    """Voxel count and bounding box of every nonzero id, in two passes over the volume.

    Parameters
    ----------
    volume
        Integer labels (0 is background); any ids, huge or negative ones included.

    Returns
    -------
    dict
        Segment id → :class:`SegmentEntry`.
    """
    ids, counts = fastremap.unique(volume, return_counts=True)
    keep = ids != 0
    ids, counts = ids[keep], counts[keep]
    if not ids.size:
        return {}
    if ids[0] > 0 and int(ids[-1]) <= 4 * ids.size + 65536:  # find_objects lists 1..max
        objects = ndi.find_objects(volume, max_label=int(ids[-1]))
        boxes = [objects[i - 1] for i in ids.tolist()]
    else:  # huge or negative ids: find the boxes on a sequential copy
        sequential, mapping = fastremap.renumber(volume, preserve_zero=True, in_place=False)
        objects = ndi.find_objects(sequential)
        boxes = [objects[mapping[i] - 1] for i in ids.tolist()]
    return {
        int(i): SegmentEntry(int(c), box_of_region(b))
        for i, c, b in zip(ids.tolist(), counts.tolist(), boxes, strict=True)
    }


def region_of_box(box: Box) -> Region:
    """The slices of a box.

    Parameters
    ----------
    box
        ``(lo..., hi...)``, hi exclusive.

    Returns
    -------
    tuple of slice
        One ``slice(lo, hi)`` per axis.
    """
    n = len(box) // 2
    return tuple(slice(box[i], box[n + i]) for i in range(n))


def box_of_region(slices: Sequence[slice]) -> Box:
    """The box of a region (slices with explicit starts and stops).

    Parameters
    ----------
    slices
        One slice per axis.

    Returns
    -------
    tuple of int
        ``(lo..., hi...)``.
    """
    return tuple(s.start for s in slices) + tuple(s.stop for s in slices)


def union_of_boxes(boxes: Iterable[Box]) -> Box:
    """The smallest box holding all of ``boxes``.

    Parameters
    ----------
    boxes
        At least one box, all of the same dimension.

    Returns
    -------
    tuple of int
        ``(lo..., hi...)``.
    """
    boxes = list(boxes)
    n = len(boxes[0]) // 2
    return tuple(min(b[i] for b in boxes) for i in range(n)) + tuple(
        max(b[n + i] for b in boxes) for i in range(n)
    )


def box_of_mask(mask: np.ndarray, offset: Sequence[int]) -> Box | None:
    """Bounding box of the true voxels of ``mask``, shifted by ``offset``.

    Parameters
    ----------
    mask
        Boolean array, typically a segment inside a region.
    offset
        Where ``mask`` starts in the volume, one number per axis.

    Returns
    -------
    tuple of int or None
        ``(lo..., hi...)`` in volume coordinates; None when ``mask`` is empty.
    """
    lo, hi = [], []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if not hits.size:
            return None
        lo.append(offset[axis] + int(hits[0]))
        hi.append(offset[axis] + int(hits[-1]) + 1)
    return tuple(lo) + tuple(hi)
