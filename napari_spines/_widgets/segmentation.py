"""Dock widget: segment neurons in an EM stack, tune the threshold, score and proofread.

Keys on the segmentation and proofreading-points layers: Shift-M merge, Shift-S split,
Shift-D delete, Shift-F fill holes, Shift-N next segment, Shift-U undo, Shift-R redo. napari's
own Ctrl-Z / Ctrl-Shift-Z still undo and redo brush strokes on the segmentation layer.

The widget gathers parameters and turns results into layers; a `SegmentationSession` does the
work. Segmenting runs in a `TaskPanel` worker; relabelling at a new threshold, scoring
(`GroundTruthPanel`) and indexing painted labels (`ProofreadingPanel`) run in `LatestWorker`s,
so napari never freezes on a large volume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSlider, PushButton
from napari.layers import Image, Labels, Points
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer

from napari_spines._widgets._choices import DEVICES, chosen_model, follow_layers, model_names
from napari_spines._widgets._ground_truth import GroundTruthPanel
from napari_spines._widgets._layers import (
    click_points,
    image_layers,
    in_viewer,
    layer_axes,
    layer_voxel_size,
    placed_like,
    put_layer,
)
from napari_spines._widgets._proofreading import ProofreadingPanel
from napari_spines._widgets._settings_line import NO_MODEL, SettingsLine
from napari_spines._widgets._task import LatestWorker, TaskPanel, status_label
from napari_spines.errors import first_line
from napari_spines.segmentation.pipeline import DEFAULT_MODEL, affinity_package, check_image
from napari_spines.segmentation.session import (
    Relabelled,
    SegmentationSession,
    segment_for_layers,
)
from napari_spines.segmentation.stack_settings import StackSettings
from napari_spines.training.store import model_record

#: "mode" choice → ``mode`` of `segment_image` (None: from the voxel size).
MODES = {"auto": None, "3d": "3d", "2d+z": "2d+z", "2d": "2d"}
MODE_TIP = (
    "3d: 3D fragments and merges; 2d+z: fragments per section, merged within and across "
    "sections; 2d: each section on its own. auto: 3d, 2d+z from z steps twice the pixel "
    "size, 2d from eight times (serial-section TEM); without a voxel size, the z step is "
    "estimated from how alike neighbouring sections are (the line below Segment says)"
)
THRESHOLD_TIP = (
    "Agglomeration threshold: higher merges more. Moving it relabels at once from the stored "
    "agglomeration and discards the proofreading edits (and their undo history)."
)
#: The slider relabels once it has rested this long, not at every step of a drag.
RELABEL_DELAY_MS = 120


class SegmentationWidget(Container):
    """Segment an EM stack with an affinity model; tune, score and proofread the labels."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.session: SegmentationSession | None = None
        self.source: Image | None = None
        self.labels_layer: Labels | None = None
        self.points_layer: Points | None = None
        self.affinities_layer: Image | None = None
        self._quiet = False  # setting the slider from code: do not relabel
        self._relabeller = LatestWorker(self._relabel_job, self._relabelled)
        self._relabel_timer = QTimer()
        self._relabel_timer.setSingleShot(True)
        self._relabel_timer.setInterval(RELABEL_DELAY_MS)
        self._relabel_timer.timeout.connect(self._relabeller.request)
        self._image = ComboBox(label="image", choices=lambda _w: image_layers(viewer))
        self._model = ComboBox(
            label="model", choices=lambda _w: model_names("affinities", first=DEFAULT_MODEL)
        )
        self._model_path = FileEdit(label="or package", mode="d", value="")
        self._device = ComboBox(label="device", choices=DEVICES)
        self._mode = ComboBox(label="mode", choices=tuple(MODES), tooltip=MODE_TIP)
        self._run = PushButton(text="Segment")
        self.settings_line = SettingsLine(self._settings_known)
        self._status = status_label("")
        self._threshold = FloatSlider(
            label="threshold", min=0.0, max=1.0, step=0.01, value=0.5, tooltip=THRESHOLD_TIP
        )
        self.ground_truth = GroundTruthPanel(
            viewer, lambda: self._image.value, lambda: self.labels_layer
        )
        self.proofreading = ProofreadingPanel(
            viewer, self._say, lambda: self.relabel_busy, self.ground_truth.update
        )
        # what is used after a run scrolls, so the widget docks beside others in any window
        self._review = Container(
            widgets=[self._threshold, self.ground_truth, self.proofreading], scrollable=True
        )
        self._review.native.layout().addStretch()  # keep the rows together at the top
        options = Container(layout="horizontal", widgets=[self._device, self._mode])
        options.margins = (0, 0, 0, 0)
        super().__init__(
            widgets=[
                *(self._image, self._model, self._model_path, options),
                *(self._run, self.settings_line.label, self._status),
            ]
        )
        self.task = TaskPanel()
        self.native.layout().insertWidget(6, self.task)
        self.native.layout().addWidget(self._review.root_native_widget)
        self._run.clicked.connect(self.run)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))
        self.task.failed.connect(lambda exc: setattr(self._status, "value", first_line(exc)))
        self.task.cancelled.connect(lambda: setattr(self._status, "value", "cancelled"))
        self._threshold.changed.connect(self._apply_threshold)
        for choice in (self._image, self._model, self._model_path, self._mode):
            choice.changed.connect(self._show_settings)
        self._image.changed.connect(self.ground_truth.reset_choices)
        follow_layers(viewer, self._image, self.ground_truth)
        self._show_settings()

    @property
    def segmentation(self) -> Any:
        """The `Segmentation` shown, or None before the first run."""
        return None if self.session is None else self.session.segmentation

    @property
    def proofreader(self) -> Any:
        """The `Proofreader` of the labels shown, or None."""
        return None if self.session is None else self.session.proofreader

    @property
    def metrics_busy(self) -> bool:
        """True while a score is being computed (or one is queued)."""
        return self.ground_truth.busy

    @property
    def index_busy(self) -> bool:
        """True while painted labels are being indexed."""
        return self.proofreading.index_busy

    def reset_choices(self, *_args: object) -> None:
        """Refresh every layer and model choice (napari calls this when layers change)."""
        super().reset_choices()
        self._review.reset_choices()

    def _show_settings(self, *_args: object) -> None:
        """Say which mode and threshold Segment will use, and what it assumed (`SettingsLine`)."""
        layer = self._image.value
        data = None if layer is None else layer.data[0] if layer.multiscale else layer.data
        self.settings_line.show(
            data,
            "" if layer is None else layer_axes(layer),
            chosen_model(self._model_path, self._model),
            None if layer is None else layer_voxel_size(layer).for_model(),
            MODES[self._mode.value],
        )

    def _settings_known(self, settings: StackSettings) -> None:
        if self.session is None:  # before the first run, its threshold goes on the slider
            self._set_slider(settings.threshold)

    def _chosen_package(self) -> Any:
        """The package of "or package" when it exists, else the chosen model; ValueError if none."""
        name = chosen_model(self._model_path, self._model)
        if not name:
            raise ValueError(NO_MODEL)
        return affinity_package(name)

    def _set_slider(self, value: float) -> None:
        self._quiet = True
        try:
            self._threshold.value = value
        finally:
            self._quiet = False

    # -- segmentation ----------------------------------------------------------------------
    def run(self) -> None:
        """Check the input, then segment in a worker; layers are made on the main thread."""
        layer = self._image.value
        if layer is None:
            self._say("Choose an image layer first.", error=True)
            return
        try:
            check_image(tuple(layer.data.shape), layer_axes(layer))
            package = self._chosen_package()
        except ValueError as exc:  # ModelError is a ValueError too
            self._say(f"{layer.name}: {first_line(exc)}", error=True)
            return
        job = partial(
            segment_for_layers,
            layer.data,
            layer_axes(layer),
            package,
            layer_voxel_size(layer).for_model(),
            MODES[self._mode.value],
            self._device.value,
            layer.name,
            placed_like(layer)["scale"],
        )
        shown = partial(self.show_segmentation, layer, model=model_record(package))
        if self.task.run(job, on_result=shown) is not None:
            self._run.enabled = False
            self._status.value = f"segmenting {layer.name} with {package.spec.name}…"

    def show_segmentation(self, image: Image, run: tuple, model: Any = None) -> Iterator[None]:
        """Add or update the affinities, labels and proofreading-points layers of ``image``.

        ``run``: the session and its labels, and the affinities' layer data when the worker
        prepared it (`segment_for_layers`). ``model``: the model's provenance
        (`model_record`), kept in the labels' metadata. New affinity layers start hidden: the
        labels are the result, and drawing fewer layers keeps the window responsive.

        Yields
        ------
        None
            After each layer, for `TaskPanel` to run one step per turn (`show_now`: at once).
        """
        session, relabelled, *prepared = run
        self.session, self.source = session, image
        placed = placed_like(image)
        if not prepared:  # labels made again from a session that is already shown
            prepared = [session.affinity_layers(image.name, placed["scale"])]
        for data, meta, kind in prepared[0]:
            if meta.get("rgb"):
                meta["name"] = f"{image.name} affinities"
            new = {} if meta.get("name") in self._viewer.layers else {"visible": False}
            layer = put_layer(self._viewer, kind, data, {**meta, **placed, **new})
            if meta.get("rgb"):
                self.affinities_layer = layer
            yield
        self._relabel_timer.stop()
        self._relabeller.discard()  # a relabel of the previous run still on its way is void
        self._set_slider(relabelled.threshold)
        known = layer_voxel_size(image).known  # the writer warns when it writes an assumed size
        metadata = {"axes": "ZYX", "voxel_size_known": known}
        meta = {"name": f"{image.name} segmentation", "metadata": metadata, **placed}
        self.labels_layer = put_layer(self._viewer, "labels", relabelled.proofreader.labels, meta)
        self.labels_layer.metadata["model"] = dict(model or {})
        yield
        self.points_layer = click_points(self._viewer, f"{image.name} proofreading points", placed)
        yield
        self.proofreading.attach(session, image, self.labels_layer, self.points_layer)
        self.ground_truth.reset_choices()
        self._use_relabelled(relabelled)
        yield
        self._viewer.layers.selection.active = self.points_layer
        self.points_layer.mode = "add"
        show_info(f"{self._status.value}; click points and use ⇧M / ⇧S / ⇧D / ⇧F / ⇧N.")

    @property
    def relabel_busy(self) -> bool:
        """True from a slider move until its labels are shown."""
        return self._relabel_timer.isActive() or self._relabeller.busy

    def _apply_threshold(self, *_args: object) -> None:
        """Relabel at the slider's threshold once it rests; proofreading edits are discarded."""
        if self._quiet or self.session is None or not in_viewer(self._viewer, self.labels_layer):
            return
        self._status.value = f"relabelling at threshold {self._threshold.value:.2f}…"
        self._relabel_timer.start()  # restarts while the slider is dragged

    def _relabel_job(self) -> Callable[[], Relabelled] | None:
        session = self.session
        return None if session is None else partial(session.relabel, self._threshold.value)

    def _relabelled(self, result: Relabelled) -> None:
        if not in_viewer(self._viewer, self.labels_layer):
            return  # the layer was removed meanwhile
        assert self.labels_layer is not None
        self.labels_layer.data = result.proofreader.labels
        self._use_relabelled(result)

    def _use_relabelled(self, result: Relabelled) -> None:
        """Proofread the Labels layer's array in place with ``result``'s index."""
        assert self.session is not None and self.labels_layer is not None
        self.session.adopt(result, self.labels_layer.data)
        self.proofreading.index_stale = False
        self.proofreading.start_journal(result.threshold)
        self._status.value = self.session.summary(result.threshold)
        self.ground_truth.update()

    def _say(self, message: str, error: bool = False) -> None:
        """Show ``message`` in the widget; errors also as a napari notification."""
        self._status.value = message
        if error:
            show_error(message)
