"""The proofreading panel of the Segmentation widget: edit buttons, keys, Next, Save.

Each button turns the proofreading points into voxels of the labels and calls one operation
of the `SegmentationSession`. After hand painting, the labels are indexed again in a worker
(napari does not freeze on a large volume), and the operation that asked runs when it is done.

Every change of the labels (an operation, an undo or redo, a brush stroke) is journalled in the
training store (`LabelsJournal`); labels made anew from the same stack, model and threshold
offer to replay an earlier session's unsaved changes ("Restore unsaved edits (N)"). The
Labels layer's metadata holds the edit log (``edits``) and the brush strokes (``painted``), for
the Training data widget.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from app_model.types import KeyCode, KeyMod
from magicgui.widgets import ComboBox, Container, FileEdit, PushButton
from napari.layers import Image, Labels, Points

from napari_spines._widgets._journal import LabelsJournal, RestoreButton
from napari_spines._widgets._labels_journalling import LabelsJournalling
from napari_spines._widgets._layers import focus, in_viewer, layer_voxel_size, points_in
from napari_spines._widgets._task import LatestWorker
from napari_spines.errors import first_line
from napari_spines.segmentation.edit_log import Edit
from napari_spines.segmentation.session import (
    ORDERS,
    SegmentationSession,
    describe_edit,
    void_edit_note,
)
from napari_spines.voxel_size import assumed_size_warning

#: Key → panel method, bound on the segmentation and the proofreading-points layers.
KEYS = {
    "Shift-M": "merge",
    "Shift-S": "split",
    "Shift-D": "delete",
    "Shift-F": "fill_holes",
    "Shift-N": "next_segment",
    "Shift-U": "undo",
    "Shift-R": "redo",
}
Operation = Callable[[SegmentationSession, np.ndarray, int], Edit | None]


class ProofreadingPanel(LabelsJournalling, Container):
    """Merge, split, delete, fill holes, renumber, undo/redo, go to the next segment, save.

    Parameters
    ----------
    viewer
        The viewer holding the layers.
    say
        Shows a message in the widget (``error=True``: also as a notification).
    relabel_busy
        True while the labels are being remade at a new threshold (edits then wait).
    edited
        Called after every edit (the widget rescores).
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        say: Callable[..., None],
        relabel_busy: Callable[[], bool],
        edited: Callable[[], None],
    ) -> None:
        self._viewer = viewer
        self._say, self._relabel_busy, self._edited = say, relabel_busy, edited
        self.session: SegmentationSession | None = None
        self.source: Image | None = None
        self.labels_layer: Labels | None = None
        self.points_layer: Points | None = None
        self.index_stale = False  # painted by hand since the last index
        self._after_index: Callable[[], object] | None = None  # the request indexing holds up
        self._indexer = LatestWorker(self._index_job, self._reindexed, self._reindex_failed)
        self._order = ComboBox(label="next", choices=tuple(ORDERS))
        buttons = {
            "Merge (⇧M)": self.merge,
            "Split (⇧S)": self.split,
            "Delete (⇧D)": self.delete,
            "Fill holes (⇧F)": self.fill_holes,
            "Next (⇧N)": self.next_segment,
            "Undo (⇧U)": self.undo,
            "Redo (⇧R)": self.redo,
            "Relabel 1…N": self.relabel_sequential,
        }
        rows = [Container(layout="horizontal", labels=False) for _ in range(2)]
        for i, (text, action) in enumerate(buttons.items()):
            button = PushButton(text=text)
            button.clicked.connect(action)
            rows[i // 4].append(button)
        self._save_path = FileEdit(
            label="labels", mode="w", filter="*.tif *.tiff", value="segmentation.tif"
        )
        save = PushButton(text="Save labels…")
        save.clicked.connect(lambda: self.save(Path(str(self._save_path.value))))
        self.journal = LabelsJournal()
        self.restore_button = RestoreButton()
        self.restore_button.clicked.connect(self.restore)
        super().__init__(widgets=[self._order, *rows, self.restore_button, self._save_path, save])
        self.margins = (0, 0, 0, 0)

    def attach(
        self, session: SegmentationSession, source: Image, labels: Labels, points: Points
    ) -> None:
        """Proofread ``labels`` of ``source`` with ``session``; bind the keys on both layers."""
        self.session, self.source, self.labels_layer, self.points_layer = (
            session, source, labels, points
        )  # fmt: skip
        self.index_stale = False
        labels.events.paint.connect(self._on_paint)
        for key, which in (
            (KeyMod.CtrlCmd | KeyCode.KeyZ, "undo"),
            (KeyMod.CtrlCmd | KeyMod.Shift | KeyCode.KeyZ, "redo"),
        ):
            labels.bind_key(key, partial(self._napari_history, which), overwrite=True)
        for layer in (labels, points):
            for key, action in KEYS.items():
                layer.bind_key(key, lambda _layer, a=action: getattr(self, a)(), overwrite=True)

    # -- the index of painted labels -------------------------------------------------------
    @property
    def index_busy(self) -> bool:
        """True while painted labels are being indexed (an operation waits for it)."""
        return self._indexer.busy

    def _ready(self, retry: Callable[[], object]) -> SegmentationSession | None:
        """The session, ready to edit the Labels layer; None (with a message) when it is not."""
        if self.session is None or not in_viewer(self._viewer, self.labels_layer):
            self._say("Segment an image first.", error=True)
            return None
        if self._relabel_busy():
            self._say("Relabelling at the new threshold: try again in a moment.", error=True)
            return None
        if self.index_busy or self.index_stale:
            self._after_index = retry  # the latest request runs when the index is ready
            if not self.index_busy:
                self.index_stale = False
                self._say("indexing the painted labels…")
                self._indexer.request()
            return None
        assert self.labels_layer is not None
        try:
            self.session.proofread(self.labels_layer.data)
        except ValueError as exc:
            self._say(first_line(exc), error=True)
            return None
        return self.session

    def _index_job(self) -> Callable[[], object] | None:
        if self.session is None or self.session.proofreader is None:
            return None
        proofreader = self.session.proofreader
        return lambda: (proofreader, proofreader.index_labels())

    def _reindexed(self, result: tuple[Any, Any]) -> None:
        proofreader, index = result
        retry, self._after_index = self._after_index, None
        if self.session is None or proofreader is not self.session.proofreader:
            return  # relabelled or segmented again meanwhile
        proofreader.reindex(index)
        self._say("painted labels indexed")
        if retry is not None:
            retry()

    def _reindex_failed(self, exc: BaseException) -> None:
        self._after_index = None
        self.index_stale = True
        self._say(f"could not index the painted labels: {first_line(exc)}", error=True)

    # -- operations ------------------------------------------------------------------------
    def _edit(self, retry: Callable[[], object], operation: Operation, how: str = "") -> Any:
        """Run one operation on the points; refresh the layer, clear the points, rescore."""
        session = self._ready(retry)
        if session is None:
            return None
        assert self.labels_layer is not None
        try:
            voxels = np.empty((0, 3))
            if in_viewer(self._viewer, self.points_layer):
                voxels = points_in(self.points_layer, self.labels_layer)
            edit = operation(session, voxels, int(self.labels_layer.selected_label))
        except ValueError as exc:
            self._say(first_line(exc), error=True)
            return None
        if (note := void_edit_note(edit, session.changed, how)) is not None:
            self._say(note)
            return None
        if session.changed:
            # napari re-slices only the shown plane; its partial refresh is private API
            self.labels_layer.refresh()
            self._journal_edit(edit, how)
        if self.points_layer is not None and len(self.points_layer.data):
            self.points_layer.data = np.empty((0, 3))
        self._edited()
        self._say(describe_edit(edit, how))
        return edit

    def merge(self) -> Edit | None:
        """Merge the segments under the points (with the selected label if only one)."""
        edit = self._edit(self.merge, lambda s, v, selected: s.merge(v, selected))
        if edit is not None and self.labels_layer is not None:
            self.labels_layer.selected_label = edit.new_ids[0]
        return edit

    def split(self) -> Edit | None:
        """Split the segment holding the points; each point seeds one part."""
        return self._edit(self.split, lambda s, v, selected: s.split(v, selected))

    def delete(self) -> Edit | None:
        """Delete the segment under the point(s), else the selected label."""
        return self._edit(self.delete, lambda s, v, selected: s.delete(v, selected))

    def fill_holes(self) -> Edit | None:
        """Fill the holes of the segment under the point(s), else of the selected label."""
        return self._edit(self.fill_holes, lambda s, v, selected: s.fill_holes(v, selected))

    def relabel_sequential(self) -> Edit | None:
        """Renumber the segments 1…N (visits the whole volume)."""
        return self._edit(self.relabel_sequential, lambda s, _v, _sel: s.relabel_sequential())

    def undo(self) -> Edit | None:
        """Undo the last proofreading edit."""
        return self._edit(self.undo, lambda s, _v, _sel: s.undo(), how="undo")

    def redo(self) -> Edit | None:
        """Redo the last undone proofreading edit."""
        return self._edit(self.redo, lambda s, _v, _sel: s.redo(), how="redo")

    def next_segment(self) -> int | None:
        """Select the next segment in the chosen order and move the view to it."""
        session = self._ready(self.next_segment)
        if session is None:
            return None
        segment = session.next_segment(self._order.value)
        if segment is None:
            self._say("no more segments in this order; Next starts again from the first")
            return None
        assert self.labels_layer is not None
        self.labels_layer.selected_label = segment
        voxel = session.centre_voxel(segment)
        if voxel is not None:
            focus(self._viewer, self.labels_layer, voxel)
        self._say(session.describe_segment(segment))
        return segment

    def save(self, path: str | Path) -> tuple[Path, Path] | None:
        """Write the labels TIFF (image's voxel size) and ``<name>.edits.json`` beside it."""
        path = Path(path)
        session = self._ready(partial(self.save, path))
        if session is None or self.labels_layer is None:
            return None
        placed = self.source if in_viewer(self._viewer, self.source) else self.labels_layer
        voxel = layer_voxel_size(placed)
        try:
            tiff, log = session.save(path, voxel.um)
        except ValueError as exc:
            self._say(first_line(exc), error=True)
            return None
        edits = session.proofreader.edits if session.proofreader is not None else []
        assumed = "" if voxel.known else f"; {assumed_size_warning(voxel.um)}"
        self._say(f"saved {tiff.name} and {log.name} ({len(edits)} edits){assumed}")
        return tiff, log
