"""Proofreading a label volume: merge, split, delete, fill holes, relabel, with undo and a log.

Pure numpy / scipy (no Qt, no napari): the widget and the command line drive a
:class:`Proofreader`, which edits the caller's label array in place. Every operation works only
inside the bounding boxes of the segments it touches, found in a per-segment index (bounding box
and voxel count) that is built once and kept up to date, so edits on a 100 × 1024 × 1024 volume
take milliseconds. Only :meth:`Proofreader.relabel_sequential` visits every voxel.

Undo records hold, per touched region, the changed voxels (flat indices, or a bit mask when
many change) and their old and new values (in compact dtypes), plus the index entries before
and after; undo and redo write only those voxels. Operations that change nothing (a
``fill_holes`` without holes, a ``relabel_sequential`` of ids that are already ``1..N``) return
their :class:`Edit` but are not recorded: they join neither the undo stack nor the edit log and
leave the redo stack alone.
"""

from __future__ import annotations

import json
import math
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import fastremap
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from napari_spines.io.atomic import atomic_path
from napari_spines.segmentation.fragment_graph import FragmentGraph, owners, seeded_cut

#: Operations an :class:`Edit` can name.
OPERATIONS = ("merge", "split", "delete", "fill_holes", "relabel")
#: Orders :meth:`Proofreader.next_segment` knows.
ORDERS = ("largest", "smallest", "least_confident")

Region = tuple[slice, ...]
Box = tuple[int, ...]  # (lo_z, lo_y, lo_x, hi_z, hi_y, hi_x), hi exclusive


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Edit:
    """One proofreading operation, as logged.

    Attributes
    ----------
    operation
        ``"merge"``, ``"split"``, ``"delete"``, ``"fill_holes"`` or ``"relabel"``.
    ids
        Segment ids it acted on (for ``fill_holes``: the segment, then the ids it swallowed;
        for ``relabel``: the old ids that changed).
    new_ids
        Ids it created (``split``), the surviving id (``merge``, ``fill_holes``) or the new
        ids in the order of ``ids`` (``relabel``).
    coordinates
        Voxel coordinates the user clicked, or the seeds of a split; may be empty.
    time
        When it was applied, ISO 8601 UTC.
    """

    operation: str
    ids: list[int]
    new_ids: list[int]
    coordinates: list[list[float]] = field(default_factory=list)
    time: str = field(default_factory=_now)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (plain ints, floats and strings)."""
        out = asdict(self)
        out["ids"] = [int(i) for i in self.ids]
        out["new_ids"] = [int(i) for i in self.new_ids]
        out["coordinates"] = [[float(c) for c in point] for point in self.coordinates]
        return out


class _Entry(NamedTuple):
    count: int
    box: Box


class _Values(NamedTuple):
    """Voxel values, compactly: a palette and codes into it (no codes when all are equal)."""

    palette: np.ndarray
    codes: np.ndarray | None

    @classmethod
    def pack(cls, values: np.ndarray) -> _Values:
        if values.size == 0 or (values == values[0]).all():
            return cls(values[:1].copy(), None)
        palette, codes = np.unique(values, return_inverse=True)
        return cls(palette, codes.astype(np.min_scalar_type(palette.size - 1)))

    @classmethod
    def constant(cls, value: int, dtype: np.dtype) -> _Values:
        return cls(np.array([value], dtype), None)

    def unpack(self) -> np.ndarray | np.generic:
        return self.palette[0] if self.codes is None else self.palette[self.codes]


class _Voxels(NamedTuple):
    """Which voxels of a region an edit changed, compactly.

    Flat indices (uint32 where they fit) when few change; a bit mask when more than about one
    voxel in 32 does (a merge of segments spanning the volume: 3 MB of bits instead of 52 MB
    of indices for 13 M voxels, and no index arrays to build on undo).
    """

    shape: tuple[int, ...]
    flat: np.ndarray | None
    bits: np.ndarray | None

    @classmethod
    def of(cls, mask: np.ndarray) -> _Voxels:
        shape = tuple(mask.shape)
        index_bits = 32 if mask.size <= np.iinfo(np.uint32).max else 64
        if np.count_nonzero(mask) * index_bits > mask.size:
            return cls(shape, None, np.packbits(mask, axis=None))
        return cls(shape, _compact_index(np.flatnonzero(mask), mask.size), None)

    def select(self) -> np.ndarray | tuple[np.ndarray, ...]:
        """An index of the changed voxels in the region's array (C order)."""
        if self.bits is None:
            assert self.flat is not None
            return np.unravel_index(self.flat, self.shape)
        size = math.prod(self.shape)
        return np.unpackbits(self.bits, count=size).view(bool).reshape(self.shape)


@dataclass
class _Patch:
    region: Region  # internal 3D slices
    voxels: _Voxels  # the changed voxels within the region
    old: _Values
    new: _Values


@dataclass
class _Record:
    edit: Edit
    patches: list[_Patch]
    before: dict[int, _Entry | None]  # index entries of the touched ids before the edit
    after: dict[int, _Entry | None]
    region: Region | None  # internal 3D
    mapping: dict[int, int] | None = None  # relabel: old id → new id
    owners: list[_OwnerPatch] = field(default_factory=list)  # fragment owners changed
    mixed: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())  # added, removed


class _OwnerPatch(NamedTuple):
    fragments: np.ndarray
    old: np.ndarray
    new: np.ndarray


def _as_id(value: object) -> int:
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"segment ids must be integers, got {value!r}") from None


def _compact_index(flat: np.ndarray, size: int) -> np.ndarray:
    return flat.astype(np.uint32 if size <= np.iinfo(np.uint32).max else np.uint64)


def _region(box: Box) -> Region:
    n = len(box) // 2
    return tuple(slice(box[i], box[n + i]) for i in range(n))


def _union(boxes: Iterable[Box]) -> Box:
    boxes = list(boxes)
    n = len(boxes[0]) // 2
    return tuple(min(b[i] for b in boxes) for i in range(n)) + tuple(
        max(b[n + i] for b in boxes) for i in range(n)
    )


def _box_from_slices(slices: Sequence[slice]) -> Box:
    return tuple(s.start for s in slices) + tuple(s.stop for s in slices)


def _mask_box(mask: np.ndarray, offset: Sequence[int]) -> Box | None:
    """Bounding box of the true voxels of ``mask``, shifted by ``offset``; None when empty."""
    lo, hi = [], []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if not hits.size:
            return None
        lo.append(offset[axis] + int(hits[0]))
        hi.append(offset[axis] + int(hits[-1]) + 1)
    return tuple(lo) + tuple(hi)


@dataclass(frozen=True)
class LabelIndex:
    """What a :class:`Proofreader` knows of its labels, built by `Proofreader.index_labels`."""

    entries: dict[int, _Entry]  # segment id → voxel count and bounding box
    owner: np.ndarray | None  # fragment → the segment it lies wholly in, or 0
    mixed: set[int]  # segments that are not a union of fragments they own


def _build_index(volume: np.ndarray) -> dict[int, _Entry]:
    """Voxel count and bounding box of every nonzero id, in two passes over the volume."""
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
        int(i): _Entry(int(c), _box_from_slices(b))
        for i, c, b in zip(ids.tolist(), counts.tolist(), boxes, strict=True)
    }


class Proofreader:
    """Edits a label volume in place, inside bounding boxes only, with undo/redo and an edit log.

    Parameters
    ----------
    labels
        Integer ``(Z, Y, X)`` or ``(Y, X)`` labels, edited in place (0 is background).
    boundaries
        Float map of the same shape, high on cell boundaries, that :meth:`split` floods;
        None to flood the negated distance transform of the segment instead.
    confidence
        Per-segment merge score (lower = less confident) for
        ``next_segment("least_confident")``; segments without one come last.
    fragments
        The fragments the labels were agglomerated from, with their adjacency graph. Then
        :meth:`split` of a segment made of whole fragments reassigns fragments (a seeded cut
        of their graph) instead of running a voxel watershed over its bounding box.

    Raises
    ------
    ValueError
        Labels that are not an integer 2D/3D array, or boundaries or fragments of another
        shape.
    """

    def __init__(
        self,
        labels: np.ndarray,
        boundaries: np.ndarray | None = None,
        confidence: Mapping[int, float] | None = None,
        fragments: FragmentGraph | None = None,
    ) -> None:
        if not isinstance(labels, np.ndarray):
            raise ValueError(f"labels must be a numpy array, got {type(labels).__name__}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
        if labels.ndim not in (2, 3):
            raise ValueError(f"labels must be 2D (y, x) or 3D (z, y, x), not {labels.ndim}D")
        if not labels.flags.writeable:
            raise ValueError("labels must be writeable: the proofreader edits them in place")
        if boundaries is not None:
            boundaries = np.asarray(boundaries)
            if boundaries.shape != labels.shape:
                raise ValueError(
                    f"boundaries shape {boundaries.shape} does not match labels shape "
                    f"{labels.shape}"
                )
            if not (
                np.issubdtype(boundaries.dtype, np.number)
                and not np.issubdtype(boundaries.dtype, np.complexfloating)
            ):
                raise ValueError(
                    f"boundaries must be a real-valued array, got dtype {boundaries.dtype}"
                )
        self.labels = labels
        self._flat = labels.ndim == 2
        self._volume = labels[np.newaxis] if self._flat else labels  # a view: edits land
        self._boundaries = (
            None if boundaries is None else boundaries[np.newaxis] if self._flat else boundaries
        )
        self.confidence: dict[int, float] = {
            _as_id(k): float(v) for k, v in (confidence or {}).items()
        }
        if fragments is not None and fragments.fragments.shape != self._volume.shape:
            raise ValueError(
                f"fragments shape {fragments.fragments.shape[self._flat :]} does "
                f"not match labels shape {labels.shape}"
            )
        self._graph = fragments
        self._owner: np.ndarray | None = None  # fragment → the segment it lies wholly in, or 0
        self._mixed: set[int] = set()  # segments that are not a union of fragments they own
        self._index: dict[int, _Entry] = {}
        self.reindex()
        self._former: dict[int, int] = {}  # voxel counts of ids that left the volume
        self._undo: list[_Record] = []
        self._redo: list[_Record] = []
        self._changed: Region | None = None

    # -- index ---------------------------------------------------------------------------

    @property
    def edits(self) -> list[Edit]:
        """The log of applied edits, oldest first (undone ones removed, redone ones back)."""
        return [record.edit for record in self._undo]

    def _public(self, region: Region) -> Region:
        return region[1:] if self._flat else region

    def bounding_box(self, segment_id: int) -> Region | None:
        """Slices of the segment's bounding box (in the labels' dimensions); None if absent."""
        entry = self._index.get(_as_id(segment_id))
        return None if entry is None else self._public(_region(entry.box))

    def voxel_count(self, segment_id: int) -> int:
        """Number of voxels of the segment (0 if absent)."""
        entry = self._index.get(_as_id(segment_id))
        return 0 if entry is None else entry.count

    def segment_ids(self) -> np.ndarray:
        """Sorted ids of the segments present (0 excluded)."""
        return np.array(sorted(self._index), dtype=self.labels.dtype)

    def changed_region(self) -> Region | None:
        """Bounding box touched by the last operation, undo or redo; None if nothing changed."""
        return None if self._changed is None else self._public(self._changed)

    def index_labels(self) -> LabelIndex:
        """Index the labels as they are now, without changing the proofreader.

        It only reads the labels, so it may run in a worker thread (a second or so on 100 M
        voxels); `reindex` installs the result.
        """
        owner, mixed = (None, set()) if self._graph is None else owners(self._graph, self._volume)
        return LabelIndex(_build_index(self._volume), owner, mixed)

    def reindex(self, index: LabelIndex | None = None) -> None:
        """Use ``index`` (default: index the labels now), after something else edited them.

        The proofreader takes ``index`` over and edits it: index the labels anew for another.
        """
        index = self.index_labels() if index is None else index
        self._index, self._owner, self._mixed = index.entries, index.owner, index.mixed

    def _hand_over(self, segment_ids: Iterable[int], new_owner: int = 0) -> list[_OwnerPatch]:
        """Hand the fragments lying wholly in any of the segments to ``new_owner`` (0: none)."""
        if self._owner is None:
            return []
        owned = np.flatnonzero(np.isin(self._owner, list(segment_ids)))
        return self._set_owners(owned, new_owner)

    def _set_owners(self, fragments: np.ndarray, values: int | np.ndarray) -> list[_OwnerPatch]:
        if self._owner is None or not len(fragments):
            return []
        old = self._owner[fragments]
        new = np.broadcast_to(np.asarray(values, np.int64), old.shape).copy()
        self._owner[fragments] = new
        return [_OwnerPatch(fragments, old, new)]

    def _change_mixed(
        self, add: Iterable[int], remove: Iterable[int]
    ) -> tuple[frozenset[int], frozenset[int]]:
        if self._owner is None:
            return frozenset(), frozenset()
        added = frozenset(i for i in add if i not in self._mixed)
        removed = frozenset(i for i in remove if i in self._mixed and i not in added)
        self._mixed |= added
        self._mixed -= removed
        return added, removed

    def _set_index(self, entries: Mapping[int, _Entry | None]) -> None:
        for segment_id, entry in entries.items():
            if entry is None:
                old = self._index.pop(segment_id, None)
                if old is not None:
                    self._former[segment_id] = old.count
            else:
                self._index[segment_id] = entry

    def _require(self, segment_ids: Sequence[int]) -> None:
        if 0 in segment_ids:
            raise ValueError("0 is the background, not a segment")
        missing = [i for i in segment_ids if i not in self._index]
        if missing:
            which = ", ".join(str(i) for i in missing)
            raise ValueError(f"segment{'s' if len(missing) > 1 else ''} {which} not in the labels")

    # -- recording -----------------------------------------------------------------------

    def _commit(
        self,
        edit: Edit,
        patches: list[_Patch],
        before: dict[int, _Entry | None],
        after: dict[int, _Entry | None],
        mapping: dict[int, int] | None = None,
        region: Region | None = None,
        owner_patches: list[_OwnerPatch] | None = None,
        mixed: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset()),
    ) -> Edit:
        if region is None and patches:
            region = _region(_union(_box_from_slices(p.region) for p in patches))
        self._set_index(after)
        self._undo.append(
            _Record(edit, patches, before, after, region, mapping, owner_patches or [], mixed)
        )
        self._redo.clear()
        self._changed = region
        return edit

    def _coordinates(self, coordinates: Iterable[Iterable[float]] | None) -> list[list[float]]:
        return [
            [float(c) for c in point] for point in (coordinates if coordinates is not None else ())
        ]

    def _apply(self, patch: _Patch, values: _Values) -> None:
        self._volume[patch.region][patch.voxels.select()] = values.unpack()

    def _remap(self, mapping: Mapping[int, int]) -> None:
        out = fastremap.remap(
            self._volume, dict(mapping), preserve_missing_labels=True, in_place=True
        )
        if not np.shares_memory(out, self._volume):  # fastremap copied (non-contiguous labels)
            self._volume[...] = out
        renamed = {k: v for k, v in self.confidence.items() if k not in mapping}
        renamed.update({mapping[k]: v for k, v in self.confidence.items() if k in mapping})
        self.confidence = renamed
        if self._owner is not None:
            self._owner = fastremap.remap(self._owner, dict(mapping), preserve_missing_labels=True)
            self._mixed = {mapping.get(i, i) for i in self._mixed}

    # -- operations ----------------------------------------------------------------------

    def merge(self, ids: Sequence[int], coordinates: Iterable[Iterable[float]] = ()) -> Edit:
        """Merge segments into the one with the most voxels (ties: the smallest id).

        Raises
        ------
        ValueError
            Fewer than two distinct ids, background, or ids not in the labels.
        """
        ids = list(dict.fromkeys(_as_id(i) for i in ids))
        if len(ids) < 2:
            raise ValueError(f"merge needs at least two different segment ids, got {ids}")
        self._require(ids)
        target = min(ids, key=lambda i: (-self._index[i].count, i))
        dtype = self._volume.dtype
        patches = []
        for source in ids:
            if source == target:
                continue
            region = _region(self._index[source].box)
            sub = self._volume[region]
            mask = sub == source
            patches.append(
                _Patch(
                    region,
                    _Voxels.of(mask),
                    _Values.constant(source, dtype),
                    _Values.constant(target, dtype),
                )
            )
            sub[mask] = target
        before = {i: self._index[i] for i in ids}
        merged = _Entry(
            sum(e.count for e in before.values()), _union(e.box for e in before.values())
        )
        after: dict[int, _Entry | None] = {i: None for i in ids}
        after[target] = merged
        sources = [i for i in ids if i != target]
        owner_patches = self._hand_over(sources, target)
        mixed = self._change_mixed([target] if self._mixed.intersection(ids) else [], sources)
        edit = Edit("merge", ids, [target], self._coordinates(coordinates))
        return self._commit(edit, patches, before, after, owner_patches=owner_patches, mixed=mixed)

    def split(
        self,
        segment_id: int,
        seeds: np.ndarray,
        coordinates: Iterable[Iterable[float]] | None = None,
    ) -> Edit:
        """Split a segment by a seeded watershed inside its bounding box.

        The watershed floods ``boundaries`` (or the negated distance transform of the
        segment) from one marker per seed, restricted to the segment. The first seed's region
        keeps ``segment_id``; the others get fresh ids (the largest id present + 1, + 2, ...).
        Parts of the segment no seed reaches keep ``segment_id``.

        Parameters
        ----------
        segment_id
            Segment to split.
        seeds
            ``(N, ndim)`` voxel coordinates inside the segment (rounded), ``N >= 2``.
        coordinates
            What to log as clicked coordinates; None logs the seeds.

        Raises
        ------
        ValueError
            Fewer than two seeds, seeds outside the segment or on the same voxel, or no free ids
            left in the labels' dtype.
        """
        segment_id = _as_id(segment_id)
        self._require([segment_id])
        ndim = self.labels.ndim
        points = np.asarray(seeds, dtype=float)
        if points.ndim != 2 or points.shape[1] != ndim:
            raise ValueError(
                f"seeds must be an (N, {ndim}) array of voxel coordinates, got shape {points.shape}"
            )
        if len(points) < 2:
            raise ValueError(f"place at least two seed points inside segment {segment_id}")
        if not np.isfinite(points).all():
            raise ValueError("seed coordinates must be finite numbers")
        voxels = np.round(points).astype(np.int64)
        if self._flat:
            voxels = np.column_stack([np.zeros(len(voxels), np.int64), voxels])
        if len(np.unique(voxels, axis=0)) < len(voxels):
            raise ValueError(f"seed points for segment {segment_id} must be on different voxels")
        entry = self._index[segment_id]
        region = _region(entry.box)
        lo = np.array(entry.box[:3])
        sub = self._volume[region]
        mask = sub == segment_id
        local = voxels - lo
        for point, voxel in zip(points, local, strict=True):
            inside = bool((voxel >= 0).all() and (voxel < mask.shape).all())
            if not inside or not mask[tuple(voxel)]:
                shown = ", ".join(f"{c:g}" for c in point)
                raise ValueError(f"seed ({shown}) is outside segment {segment_id}")
        n = len(voxels)
        top = max(self._index)
        if top + n - 1 > np.iinfo(self._volume.dtype).max:
            raise ValueError(f"no free ids left in dtype {self._volume.dtype} for the split")
        new_ids = list(range(top + 1, top + n))
        logged = self._coordinates(points.tolist() if coordinates is None else coordinates)
        edit = Edit("split", [segment_id], new_ids, logged)
        if self._graph is not None and segment_id not in self._mixed:
            seed_fragments = self._graph.fragments[tuple(voxels.T)].astype(np.int64)
            if len(np.unique(seed_fragments)) == n:  # else seeds share a fragment: voxels
                return self._split_fragments(edit, entry, seed_fragments)
        markers = np.zeros(mask.shape, np.int32)
        markers[tuple(local.T)] = np.arange(1, n + 1, dtype=np.int32)
        if self._boundaries is not None:
            landscape = self._boundaries[region]
        else:
            landscape = -ndi.distance_transform_edt(mask)
        parts = watershed(landscape, markers, mask=mask)
        parts[mask & (parts == 0)] = 1  # unreached pieces keep the id
        lut = np.array([0, segment_id, *new_ids], dtype=self._volume.dtype)
        changed = parts > 1
        labels_of_changed = parts[changed]
        patch = _Patch(
            region,
            _Voxels.of(changed),
            _Values.constant(segment_id, self._volume.dtype),
            _Values.pack(lut[labels_of_changed]),
        )
        sub[changed] = lut[labels_of_changed]
        counts = np.bincount(parts.ravel(), minlength=n + 1)
        objects = ndi.find_objects(parts, max_label=n)
        after: dict[int, _Entry | None] = {}
        for k, new_id in enumerate([segment_id, *new_ids], start=1):
            box = _box_from_slices(objects[k - 1])
            after[new_id] = _Entry(
                int(counts[k]), tuple(int(b) + int(lo[i % 3]) for i, b in enumerate(box))
            )
        before: dict[int, _Entry | None] = {i: None for i in new_ids}
        before[segment_id] = entry
        owner_patches = self._hand_over([segment_id])
        mixed = self._change_mixed([segment_id, *new_ids], [])
        return self._commit(edit, [patch], before, after, owner_patches=owner_patches, mixed=mixed)

    def _split_fragments(self, edit: Edit, entry: _Entry, seed_fragments: np.ndarray) -> Edit:
        """Split a segment made of whole fragments by a seeded cut of their graph.

        Fragments no seed reaches keep the segment's id. Only the moved fragments' voxels are
        visited, inside their own bounding boxes.
        """
        assert self._graph is not None and self._owner is not None
        graph = self._graph
        segment_id = edit.ids[0]
        ids = [segment_id, *edit.new_ids]
        members = np.flatnonzero(self._owner == segment_id)
        inside = np.zeros(len(self._owner), bool)
        inside[members] = True
        keep = inside[graph.edges[:, 0]] & inside[graph.edges[:, 1]]
        assigned = seeded_cut(graph.edges[keep], graph.weights[keep], seed_fragments)
        piece = np.zeros(len(self._owner), np.int64)  # members no seed reaches stay in piece 0
        piece[np.fromiter(assigned, np.int64, len(assigned))] = list(assigned.values())
        dtype = self._volume.dtype
        patches = []
        moved = members[piece[members] > 0]
        for fragment in moved.tolist():
            region = _region(tuple(graph.boxes[fragment].tolist()))
            sub = self._volume[region]
            mask = graph.fragments[region] == fragment
            new_id = ids[piece[fragment]]
            patches.append(
                _Patch(
                    region,
                    _Voxels.of(mask),
                    _Values.constant(segment_id, dtype),
                    _Values.constant(new_id, dtype),
                )
            )
            sub[mask] = new_id
        after: dict[int, _Entry | None] = {}
        for k, new_id in enumerate(ids):
            part = members[piece[members] == k]
            boxes = graph.boxes[part]
            after[new_id] = _Entry(
                int(graph.counts[part].sum()),
                tuple(boxes[:, :3].min(0).tolist() + boxes[:, 3:].max(0).tolist()),
            )
        before: dict[int, _Entry | None] = {i: None for i in edit.new_ids}
        before[segment_id] = entry
        owner_patches = self._set_owners(moved, np.array(ids)[piece[moved]])
        return self._commit(edit, patches, before, after, owner_patches=owner_patches)

    def delete(self, segment_id: int, coordinates: Iterable[Iterable[float]] = ()) -> Edit:
        """Set a segment to background (0)."""
        segment_id = _as_id(segment_id)
        self._require([segment_id])
        entry = self._index[segment_id]
        region = _region(entry.box)
        sub = self._volume[region]
        mask = sub == segment_id
        patch = _Patch(
            region,
            _Voxels.of(mask),
            _Values.constant(segment_id, sub.dtype),
            _Values.constant(0, sub.dtype),
        )
        sub[mask] = 0
        owner_patches = self._hand_over([segment_id])
        mixed = self._change_mixed([], [segment_id])
        edit = Edit("delete", [segment_id], [], self._coordinates(coordinates))
        return self._commit(
            edit,
            [patch],
            {segment_id: entry},
            {segment_id: None},
            owner_patches=owner_patches,
            mixed=mixed,
        )

    def fill_holes(self, segment_id: int, coordinates: Iterable[Iterable[float]] = ()) -> Edit:
        """Give the segment every voxel (of any id, 0 included) it fully encloses.

        Holes are found in 3D (in 2D for 2D labels) by :func:`scipy.ndimage.binary_fill_holes`
        on the segment's mask inside its bounding box. Ids swallowed whole leave the index.
        Without holes the edit changes nothing and is not recorded.
        """
        segment_id = _as_id(segment_id)
        self._require([segment_id])
        entry = self._index[segment_id]
        region = _region(entry.box)
        sub = self._volume[region]
        mask = sub == segment_id
        filled = (
            ndi.binary_fill_holes(mask[0])[np.newaxis]
            if self._flat
            else (ndi.binary_fill_holes(mask))
        )
        holes = filled & ~mask
        logged = self._coordinates(coordinates)
        if not holes.any():
            self._changed = None
            return Edit("fill_holes", [segment_id], [segment_id], logged)
        old = sub[holes]
        patch = _Patch(
            region, _Voxels.of(holes), _Values.pack(old), _Values.constant(segment_id, sub.dtype)
        )
        sub[holes] = segment_id
        swallowed, counts = np.unique(old, return_counts=True)
        before: dict[int, _Entry | None] = {segment_id: entry}
        after: dict[int, _Entry | None] = {
            segment_id: _Entry(entry.count + int(holes.sum()), entry.box)
        }
        for other, count in zip(swallowed.tolist(), counts.tolist(), strict=True):
            if other == 0:
                continue
            was = self._index[other]
            before[other] = was
            if count == was.count:
                after[other] = None
            else:  # partly swallowed (a segment in pieces): its box may shrink
                box = _mask_box(self._volume[_region(was.box)] == other, was.box[:3])
                after[other] = _Entry(was.count - count, box)  # type: ignore[arg-type]
        ids = [segment_id, *(i for i in swallowed.tolist() if i != 0)]
        # the segment now holds parts of fragments it does not own; those it swallowed lose
        # their fragments' ownership
        owner_patches = self._hand_over(ids[1:])
        mixed = self._change_mixed(
            [i for i in after if after[i] is not None], [i for i in after if after[i] is None]
        )
        return self._commit(
            Edit("fill_holes", ids, [segment_id], logged),
            [patch],
            before,
            after,
            owner_patches=owner_patches,
            mixed=mixed,
        )

    def relabel_sequential(self) -> Edit:
        """Renumber the ids to ``1..N`` keeping their order (visits the whole volume).

        Undo stores the id mapping, not voxels. Already sequential ids are not recorded.
        """
        mapping = {old: new for new, old in enumerate(sorted(self._index), start=1) if old != new}
        edit = Edit("relabel", list(mapping), list(mapping.values()))
        if not mapping:
            self._changed = None
            return edit
        before: dict[int, _Entry | None] = {i: None for i in mapping.values()}
        before.update({i: self._index[i] for i in mapping})
        after: dict[int, _Entry | None] = {i: None for i in mapping}
        after.update({new: self._index[old] for old, new in mapping.items()})
        self._remap(mapping)
        whole = tuple(slice(0, s) for s in self._volume.shape)
        return self._commit(edit, [], before, after, mapping=mapping, region=whole)

    # -- navigation ----------------------------------------------------------------------

    def next_segment(self, order: str = "largest", after: int | None = None) -> int | None:
        """The segment that follows ``after`` in ``order`` (the first when None).

        Parameters
        ----------
        order
            ``"largest"`` or ``"smallest"`` (by voxel count) or ``"least_confident"`` (by
            ``confidence``, unscored segments last); ties go to the smaller id.
        after
            The current segment; it may have left the volume since (merged, deleted).

        Returns
        -------
        int or None
            The next segment id, or None when none is left.

        Raises
        ------
        ValueError
            Unknown order, or an ``after`` that never was in the labels.
        """
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
        if not self._index:
            return None
        ids = np.fromiter(self._index, dtype=self._volume.dtype, count=len(self._index))

        def key_of(segment_id: int, count: int) -> float:
            if order == "largest":
                return -count
            if order == "smallest":
                return count
            return self.confidence.get(segment_id, math.inf)

        keys = np.array([key_of(i, e.count) for i, e in self._index.items()], dtype=float)
        keys[np.isnan(keys)] = math.inf
        if after is None:
            candidates = np.ones(len(ids), bool)
        else:
            after = _as_id(after)
            if after in self._index:
                count = self._index[after].count
            elif after in self._former:
                count = self._former[after]
            else:
                raise ValueError(f"segment {after} is not in the labels")
            k = key_of(after, count)
            k = math.inf if math.isnan(k) else k
            candidates = (keys > k) | ((keys == k) & (ids > after))
        if not candidates.any():
            return None
        keys, ids = keys[candidates], ids[candidates]
        return int(ids[keys == keys.min()].min())

    # -- history -------------------------------------------------------------------------

    def undo(self) -> Edit | None:
        """Revert the last recorded edit; None when there is nothing to undo."""
        if not self._undo:
            return None
        record = self._undo.pop()
        if record.mapping is not None:
            self._remap({new: old for old, new in record.mapping.items()})
        for patch in reversed(record.patches):
            self._apply(patch, patch.old)
        self._restore_owners(record, undo=True)
        self._set_index(record.before)
        self._redo.append(record)
        self._changed = record.region
        return record.edit

    def redo(self) -> Edit | None:
        """Re-apply the last undone edit; None when there is nothing to redo."""
        if not self._redo:
            return None
        record = self._redo.pop()
        if record.mapping is not None:
            self._remap(record.mapping)
        for patch in record.patches:
            self._apply(patch, patch.new)
        self._restore_owners(record, undo=False)
        self._set_index(record.after)
        self._undo.append(record)
        self._changed = record.region
        return record.edit

    def _restore_owners(self, record: _Record, undo: bool) -> None:
        if self._owner is None:
            return
        for fragments, old, new in reversed(record.owners) if undo else record.owners:
            self._owner[fragments] = old if undo else new
        added, removed = record.mixed
        self._mixed -= added if undo else removed
        self._mixed |= removed if undo else added

    def save_log(self, path: str | os.PathLike) -> Path:
        """Write ``{"edits": [...]}`` as JSON, atomically (no partial file on failure)."""
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"edits": [edit.to_dict() for edit in self.edits]}, fh, indent=1)
            fh.write("\n")
        return Path(path)


def load_log(path: str | os.PathLike) -> list[dict]:
    """Read the edits of a log written by :meth:`Proofreader.save_log`."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not isinstance(data.get("edits"), list):
        raise ValueError(f"{path} is not a proofreading log (no 'edits' list)")
    return data["edits"]
