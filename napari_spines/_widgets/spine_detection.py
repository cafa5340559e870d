"""Dock widget: detect spines, filter them by score, and review them one by one.

Keys on the spines layer: N next, B back, A accept, R reject, U undo. Clicking in add mode (P)
adds a spine (``added``); dragging one in select mode (S) marks it ``moved``. Every edit is
journalled in the training store (`napari_spines.training.journal`); when the detections of a
stack with an unsaved journal are shown, "Restore unsaved edits (N)" brings the review back.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSlider, PushButton
from napari.utils.notifications import show_error, show_info

from napari_spines._widgets import _journal
from napari_spines._widgets._choices import DEVICES, follow_layers, model_names
from napari_spines._widgets._layers import (
    RING_WIDTH,
    image_layers,
    layer_axes,
    layer_voxel_size,
    placed_like,
)
from napari_spines._widgets._review import (
    bind_review_keys,
    follow_hand_edits,
    show_statuses,
    show_under_review,
)
from napari_spines._widgets._task import TaskPanel, status_label
from napari_spines.io.layers import spine_points_style
from napari_spines.io.points_csv import write_kept_points
from napari_spines.models import find_model
from napari_spines.spines.detection import Detections, detect_spines, detections_table
from napari_spines.spines.evaluate import score_reviewed, session_files
from napari_spines.spines.review import ReviewQueue
from napari_spines.training.journal import Journal
from napari_spines.training.store import model_record

#: Peaks are searched down to this fraction of the model's threshold, so the slider can go lower
#: without running the model again.
SEARCH_FRACTION = 0.5
REVIEW_BUTTONS = ("◀ Back (B)", "Next (N) ▶", "Accept (A)", "Reject (R)", "Undo (U)")


class SpineDetectionWidget(Container):
    """Run a spine model on an image layer; review the spines it finds."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._image = ComboBox(label="image", choices=lambda _w: image_layers(viewer))
        self._model = ComboBox(
            label="model", choices=lambda _w: model_names("spine-detection", first="spine-2p")
        )
        self._device = ComboBox(label="device", choices=DEVICES)
        self._run = PushButton(text="Detect spines")
        self._threshold = FloatSlider(label="threshold", min=0.0, max=1.0, step=0.01, value=0.5)
        self._counts = status_label("no spines yet")
        self._buttons = Container(
            layout="horizontal",
            labels=False,
            widgets=[PushButton(text=text) for text in REVIEW_BUTTONS],
        )
        self.restore_button = _journal.RestoreButton()
        self._export_path = FileEdit(label="CSV", mode="w", filter="*.csv", value="spines.csv")
        self._export = PushButton(text="Export CSV")
        self._session = FileEdit(
            label="annotated",
            mode="r",
            filter="*.tif *.tiff",
            value="",
            tooltip="STACK.tif with STACK_spines.csv and STACK_dendrites.csv beside it",
        )
        self._score = PushButton(text="Score against annotated stack")
        self._score_result = status_label("")
        super().__init__(
            widgets=[
                *(self._image, self._model, self._device, self._run, self._threshold),
                *(self._counts, self._buttons, self.restore_button),
                *(self._export_path, self._export),
                *(self._session, self._score, self._score_result),
            ]
        )
        self.task = TaskPanel()
        self.native.layout().insertWidget(4, self.task)
        self.layer: napari.layers.Points | None = None
        self._positions = np.zeros((0, 3))
        self.queue: ReviewQueue | None = None
        self.journal: Journal | None = None
        self._run.clicked.connect(self.run)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))
        self._threshold.changed.connect(self._apply_threshold)
        self._model.changed.connect(self._use_model_threshold)
        actions = [self.previous, self.next, self.accept, self.reject, self.undo]
        for button, action in zip(self._buttons, actions, strict=True):
            button.clicked.connect(action)
        self.restore_button.clicked.connect(self.restore)
        self._export.clicked.connect(self.export)
        self._score.clicked.connect(self.score)
        follow_layers(viewer, self._image)
        self._use_model_threshold()

    def _use_model_threshold(self, *_args: object) -> None:
        if self._model.value:
            post = find_model(self._model.value).spec.postprocessing
            self._threshold.value = float(post.get("threshold", 0.5))

    # -- detection -------------------------------------------------------------------------
    def run(self) -> None:
        """Detect spines in a worker; the Points layer is made on the main thread."""
        layer = self._image.value
        if layer is None or not self._model.value:
            show_error("Choose an image layer and a spine model first.")
            return
        job = partial(
            detect_spines,
            layer.data,
            layer_axes(layer),
            self._model.value,
            layer_voxel_size(layer).for_model(),
            SEARCH_FRACTION * self._threshold.value,
            device=self._device.value,
        )
        shown = partial(self.show_detections, layer, model=self._model.value)
        if self.task.run(job, on_result=shown) is not None:
            self._run.enabled = False

    def show_detections(
        self, image: napari.layers.Image, found: Detections, model: str | None = None
    ) -> Iterator[None]:
        """Add (or replace) the spines layer for ``found`` (by ``model``); start a review.

        Yields
        ------
        None
            After each layer change, for `TaskPanel` to run one step per turn (`show_now`).
        """
        name = f"{image.name} spines"
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
            yield
        self.layer = self._viewer.add_points(
            found.coords,
            name=name,
            features=detections_table(found),
            **placed_like(image),
            **spine_points_style(layer_voxel_size(image).um),
            border_width=RING_WIDTH,
            border_width_is_relative=True,
        )
        self.layer.feature_defaults = {"id": 0, "score": np.nan, "status": "added"}
        if model:
            self.layer.metadata["model"] = model_record(find_model(model))
        self.layer.events.data.connect(self._on_data_changed)
        bind_review_keys(self.layer, self)
        yield
        self._start_review()
        yield
        source = image.source.path  # an annotated stack: offer to score against it
        if source and all(path.exists() for path in session_files(source)):
            self._session.value = source
        self.journal = Journal(_journal.journal_of(image, "spines"), snapshots=True)
        self.restore_button.offer(self.journal.unsaved)
        waiting = " Unsaved edits wait: Restore unsaved edits." if self.journal.unsaved else ""
        show_info(f"{self._counts.value}; review them with N / B, A / R, U.{waiting}")

    def _start_review(self) -> None:
        """Review the spines of the layer from its statuses, in order of uncertainty."""
        assert self.layer is not None
        self._positions = np.asarray(self.layer.data).copy()
        self.queue = ReviewQueue(
            self.layer.features["score"].to_numpy(),
            self.layer.features["status"].to_numpy(dtype=object),
            self._threshold.value,
        )
        self._refresh()

    def _apply_threshold(self, *_args: object) -> None:
        """Filter the shown spines by score at once, without running the model again."""
        if self.layer is None or self.queue is None:
            return
        self.queue.set_threshold(self._threshold.value)
        self._refresh()

    # -- review ----------------------------------------------------------------------------
    def next(self) -> None:
        """Go to the next spine to review."""
        if self.queue is not None:
            self._focus(self.queue.next())

    def previous(self) -> None:
        """Go back to the previous spine."""
        if self.queue is not None:
            self._focus(self.queue.previous())

    def accept(self) -> None:
        """Accept the current spine and go to the next."""
        self._decide("accepted")

    def reject(self) -> None:
        """Reject the current spine (it stays, dimmed, as a negative example); go on."""
        self._decide("rejected")

    def undo(self) -> None:
        """Revert the last accept or reject."""
        if self.queue is not None:
            self._reviewed(self.queue.undo())

    def _decide(self, status: str) -> None:
        if self.queue is not None:
            self._reviewed(self.queue.decide(status))

    def _reviewed(self, index: int | None) -> None:
        """Show a decision (or its undo) on spine ``index``; journal it; go to it."""
        self._refresh()
        if index is not None:
            self._journal_edit()
        self._focus(index)

    def _focus(self, index: int | None) -> None:
        if self.layer is not None:
            show_under_review(self._viewer, self.layer, index)

    def _on_data_changed(self, event: Any) -> None:
        """Mark spines whose position changed ``moved``; number added ones; follow deletions."""
        if self.layer is None or self.queue is None:
            return
        followed = follow_hand_edits(self.layer, event, self._positions, "id")
        if followed is None:
            return
        self._positions = followed[0]
        features = self.layer.features
        self.queue.grow(
            features["score"].to_numpy(dtype=float), features["status"].to_numpy(dtype=object)
        )
        self._refresh()
        self._journal_edit()

    def _journal_edit(self) -> None:
        if self.layer is not None:
            _journal.write_safely(self.journal, _journal.spines_state(self.layer))
            self.restore_button.offer(0)  # an earlier session's journal is aside now

    def restore(self) -> None:
        """Replace the spines and their statuses with the last state in the journal."""
        if self.layer is None or self.journal is None or not self.journal.unsaved:
            show_error("No unsaved edits of this stack to restore.")
            return
        with self.layer.events.data.blocker(self._on_data_changed):  # not an edit
            message = _journal.put_spines(self.layer, self.journal.adopt()[-1])
        self._start_review()
        self.restore_button.offer(0)
        show_info(message)

    def _refresh(self) -> None:
        """Push statuses into the layer (colours, visibility) and update the counts."""
        if self.layer is not None and self.queue is not None:
            self._counts.value = show_statuses(self.layer, self.queue)

    # -- export and scoring ----------------------------------------------------------------
    def export(self) -> None:
        """Write the shown and reviewed spines to CSV: voxels, µm, id, score, status."""
        if self.layer is None or self.queue is None:
            show_error("Detect spines first.")
            return
        path, voxel = Path(str(self._export_path.value)), layer_voxel_size(self.layer).um
        try:
            n = write_kept_points(
                path, self.layer.data, voxel, self.layer.features, self.queue.kept
            )
        except OSError as exc:  # a folder that does not exist or cannot be written
            show_error(f"{path}: {exc.strerror or exc}")
            return
        show_info(f"{n} spines written to {path}")

    def score(self) -> None:
        """Score the spines that count (shown, not rejected) against an annotated stack."""
        if self.layer is None or self.queue is None:
            show_error("Detect spines first.")
            return
        path, shown = Path(str(self._session.value)), self.queue.shown  # the slider's choice
        try:
            n, result = score_reviewed(
                self.layer.data[shown],
                self.queue.statuses[shown],
                layer_voxel_size(self.layer).um,
                path,
            )
        except ValueError as exc:
            show_error(str(exc))
            return
        self._score_result.value = f"{path.stem}: {result}"
        show_info(f"{n} spines scored on {path.name}: {result}")
