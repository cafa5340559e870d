"""The autosave journal in the widgets: where a stack's journal is, and what each edit writes.

The journal itself (`napari_spines.training.journal`) knows no napari; here its lines are made
from layers: the review state of a spines layer, the changes of a proofread Labels layer
(proofreading operations from the proofreader's undo records, brush strokes from napari's
paint events). A write costs a few ms (an fsync), so every edit is journalled at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import PushButton
from napari.layers import Labels, Layer, Points

from napari_spines._widgets._layers import layer_voxel_size
from napari_spines.segmentation.label_index import box_of_region, region_of_box, union_of_boxes
from napari_spines.segmentation.undo import ChangedVoxels, PackedValues, Patch
from napari_spines.settings import training_store
from napari_spines.spines.review import status_colours
from napari_spines.training import journal
from napari_spines.training.journal import Journal

logger = logging.getLogger(__name__)


def stack_shape(image: Layer) -> tuple[int, ...]:
    """The shape of an image layer's data (its finest level when multiscale)."""
    data = image.data[0] if getattr(image, "multiscale", False) else image.data
    return tuple(int(n) for n in data.shape)


def journal_of(image: Layer, task: str, store: str | Path | None = None) -> Path:
    """The journal of ``image``'s ``task`` (``"spines"``, ``"labels"``) in the training store."""
    key = journal.stack_key(image.source.path, image.name, stack_shape(image), task)
    return journal.journal_path(training_store() if store is None else store, key)


class RestoreButton(PushButton):
    """A "Restore unsaved edits (N)" button, enabled while an earlier session's journal waits."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "tooltip",
            "Bring back the edits an earlier session made on this stack and did not save "
            "(kept in the journal of the training store)",
        )
        super().__init__(text="Restore unsaved edits", enabled=False, **kwargs)

    def offer(self, n: int) -> None:
        """Offer ``n`` edits (0: nothing to restore)."""
        self.text = f"Restore unsaved edits ({n})" if n else "Restore unsaved edits"
        self.enabled = n > 0


def write_safely(keep: Journal | None, state: dict) -> None:
    """Journal ``state``; a failure (a full disk, a store made read-only) is logged, not raised.

    The edit itself is done; only its autosave is missing, and the review goes on.
    """
    if keep is None:
        return
    try:
        keep.record(state)
    except OSError as exc:
        logger.warning("could not journal an edit to %s: %s", keep.path, exc)


# -- spines ------------------------------------------------------------------------------------


def spines_state(layer: Points) -> dict:
    """The review state of a spines layer (features id / score / status) as a journal line."""
    features = layer.features
    return journal.spine_state(
        np.asarray(layer.data, float),
        features["status"].to_numpy(dtype=object),
        features["id"].to_numpy(),
        features["score"].to_numpy(dtype=float),
        layer=layer.name,
        voxel_size_um=layer_voxel_size(layer).um,
    )


def put_spines(layer: Points, state: dict) -> str:
    """Replace the spines of ``layer`` (data, id / score / status) with a journal state.

    Returns what was restored, in words.
    """
    coords, statuses, ids, scores = journal.spine_arrays(state)
    layer.data = coords
    layer.features = {"id": ids, "score": scores, "status": statuses}
    layer.border_color = status_colours(statuses)
    reviewed = int((statuses != "auto").sum())
    return f"restored {len(coords)} spines, {reviewed} of them reviewed"


# -- labels ------------------------------------------------------------------------------------


class LabelsJournal:
    """The journal of a proofread Labels layer: a base, then one line per change.

    `start` is called whenever the labels are made anew (segmenting, a new threshold); it
    reads what an earlier session left and whether it fits these labels (same fingerprint).
    The first change after that retires a journal that was not restored.
    """

    def __init__(self) -> None:
        self.journal: Journal | None = None
        self.labels: Labels | None = None
        self.fits = False  # the journal found starts from these very labels
        self.found_threshold: float | None = None
        self.touched: tuple[slice, ...] | None = None  # every voxel edited, for a restart
        self.log: list[dict] = []  # edits restored from the journal (before this session's)

    def start(self, image: Layer, labels: Labels, proofreader: Any, threshold: float) -> int:
        """Begin the journal of ``labels``; return how many unsaved edits it can restore."""
        base = journal.labels_base(proofreader, layer=labels.name, threshold=threshold)
        self.journal = Journal(journal_of(image, "labels"), base, self._restart)
        self.labels, self.touched, self.log = labels, None, []
        bases = [s for s in self.journal.found if s.get("kind") == "base"]
        self.fits = bool(bases) and bases[-1].get("fingerprint") == base["fingerprint"]
        self.found_threshold = bases[-1].get("threshold") if bases else None
        return self.journal.unsaved if self.fits else 0

    def _restart(self) -> list[dict]:
        if self.labels is None or self.touched is None:
            return []
        return [journal.snapshot_record(self.labels.data, self.touched, self.edits())]

    def edits(self, proofreader: Any = None) -> list[dict]:
        """The edit log: edits restored from the journal, then the proofreader's."""
        own = [] if proofreader is None else [e.to_dict() for e in proofreader.edits]
        return [*self.log, *own]

    def _touch(self, region: tuple[slice, ...]) -> None:
        boxes = [box_of_region(region)] + (
            [] if self.touched is None else [box_of_region(self.touched)]
        )
        self.touched = region_of_box(union_of_boxes(boxes))

    def record_edit(self, proofreader: Any, edit: Any, how: str = "") -> None:
        """Journal what a proofreading operation (``how``: ``""``, ``undo``, ``redo``) wrote."""
        region = proofreader.changed_region()
        record = proofreader.last_record(undone=how == "undo")
        if self.journal is None or region is None or record is None:
            return
        self._touch(region)
        line = journal.change_record(
            record.patches, undone=how == "undo", mapping=record.mapping, edit=edit, how=how
        )
        write_safely(self.journal, line)

    def record_paint(self, atoms: Any, labels: np.ndarray) -> None:
        """Journal a brush stroke: napari's paint event value (its history atoms)."""
        if self.journal is None:
            return
        patches = [p for p in (_paint_patch(atom, labels) for atom in atoms or ()) if p]
        if patches:
            self._write_regions([p.region for p in patches], patches, labels)

    def record_regions(self, atoms: Any, labels: np.ndarray) -> None:
        """Journal the regions of napari history atoms as they are now (napari's undo/redo)."""
        if self.journal is None:
            return
        regions = [p.region for p in (_paint_patch(atom, labels) for atom in atoms or ()) if p]
        if not regions:  # unknown atoms: the whole volume, to be safe
            regions = [
                (slice(0, 1),) * (labels.ndim == 2) + tuple(slice(0, n) for n in labels.shape)
            ]
        volume = labels[np.newaxis] if labels.ndim == 2 else labels
        patches = [
            Patch(
                region,
                ChangedVoxels.of(np.ones(volume[region].shape, bool)),
                PackedValues.constant(0, labels.dtype),
                PackedValues.pack(np.asarray(volume[region]).ravel()),
            )
            for region in regions
        ]
        self._write_regions(regions, patches, labels)

    def _write_regions(self, regions: list, patches: list[Patch], labels: np.ndarray) -> None:
        for region in regions:
            self._touch(region[1:] if labels.ndim == 2 else region)
        write_safely(self.journal, journal.change_record(patches, how="paint"))

    def restore(self, labels: np.ndarray) -> int:
        """Replay the journal found onto ``labels`` (in place); return the edits restored."""
        assert self.journal is not None and self.fits
        states = self.journal.adopt()
        self.log = journal.replay(labels, states)
        whole = tuple(slice(0, n) for n in labels.shape)
        self.touched = whole if journal.unsaved_edits(states) else None
        return journal.unsaved_edits(states)


def _paint_patch(atom: Any, labels: np.ndarray) -> Patch | None:
    """A napari paint history atom as a `Patch` of the 3D volume (new values only)."""
    flat = labels.ndim == 2
    try:
        if hasattr(atom, "slice_key"):  # napari's masked atom: a box and a mask in it
            region = tuple(
                slice(s.start or 0, labels.shape[i] if s.stop is None else s.stop)
                for i, s in enumerate(atom.slice_key)
            )
            shape = tuple(s.stop - s.start for s in region)
            mask = np.ones(shape, bool) if atom.mask is None else np.asarray(atom.mask, bool)
            value = atom.new_value
        else:  # (indices, old values, new value)
            indices, _old, value = atom
            indices = [np.asarray(i) for i in indices]
            if not len(indices[0]):
                return None
            low = [int(i.min()) for i in indices]
            region = tuple(slice(lo, int(i.max()) + 1) for lo, i in zip(low, indices, strict=True))
            mask = np.zeros(tuple(s.stop - s.start for s in region), bool)
            mask[tuple(i - lo for i, lo in zip(indices, low, strict=True))] = True
    except (AttributeError, TypeError, ValueError) as exc:
        logger.debug("unknown paint atom %r: %s", type(atom), exc)
        return None
    if flat:
        region, mask = (slice(0, 1), *region), mask[np.newaxis]
    return Patch(
        region,
        ChangedVoxels.of(mask),
        PackedValues.constant(0, labels.dtype),
        PackedValues.constant(int(value), labels.dtype),
    )
