"""Dock widget: detect spines, filter them by score, and review them one by one.

Keys on the spines layer: N next, B back, A accept, R reject, U undo. Clicking in add mode (P)
adds a spine (``added``); dragging one in select mode (S) marks it ``moved``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    Label,
    PushButton,
)
from napari.utils.notifications import show_error, show_info

from napari_spines._widgets._task import TaskPanel
from napari_spines._widgets._viewer import follow_layers, image_layers
from napari_spines._widgets.run_model import layer_axes
from napari_spines.io.layers import spine_points_style
from napari_spines.io.points_csv import write_points_csv
from napari_spines.models import find_model, list_models
from napari_spines.spines.detection import Detections, detect_spines, detections_table
from napari_spines.spines.evaluate import (
    counted_spines,
    load_session,
    score_on_session,
    session_files,
)
from napari_spines.spines.review import ReviewQueue, status_colours

#: Peaks are searched down to this fraction of the model's threshold, so the slider can go lower
#: without running the model again.
SEARCH_FRACTION = 0.5
KEYS = {"n": "next", "b": "previous", "a": "accept", "r": "reject", "u": "undo"}


class SpineDetectionWidget(Container):
    """Run a spine model on an image layer; review the spines it finds."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._image = ComboBox(label="image", choices=self._image_choices)
        self._model = ComboBox(label="model", choices=self._model_choices)
        self._device = ComboBox(label="device", choices=("auto", "cpu", "cuda", "mps"))
        self._run = PushButton(text="Detect spines")
        self._threshold = FloatSlider(label="threshold", min=0.0, max=1.0, step=0.01, value=0.5)
        self._counts = Label(value="no spines yet")
        self._buttons = Container(
            layout="horizontal",
            labels=False,
            widgets=[
                PushButton(text="◀ Back (B)"),
                PushButton(text="Next (N) ▶"),
                PushButton(text="Accept (A)"),
                PushButton(text="Reject (R)"),
                PushButton(text="Undo (U)"),
            ],
        )
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
        self._score_result = Label(value="")
        super().__init__(
            widgets=[
                self._image,
                self._model,
                self._device,
                self._run,
                self._threshold,
                self._counts,
                self._buttons,
                self._export_path,
                self._export,
                self._session,
                self._score,
                self._score_result,
            ]
        )
        self.task = TaskPanel()
        self.native.layout().insertWidget(4, self.task)
        self.layer: napari.layers.Points | None = None
        self._positions = np.zeros((0, 3))
        self.queue: ReviewQueue | None = None
        self._run.clicked.connect(self.run)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))
        self._threshold.changed.connect(self._apply_threshold)
        self._model.changed.connect(self._use_model_threshold)
        actions = [self.previous, self.next, self.accept, self.reject, self.undo]
        for button, action in zip(self._buttons, actions, strict=True):
            button.clicked.connect(action)
        self._export.clicked.connect(self.export)
        self._score.clicked.connect(self.score)
        follow_layers(viewer, self._image)
        self._use_model_threshold()

    # -- choices ---------------------------------------------------------------------------
    def _image_choices(self, _widget: object = None) -> list[tuple[str, object]]:
        return image_layers(self._viewer)

    def _model_choices(self, _widget: object = None) -> list[str]:
        names = [p.spec.name for p in list_models() if p.spec.task == "spine-detection"]
        return sorted(names, key=lambda n: n != "spine-2p")  # the learned model first

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
        axes = layer_axes(layer)
        n_spatial = sum(a in "ZYX" for a in axes)
        voxel = (
            None
            if layer.metadata.get("voxel_size_known") is False
            else tuple(float(s) for s in layer.scale[-n_spatial:])
        )
        job = partial(
            detect_spines,
            layer.data,
            axes,
            self._model.value,
            voxel,
            SEARCH_FRACTION * self._threshold.value,
            device=self._device.value,
        )
        if self.task.run(job, on_result=partial(self.show_detections, layer)) is not None:
            self._run.enabled = False

    def show_detections(self, image: napari.layers.Image, found: Detections) -> None:
        """Add (or replace) the spines layer for ``found`` and start a review."""
        features = detections_table(found)
        name = f"{image.name} spines"
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        voxel = tuple(image.scale[-3:])
        self.layer = self._viewer.add_points(
            found.coords,
            name=name,
            features=features,
            scale=tuple(image.scale),
            translate=tuple(image.translate),
            units=tuple(image.units),
            axis_labels=tuple(image.axis_labels),
            **spine_points_style(voxel),
            border_width=0.15,
            border_width_is_relative=True,
            metadata={"voxel_size_um": voxel},
        )
        self.layer.feature_defaults = {"id": 0, "score": np.nan, "status": "added"}
        self._positions = np.asarray(self.layer.data).copy()
        self.layer.events.data.connect(self._on_data_changed)
        for key, action in KEYS.items():
            self.layer.bind_key(key, lambda _layer, a=action: getattr(self, a)(), overwrite=True)
        self.queue = ReviewQueue(
            self.layer.features["score"].to_numpy(),
            self.layer.features["status"].to_numpy(dtype=object),
            self._threshold.value,
        )
        self._refresh()
        self._offer_annotations(image)
        show_info(f"{len(found)} spines; review them with N / B, A / R, U.")

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
            index = self.queue.undo()
            self._refresh()
            self._focus(index)

    def _decide(self, status: str) -> None:
        if self.queue is None:
            return
        index = self.queue.decide(status)
        self._refresh()
        self._focus(index)

    def _focus(self, index: int | None) -> None:
        """Centre the camera on spine ``index`` and move the sliders to its plane."""
        if index is None or self.layer is None:
            return
        world = np.asarray(self.layer.data_to_world(self.layer.data[index]))
        first = self._viewer.dims.ndim - len(world)
        for axis in self._viewer.dims.not_displayed:
            if axis >= first:
                self._viewer.dims.set_point(axis, float(world[axis - first]))
        displayed = [axis - first for axis in self._viewer.dims.displayed if axis >= first]
        self._viewer.camera.center = tuple(world[displayed])
        self.layer.selected_data = {index}

    def _on_data_changed(self, event: Any) -> None:
        """Mark spines whose position changed ``moved``; number added ones; follow deletions."""
        if self.layer is None or self.queue is None:
            return
        action = str(getattr(event, "action", ""))
        if not action.lower().endswith(("changed", "added", "removed")):
            return  # the "-ing" events before a change
        features = self.layer.features
        statuses = features["status"].to_numpy(dtype=object)
        data = np.asarray(self.layer.data)
        if action.lower().endswith("changed") and len(data) == len(self._positions):
            moved = np.any(np.abs(data - self._positions) > 1e-6, axis=1)
            statuses[moved & (statuses != "added")] = "moved"
        if action.lower().endswith("added"):
            ids = features["id"].to_numpy().copy()
            for index in getattr(event, "data_indices", ()) or ():
                ids[index % len(ids)] = int(np.nanmax(ids)) + 1
            features["id"] = ids
        self._positions = data.copy()
        features["status"] = statuses
        self.queue.grow(features["score"].to_numpy(), statuses)
        self._refresh()

    def _refresh(self) -> None:
        """Push statuses into the layer (colours, visibility) and update the counts."""
        if self.layer is None or self.queue is None:
            return
        statuses = self.queue.statuses
        self.layer.features["status"] = statuses
        self.layer.border_color = status_colours(statuses)
        scores = self.layer.features["score"].to_numpy(dtype=float)
        self.layer.shown = np.isnan(scores) | (scores >= self._threshold.value)
        reviewed, total = self.queue.counts()
        self._counts.value = (
            f"reviewed {reviewed} / {total} shown "
            f"({int(self.layer.shown.sum())} spines in the layer view)"
        )

    # -- export ----------------------------------------------------------------------------
    def export(self) -> None:
        """Write the shown and reviewed spines to CSV: voxels, µm, id, score, status."""
        if self.layer is None:
            show_error("Detect spines first.")
            return
        path = Path(str(self._export_path.value))
        keep = self.layer.shown | (self.layer.features["status"].to_numpy() != "auto")
        features = {k: self.layer.features[k].to_numpy()[keep] for k in self.layer.features}
        write_points_csv(
            path, self.layer.data[keep], tuple(self.layer.metadata["voxel_size_um"]), features
        )
        show_info(f"{int(keep.sum())} spines written to {path}")

    # -- scoring ---------------------------------------------------------------------------
    def _offer_annotations(self, image: napari.layers.Image) -> None:
        """Fill in the annotated stack when the image came from a file with tables beside it."""
        source = image.source.path
        if source and all(path.exists() for path in session_files(source)):
            self._session.value = source

    def score(self) -> None:
        """Score the spines that count (shown, not rejected) against an annotated stack."""
        if self.layer is None:
            show_error("Detect spines first.")
            return
        if self.layer.data.shape[1] != 3:
            show_error("Scoring works on one Z × Y × X stack, not on a time series.")
            return
        path = Path(str(self._session.value))
        if not path.is_file():
            show_error(
                "Choose an annotated stack: STACK.tif with STACK_spines.csv and "
                "STACK_dendrites.csv beside it."
            )
            return
        try:
            session = load_session(path)
        except (OSError, ValueError) as exc:
            show_error(str(exc))
            return
        voxel = np.asarray(self.layer.metadata["voxel_size_um"], dtype=float)
        if not np.allclose(voxel, session.voxel_size_um, rtol=0.01):
            show_error(
                f"The spines have voxel size {tuple(voxel)} µm but {path.name} is "
                f"annotated at {session.voxel_size_um} µm: score the spines of that "
                "stack."
            )
            return
        shown = self.layer.shown  # the threshold slider's choice
        statuses = self.layer.features["status"].to_numpy()[shown]
        detections = counted_spines(self.layer.data[shown], {"status": statuses})
        result = score_on_session(detections, session)
        self._score_result.value = f"{path.stem}: {result}"
        show_info(f"{len(detections)} spines scored on {path.name}: {result}")
