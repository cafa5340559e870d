"""The journal side of the proofreading panel: every change of the labels is journalled.

`LabelsJournalling` is mixed into `ProofreadingPanel`: it records brush strokes, napari's own
undo and redo, and each operation in the training store's `LabelsJournal`, and replays an
earlier session's unsaved changes ("Restore unsaved edits (N)").
"""

from __future__ import annotations

from typing import Any

from napari.layers import Labels
from napari.utils.notifications import show_info

from napari_spines._widgets._layers import in_viewer
from napari_spines.segmentation.edit_log import Edit
from napari_spines.training.journal import waiting_edits_note


class LabelsJournalling:
    """Journal the proofreading panel's labels (needs its layers, session, journal and button)."""

    def _on_paint(self, event: Any = None) -> None:
        self.index_stale = True
        if self.labels_layer is not None:
            self.journal.record_paint(getattr(event, "value", None), self.labels_layer.data)
            metadata = self.labels_layer.metadata
            metadata["painted"] = int(metadata.get("painted", 0)) + 1
            self.restore_button.offer(0)

    def start_journal(self, threshold: float) -> None:
        """Journal the labels just made (at ``threshold``); offer what an earlier session left."""
        session, labels = self.session, self.labels_layer
        if session is None or session.proofreader is None or labels is None or self.source is None:
            return
        n = self.journal.start(self.source, labels, session.proofreader, threshold)
        labels.metadata.update(edits=[], painted=0)
        self.restore_button.offer(n)
        found = self.journal.journal.unsaved if self.journal.journal is not None else 0
        if note := waiting_edits_note(n, found, self.journal.found_threshold):
            show_info(note)

    def _journal_edit(self, edit: Edit, how: str) -> None:
        assert self.session is not None and self.labels_layer is not None
        self.journal.record_edit(self.session.proofreader, edit, how)
        self.labels_layer.metadata["edits"] = self.journal.edits(self.session.proofreader)
        self.restore_button.offer(0)

    def restore(self) -> int | None:
        """Replay the unsaved changes of an earlier session onto the labels (same base)."""
        found = self.journal.journal
        if not in_viewer(self._viewer, self.labels_layer) or found is None:
            self._say("Segment an image first.", error=True)
            return None
        if not (self.journal.fits and found.unsaved):
            self._say("No unsaved edits of these labels to restore.", error=True)
            return None
        assert self.labels_layer is not None and self.session is not None
        n = self.journal.restore(self.labels_layer.data)
        self.index_stale = True  # the next operation indexes the labels first
        self.labels_layer.refresh()
        self.labels_layer.metadata["edits"] = self.journal.edits(self.session.proofreader)
        self.restore_button.offer(0)
        self._edited()
        self._say(f"restored {n} unsaved edits (they cannot be undone)")
        return n

    def _napari_history(self, which: str, layer: Labels) -> None:
        """Undo or redo a brush stroke with napari's own history (Ctrl-Z, Ctrl-Shift-Z).

        It changes the labels without a paint event, so the proofreading index is marked out of
        date here, as after painting.
        """
        getattr(layer, which)()
        self.index_stale = True
        history = getattr(layer, "_redo_history" if which == "undo" else "_undo_history", None)
        self.journal.record_regions(history[-1] if history else None, layer.data)
        self.restore_button.offer(0)
