"""Proofreading a label volume: merge, split, delete, fill holes, relabel, with undo and a log.

Pure numpy / scipy (no Qt, no napari): the widget and the command line drive a
:class:`Proofreader`, which edits the caller's label array in place. Every operation works only
inside the bounding boxes of the segments it touches, found in a per-segment index
(`napari_spines.segmentation.label_index`), so edits on a 100 × 1024 × 1024 volume take
milliseconds. Only :meth:`Proofreader.relabel_sequential` visits every voxel.

Each applied edit is recorded for undo and redo (`napari_spines.segmentation.undo`) and logged
(`napari_spines.segmentation.edit_log`). Operations that change nothing (a ``fill_holes``
without holes, a ``relabel_sequential`` of ids that are already ``1..N``) return their
:class:`~napari_spines.segmentation.edit_log.Edit` but are not recorded: they join neither the
undo stack nor the edit log and leave the redo stack alone.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import fastremap
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from napari_spines.segmentation.edit_log import Edit, write_log
from napari_spines.segmentation.fragment_graph import FragmentGraph, owners, seeded_cut
from napari_spines.segmentation.label_index import (
    LabelIndex,
    Region,
    SegmentEntry,
    box_of_mask,
    box_of_region,
    build_index,
    region_of_box,
    union_of_boxes,
)
from napari_spines.segmentation.undo import (
    ChangedVoxels,
    OwnerPatch,
    PackedValues,
    Patch,
    UndoRecord,
)

#: Orders :meth:`Proofreader.next_segment` knows.
ORDERS = ("largest", "smallest", "least_confident")


def _as_id(value: object) -> int:
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"segment ids must be integers, got {value!r}") from None


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
        self._index: dict[int, SegmentEntry] = {}
        self.reindex()
        self._former: dict[int, int] = {}  # voxel counts of ids that left the volume
        self._undo: list[UndoRecord] = []
        self._redo: list[UndoRecord] = []
        self._changed: Region | None = None

    # -- index ---------------------------------------------------------------------------

    @property
    def edits(self) -> list[Edit]:
        """The log of applied edits, oldest first (undone ones removed, redone ones back)."""
        return [record.edit for record in self._undo]

    def _public(self, region: Region) -> Region:
        return region[1:] if self._flat else region

    def bounding_box(self, segment_id: int) -> Region | None:
        """Slices of the segment's bounding box (in the labels' dimensions).

        Parameters
        ----------
        segment_id
            The segment.

        Returns
        -------
        tuple of slice or None
            One slice per axis of the labels; None if the segment is absent.
        """
        entry = self._index.get(_as_id(segment_id))
        return None if entry is None else self._public(region_of_box(entry.box))

    def voxel_count(self, segment_id: int) -> int:
        """Number of voxels of the segment.

        Parameters
        ----------
        segment_id
            The segment.

        Returns
        -------
        int
            Its voxel count; 0 if it is absent.
        """
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
        return LabelIndex(build_index(self._volume), owner, mixed)

    def reindex(self, index: LabelIndex | None = None) -> None:
        """Use ``index`` (default: index the labels now), after something else edited them.

        The proofreader takes ``index`` over and edits it: index the labels anew for another.

        Parameters
        ----------
        index
            What `index_labels` returned for the labels as they are now; None indexes them here.
        """
        index = self.index_labels() if index is None else index
        self._index, self._owner, self._mixed = index.entries, index.owner, index.mixed

    def _hand_over(self, segment_ids: Iterable[int], new_owner: int = 0) -> list[OwnerPatch]:
        """Hand the fragments lying wholly in any of the segments to ``new_owner`` (0: none)."""
        if self._owner is None:
            return []
        owned = np.flatnonzero(np.isin(self._owner, list(segment_ids)))
        return self._set_owners(owned, new_owner)

    def _set_owners(self, fragments: np.ndarray, values: int | np.ndarray) -> list[OwnerPatch]:
        if self._owner is None or not len(fragments):
            return []
        old = self._owner[fragments]
        new = np.broadcast_to(np.asarray(values, np.int64), old.shape).copy()
        self._owner[fragments] = new
        return [OwnerPatch(fragments, old, new)]

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

    def _set_index(self, entries: Mapping[int, SegmentEntry | None]) -> None:
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
        patches: list[Patch],
        before: dict[int, SegmentEntry | None],
        after: dict[int, SegmentEntry | None],
        mapping: dict[int, int] | None = None,
        region: Region | None = None,
        owner_patches: list[OwnerPatch] | None = None,
        mixed: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset()),
    ) -> Edit:
        if region is None and patches:
            region = region_of_box(union_of_boxes(box_of_region(p.region) for p in patches))
        self._set_index(after)
        self._undo.append(
            UndoRecord(edit, patches, before, after, region, mapping, owner_patches or [], mixed)
        )
        self._redo.clear()
        self._changed = region
        return edit

    def _coordinates(self, coordinates: Iterable[Iterable[float]] | None) -> list[list[float]]:
        return [
            [float(c) for c in point] for point in (coordinates if coordinates is not None else ())
        ]

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

        Parameters
        ----------
        ids
            Two or more segment ids (repeats are ignored).
        coordinates
            Voxel coordinates the user clicked, for the log.

        Returns
        -------
        Edit
            The edit; ``new_ids`` holds the surviving id.

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
            region = region_of_box(self._index[source].box)
            sub = self._volume[region]
            mask = sub == source
            patches.append(
                Patch(
                    region,
                    ChangedVoxels.of(mask),
                    PackedValues.constant(source, dtype),
                    PackedValues.constant(target, dtype),
                )
            )
            sub[mask] = target
        before = {i: self._index[i] for i in ids}
        merged = SegmentEntry(
            sum(e.count for e in before.values()), union_of_boxes(e.box for e in before.values())
        )
        after: dict[int, SegmentEntry | None] = {i: None for i in ids}
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

        Returns
        -------
        Edit
            The edit; ``new_ids`` holds the fresh ids, in the order of the seeds after the first.

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
        region = region_of_box(entry.box)
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
        patch = Patch(
            region,
            ChangedVoxels.of(changed),
            PackedValues.constant(segment_id, self._volume.dtype),
            PackedValues.pack(lut[labels_of_changed]),
        )
        sub[changed] = lut[labels_of_changed]
        counts = np.bincount(parts.ravel(), minlength=n + 1)
        objects = ndi.find_objects(parts, max_label=n)
        after: dict[int, SegmentEntry | None] = {}
        for k, new_id in enumerate([segment_id, *new_ids], start=1):
            box = box_of_region(objects[k - 1])
            after[new_id] = SegmentEntry(
                int(counts[k]), tuple(int(b) + int(lo[i % 3]) for i, b in enumerate(box))
            )
        before: dict[int, SegmentEntry | None] = {i: None for i in new_ids}
        before[segment_id] = entry
        owner_patches = self._hand_over([segment_id])
        mixed = self._change_mixed([segment_id, *new_ids], [])
        return self._commit(edit, [patch], before, after, owner_patches=owner_patches, mixed=mixed)

    def _split_fragments(self, edit: Edit, entry: SegmentEntry, seed_fragments: np.ndarray) -> Edit:
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
            region = region_of_box(tuple(graph.boxes[fragment].tolist()))
            sub = self._volume[region]
            mask = graph.fragments[region] == fragment
            new_id = ids[piece[fragment]]
            patches.append(
                Patch(
                    region,
                    ChangedVoxels.of(mask),
                    PackedValues.constant(segment_id, dtype),
                    PackedValues.constant(new_id, dtype),
                )
            )
            sub[mask] = new_id
        after: dict[int, SegmentEntry | None] = {}
        for k, new_id in enumerate(ids):
            part = members[piece[members] == k]
            boxes = graph.boxes[part]
            after[new_id] = SegmentEntry(
                int(graph.counts[part].sum()),
                tuple(boxes[:, :3].min(0).tolist() + boxes[:, 3:].max(0).tolist()),
            )
        before: dict[int, SegmentEntry | None] = {i: None for i in edit.new_ids}
        before[segment_id] = entry
        owner_patches = self._set_owners(moved, np.array(ids)[piece[moved]])
        return self._commit(edit, patches, before, after, owner_patches=owner_patches)

    def delete(self, segment_id: int, coordinates: Iterable[Iterable[float]] = ()) -> Edit:
        """Set a segment to background (0).

        Parameters
        ----------
        segment_id
            The segment to delete.
        coordinates
            Voxel coordinates the user clicked, for the log.

        Returns
        -------
        Edit
            The edit.
        """
        segment_id = _as_id(segment_id)
        self._require([segment_id])
        entry = self._index[segment_id]
        region = region_of_box(entry.box)
        sub = self._volume[region]
        mask = sub == segment_id
        patch = Patch(
            region,
            ChangedVoxels.of(mask),
            PackedValues.constant(segment_id, sub.dtype),
            PackedValues.constant(0, sub.dtype),
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

        Parameters
        ----------
        segment_id
            The segment whose holes to fill.
        coordinates
            Voxel coordinates the user clicked, for the log.

        Returns
        -------
        Edit
            The edit; ``ids`` holds the segment, then the ids it swallowed.
        """
        segment_id = _as_id(segment_id)
        self._require([segment_id])
        entry = self._index[segment_id]
        region = region_of_box(entry.box)
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
        patch = Patch(
            region,
            ChangedVoxels.of(holes),
            PackedValues.pack(old),
            PackedValues.constant(segment_id, sub.dtype),
        )
        sub[holes] = segment_id
        swallowed, counts = np.unique(old, return_counts=True)
        before: dict[int, SegmentEntry | None] = {segment_id: entry}
        after: dict[int, SegmentEntry | None] = {
            segment_id: SegmentEntry(entry.count + int(holes.sum()), entry.box)
        }
        for other, count in zip(swallowed.tolist(), counts.tolist(), strict=True):
            if other == 0:
                continue
            was = self._index[other]
            before[other] = was
            if count == was.count:
                after[other] = None
            else:  # partly swallowed (a segment in pieces): its box may shrink
                box = box_of_mask(self._volume[region_of_box(was.box)] == other, was.box[:3])
                after[other] = SegmentEntry(was.count - count, box)  # type: ignore[arg-type]
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
        before: dict[int, SegmentEntry | None] = {i: None for i in mapping.values()}
        before.update({i: self._index[i] for i in mapping})
        after: dict[int, SegmentEntry | None] = {i: None for i in mapping}
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
            patch.revert(self._volume)
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
            patch.apply(self._volume)
        self._restore_owners(record, undo=False)
        self._set_index(record.after)
        self._undo.append(record)
        self._changed = record.region
        return record.edit

    def last_record(self, undone: bool = False) -> UndoRecord | None:
        """The newest record of the undo stack (``undone``: of the redo stack), for a journal.

        After an edit or a redo it holds what was written; after an undo, ``undone=True``
        gives the record just reverted.

        Parameters
        ----------
        undone
            Look at the redo stack instead.

        Returns
        -------
        UndoRecord or None
            None when that stack is empty.
        """
        stack = self._redo if undone else self._undo
        return stack[-1] if stack else None

    def _restore_owners(self, record: UndoRecord, undo: bool) -> None:
        if self._owner is None:
            return
        for fragments, old, new in reversed(record.owners) if undo else record.owners:
            self._owner[fragments] = old if undo else new
        added, removed = record.mixed
        self._mixed -= added if undo else removed
        self._mixed |= removed if undo else added

    def save_log(self, path: str | os.PathLike) -> Path:
        """Write the edit log (:attr:`edits`) as JSON, atomically; see `edit_log.write_log`.

        Parameters
        ----------
        path
            Where to write; missing parent folders are created.

        Returns
        -------
        Path
            ``path``.
        """
        return write_log(self.edits, path)
