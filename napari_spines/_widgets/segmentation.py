"""Dock widget: segment neurons in an EM stack, tune the threshold, score and proofread.

Keys on the segmentation and proofreading-points layers: Shift-M merge, Shift-S split,
Shift-D delete, Shift-F fill holes, Shift-N next segment, Shift-U undo, Shift-R redo. napari's
own Ctrl-Z / Ctrl-Shift-Z still undo and redo brush strokes on the segmentation layer.
The widget only gathers parameters and wires the core: `segment_image` runs in a worker,
`relabel` makes the labels at a new threshold and indexes them for proofreading (in a worker
too, so the slider never freezes napari on a large volume), `Proofreader` does the edits,
`score_segmentation` scores against ground truth (in a worker too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from app_model.types import KeyCode, KeyMod
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    Label,
    PushButton,
)
from napari.layers import Image, Labels, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer

from napari_spines._widgets._task import TaskPanel
from napari_spines._widgets._viewer import OptionalChoice, follow_layers, image_layers
from napari_spines._widgets.run_model import layer_axes
from napari_spines.errors import first_line
from napari_spines.io.labels_tiff import write_labels_tiff
from napari_spines.io.layers import prediction_layer_data
from napari_spines.models import ModelPackage, find_model, list_models
from napari_spines.segmentation.affinities import boundary_map
from napari_spines.segmentation.fragment_graph import FragmentGraph, build_fragment_graph
from napari_spines.segmentation.metrics import SegmentationScore, score_segmentation
from napari_spines.segmentation.pipeline import (
    DEFAULT_MODEL,
    Segmentation,
    check_affinity_model,
    check_image,
    segment_image,
)
from napari_spines.segmentation.proofreading import Edit, LabelIndex, Proofreader

logger = logging.getLogger(__name__)

#: Key → widget method, bound on the segmentation and the proofreading-points layers.
KEYS = {
    "Shift-M": "merge",
    "Shift-S": "split",
    "Shift-D": "delete",
    "Shift-F": "fill_holes",
    "Shift-N": "next_segment",
    "Shift-U": "undo",
    "Shift-R": "redo",
}
#: "mode" choice → ``mode`` of `segment_image` (None: from the voxel size).
MODES = {"auto": None, "3d": "3d", "2d+z": "2d+z", "2d": "2d"}
#: "next" order shown → order of `Proofreader.next_segment`.
ORDERS = {"largest": "largest", "smallest": "smallest", "least confident": "least_confident"}
NO_TRUTH = "no ground truth chosen"
THRESHOLD_TIP = (
    "Agglomeration threshold: higher merges more. Moving it relabels at once from "
    "the stored agglomeration and discards the proofreading edits (and their "
    "undo history)."
)
#: The slider relabels once it has rested this long, not at every step of a drag.
RELABEL_DELAY_MS = 120


@dataclass(frozen=True)
class Relabelled:
    """The labels at one threshold and the `Proofreader` that indexes them."""

    threshold: float
    proofreader: Proofreader


def relabel(
    segmentation: Segmentation,
    threshold: float,
    boundaries: np.ndarray | None,
    fragments: FragmentGraph | None = None,
) -> Relabelled:
    """Labels at ``threshold`` and their proofreading index; runs in a worker thread."""
    labels = segmentation.labels(threshold)
    return Relabelled(
        threshold,
        Proofreader(
            labels,
            boundaries=boundaries,
            confidence=segmentation.agglomeration.confidence(threshold),
            fragments=fragments,
        ),
    )


@dataclass(frozen=True)
class SegmentationRun:
    """What the worker hands back: model, segmentation, boundary map and first labels."""

    package: ModelPackage
    segmentation: Segmentation
    boundaries: np.ndarray
    fragments: FragmentGraph
    relabelled: Relabelled


def segmentation_job(
    data: Any,
    axes: str,
    model: ModelPackage,
    voxel_size_um: tuple[float, ...] | None,
    mode: str | None,
    device: str,
    progress: Any = None,
) -> SegmentationRun:
    """`segment_image`, the boundary map and fragment graph splits use, the first labels.

    Runs in the worker.
    """
    segmentation = segment_image(
        data, axes, model, voxel_size_um=voxel_size_um, mode=mode, device=device, progress=progress
    )
    boundaries = boundary_map(segmentation.affinities)
    # a second pass of the bar, with Cancel: a few seconds on 100 × 1024 × 1024
    fragments = build_fragment_graph(
        segmentation.agglomeration.fragments, boundaries, progress=progress
    )
    return SegmentationRun(
        model,
        segmentation,
        boundaries,
        fragments,
        relabel(segmentation, segmentation.threshold, boundaries, fragments),
    )


def score_or_message(truth: Any, labels: np.ndarray) -> SegmentationScore | str:
    """`score_segmentation`, or its error as one line; runs in a worker thread."""
    try:
        return score_segmentation(np.asarray(truth), labels)
    except Exception as exc:  # a message in the widget, never a traceback
        logger.exception("scoring the segmentation failed")
        return first_line(exc)


def format_score(score: SegmentationScore) -> str:
    """Two lines: adapted Rand error with precision and recall; VOI split and merge."""
    return (
        f"adapted Rand error {score.adapted_rand_error:.3f} "
        f"(precision {score.rand_precision:.3f}, recall {score.rand_recall:.3f})\n"
        f"VOI split {score.voi_split:.3f}, merge {score.voi_merge:.3f} bits"
    )


class SegmentationWidget(Container):
    """Segment an EM stack with an affinity model; tune, score and proofread the labels."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.segmentation: Segmentation | None = None
        self.proofreader: Proofreader | None = None
        self.source: Image | None = None
        self.labels_layer: Labels | None = None
        self.points_layer: Points | None = None
        self.affinities_layer: Image | None = None
        self._boundaries: np.ndarray | None = None
        self._fragments: FragmentGraph | None = None
        self._current: int | None = None  # the segment "next" went to
        self._index_stale = False  # the user painted: the proofreader must reindex
        self._index_worker: Any = None  # reindexing painted labels
        self._after_index: Callable[[], object] | None = None  # the request it holds up
        self._quiet = False  # setting the slider from code: do not relabel
        self._metrics_worker: Any = None
        self._metrics_pending = False
        self._metrics_request = 0
        self._relabel_worker: Any = None
        self._relabel_pending = False
        self._relabel_timer = QTimer()
        self._relabel_timer.setSingleShot(True)
        self._relabel_timer.setInterval(RELABEL_DELAY_MS)
        self._relabel_timer.timeout.connect(self._start_relabel)
        self._image = ComboBox(label="image", choices=self._image_choices)
        self._model = ComboBox(label="model", choices=self._model_choices)
        self._model_path = FileEdit(label="or package", mode="d", value="")
        self._device = ComboBox(label="device", choices=("auto", "cpu", "cuda", "mps"))
        self._mode = ComboBox(
            label="mode",
            choices=tuple(MODES),
            tooltip="3d: 3D fragments and merges; 2d+z: fragments per section, merged within "
            "and across sections; 2d: each section on its own. auto: 3d, 2d+z from z "
            "steps twice the pixel size, 2d from eight times (serial-section TEM)",
        )
        self._run = PushButton(text="Segment")
        self._status = Label(value="")
        self._threshold = FloatSlider(
            label="threshold", min=0.0, max=1.0, step=0.01, value=0.5, tooltip=THRESHOLD_TIP
        )
        self._truth = OptionalChoice(
            label="ground truth", choices=self._truth_choices, nullable=True
        )
        self._metrics = Label(value=NO_TRUTH)
        self._order = ComboBox(label="next", choices=tuple(ORDERS))
        self._edit_buttons = Container(
            layout="horizontal",
            labels=False,
            widgets=[
                PushButton(text="Merge (⇧M)"),
                PushButton(text="Split (⇧S)"),
                PushButton(text="Delete (⇧D)"),
                PushButton(text="Fill holes (⇧F)"),
            ],
        )
        self._history_buttons = Container(
            layout="horizontal",
            labels=False,
            widgets=[
                PushButton(text="Next (⇧N)"),
                PushButton(text="Undo (⇧U)"),
                PushButton(text="Redo (⇧R)"),
                PushButton(text="Relabel 1…N"),
            ],
        )
        self._save_path = FileEdit(
            label="labels", mode="w", filter="*.tif *.tiff", value="segmentation.tif"
        )
        self._save = PushButton(text="Save labels…")
        # what is used after a run scrolls, so the widget docks beside others in any window
        self._review = Container(
            widgets=[
                self._threshold,
                self._truth,
                self._metrics,
                self._order,
                self._edit_buttons,
                self._history_buttons,
                self._save_path,
                self._save,
            ],
            scrollable=True,
        )
        self._review.native.layout().addStretch()  # keep the rows together at the top
        options = Container(layout="horizontal", widgets=[self._device, self._mode])
        options.margins = (0, 0, 0, 0)
        super().__init__(
            widgets=[self._image, self._model, self._model_path, options, self._run, self._status]
        )
        self.task = TaskPanel()
        self.native.layout().insertWidget(5, self.task)
        self.native.layout().addWidget(self._review.root_native_widget)

        self._run.clicked.connect(self.run)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))
        self.task.failed.connect(lambda exc: setattr(self._status, "value", first_line(exc)))
        self.task.cancelled.connect(lambda: setattr(self._status, "value", "cancelled"))
        self._threshold.changed.connect(self._apply_threshold)
        self._model.changed.connect(self._use_model_threshold)
        self._image.changed.connect(self._truth.reset_choices)
        self._truth.changed.connect(self.update_metrics)
        actions = [
            self.merge,
            self.split,
            self.delete,
            self.fill_holes,
            self.next_segment,
            self.undo,
            self.redo,
            self.relabel_sequential,
        ]
        buttons = [*self._edit_buttons, *self._history_buttons]
        for button, action in zip(buttons, actions, strict=True):
            button.clicked.connect(action)
        self._save.clicked.connect(lambda: self.save(Path(str(self._save_path.value))))
        follow_layers(viewer, self._image, self._truth)
        self._use_model_threshold()

    # -- choices ---------------------------------------------------------------------------
    def reset_choices(self, *_args: object) -> None:
        """Refresh every layer and model choice (napari calls this when layers change)."""
        truth = self._truth.value
        super().reset_choices()
        self._review.reset_choices()
        if truth is not None and not _same(self._truth.value, truth):  # renamed: keep it
            kept = [c for c in self._truth.choices if c is not None and _same(c, truth)]
            if kept:
                self._truth.value = kept[0]

    def _image_choices(self, _widget: object = None) -> list[tuple[str, object]]:
        return image_layers(self._viewer)

    def _model_choices(self, _widget: object = None) -> list[str]:
        names = [p.spec.name for p in list_models() if p.spec.task == "affinities"]
        return sorted(dict.fromkeys(names), key=lambda n: n != DEFAULT_MODEL)

    def _truth_choices(self, _widget: object = None) -> list[tuple[str, object]]:
        """Labels layers shaped like the image (our own output excluded); "none" comes first."""
        image = self._image.value
        shape = None if image is None else tuple(image.data.shape)
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and not _same(layer, self.labels_layer)
            and (shape is None or tuple(layer.data.shape) == shape)
        ]

    def _use_model_threshold(self, *_args: object) -> None:
        """Before the first run, show the chosen model's threshold on the slider."""
        if self.segmentation is not None or not self._model.value:
            return
        try:
            threshold = find_model(self._model.value).spec.postprocessing.get("threshold")
        except ValueError:
            return
        if threshold is not None:
            self._set_slider(float(threshold))

    def _set_slider(self, value: float) -> None:
        self._quiet = True
        try:
            self._threshold.value = value
        finally:
            self._quiet = False

    # -- segmentation ----------------------------------------------------------------------
    def _chosen_package(self) -> ModelPackage:
        """The package of the path field, else of the model choice; ValueError if unusable."""
        path = str(self._model_path.value or "")
        if path not in ("", ".") and Path(path).exists():
            package = find_model(path)
        elif self._model.value:
            package = find_model(self._model.value)
        else:
            raise ValueError("no affinity model installed: choose a model package folder")
        check_affinity_model(package)
        return package

    def run(self) -> None:
        """Check the input, then segment in a worker; layers are made on the main thread."""
        layer = self._image.value
        if layer is None:
            self._say("Choose an image layer first.", error=True)
            return
        axes = layer_axes(layer)
        try:
            check_image(tuple(layer.data.shape), axes)
            package = self._chosen_package()
        except ValueError as exc:  # ModelError is a ValueError too
            self._say(f"{layer.name}: {first_line(exc)}", error=True)
            return
        voxel = (
            None
            if layer.metadata.get("voxel_size_known") is False
            else tuple(float(s) for s in layer.scale[-3:])
        )
        job = partial(
            segmentation_job,
            layer.data,
            axes,
            package,
            voxel,
            MODES[self._mode.value],
            self._device.value,
        )
        if self.task.run(job, on_result=partial(self.show_segmentation, layer)) is not None:
            self._run.enabled = False
            self._status.value = f"segmenting {layer.name} with {package.spec.name}…"

    def show_segmentation(self, image: Image, run: SegmentationRun) -> None:
        """Add or update the affinities, labels and proofreading-points layers of ``image``."""
        self.segmentation, self._boundaries, self.source = (run.segmentation, run.boundaries, image)
        self._fragments = run.fragments
        placed = {
            "scale": tuple(image.scale),
            "translate": tuple(image.translate),
            "units": tuple(image.units),
            "axis_labels": tuple(image.axis_labels),
        }
        for data, meta, kind in prediction_layer_data(
            run.segmentation.affinities, run.package.spec.outputs, image.name, placed["scale"]
        ):
            if meta.get("rgb"):
                meta["name"] = f"{image.name} affinities"
            layer = self._put_layer(kind, data, {**meta, **placed})
            if meta.get("rgb"):
                self.affinities_layer = layer
        self._relabel_timer.stop()
        self._relabel_pending = False  # a relabel of the previous run still on its way is void
        self._set_slider(run.relabelled.threshold)
        self.labels_layer = self._put_layer(
            "labels",
            run.relabelled.proofreader.labels,
            {"name": f"{image.name} segmentation", "metadata": {"axes": "ZYX"}, **placed},
        )
        self.labels_layer.events.paint.connect(self._on_paint)
        for key, which in (
            (KeyMod.CtrlCmd | KeyCode.KeyZ, "undo"),
            (KeyMod.CtrlCmd | KeyMod.Shift | KeyCode.KeyZ, "redo"),
        ):
            self.labels_layer.bind_key(key, partial(self._napari_history, which), overwrite=True)
        points = (
            self._viewer.layers[f"{image.name} proofreading points"]
            if (f"{image.name} proofreading points" in self._viewer.layers)
            else None
        )
        if not isinstance(points, Points):
            points = self._viewer.add_points(
                np.empty((0, 3)),
                ndim=3,
                name=f"{image.name} proofreading points",
                size=5,
                face_color="cyan",
                border_color="white",
                **placed,
            )
        self.points_layer = points
        for layer in (self.labels_layer, self.points_layer):
            for key, action in KEYS.items():
                layer.bind_key(key, lambda _layer, a=action: getattr(self, a)(), overwrite=True)
        self._truth.reset_choices()
        self._use_relabelled(run.relabelled)
        self._viewer.layers.selection.active = self.points_layer
        self.points_layer.mode = "add"
        show_info(f"{self._status.value}; click points and use ⇧M / ⇧S / ⇧D / ⇧F / ⇧N.")

    def _put_layer(self, kind: str, data: Any, meta: dict[str, Any]) -> Any:
        """Update the layer of that name and type in place, or (re)create it."""
        name = meta["name"]
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            if isinstance(layer, {"image": Image, "labels": Labels}[kind]) and getattr(
                layer, "rgb", False
            ) == bool(meta.get("rgb", False)):
                layer.data = data
                for key in ("scale", "translate", "units", "axis_labels"):
                    setattr(layer, key, meta[key])
                return layer
            self._viewer.layers.remove(layer)
        return self._viewer.add_layer(napari.layers.Layer.create(data, meta, kind))

    @property
    def relabel_busy(self) -> bool:
        """True from a slider move until its labels are shown."""
        return (
            self._relabel_timer.isActive()
            or self._relabel_worker is not None
            or self._relabel_pending
        )

    def _apply_threshold(self, *_args: object) -> None:
        """Relabel at the slider's threshold once it rests; proofreading edits are discarded."""
        if self._quiet or self.segmentation is None or not self._has_labels_layer():
            return
        self._status.value = f"relabelling at threshold {self._threshold.value:.2f}…"
        self._relabel_timer.start()  # restarts while the slider is dragged

    def _start_relabel(self) -> None:
        """`relabel` at the slider's value in a worker (the latest value wins)."""
        if self.segmentation is None:
            return
        if self._relabel_worker is not None:
            self._relabel_pending = True
            return
        self._relabel_worker = create_worker(
            relabel,
            self.segmentation,
            self._threshold.value,
            self._boundaries,
            self._fragments,
            _start_thread=False,
            _connect={"returned": partial(self._relabelled, self.segmentation)},
        )
        self._relabel_worker.start()

    def _relabelled(self, segmentation: Segmentation, result: Relabelled) -> None:
        self._relabel_worker = None
        if self._relabel_pending:  # the slider moved meanwhile: relabel at its new value
            self._relabel_pending = False
            self._start_relabel()
            return
        if segmentation is not self.segmentation or not self._has_labels_layer():
            return  # segmented again, or the layer was removed, meanwhile
        assert self.labels_layer is not None
        try:
            self.labels_layer.data = result.proofreader.labels
        except RuntimeError:  # the dock widget was closed while relabelling
            logger.debug("segmentation widget closed before its labels arrived")
            return
        self._use_relabelled(result)

    def _use_relabelled(self, result: Relabelled) -> None:
        """Proofread the Labels layer's array in place with ``result``'s index."""
        assert self.labels_layer is not None
        self.proofreader = result.proofreader
        if self.proofreader.labels is not self.labels_layer.data:  # napari copied the array
            self.proofreader = Proofreader(
                self.labels_layer.data,
                boundaries=self._boundaries,
                fragments=self._fragments_of(self.labels_layer.data),
                confidence=result.proofreader.confidence,
            )
        self._current = None
        self._index_stale = False
        n = len(self.proofreader.segment_ids())
        self._status.value = f"{n} segments at threshold {result.threshold:.2f}"
        self.update_metrics()

    def _fragments_of(self, labels: Any) -> FragmentGraph | None:
        """The segmentation's fragments, if ``labels`` could be made of them (same shape)."""
        if self._fragments is None or np.shape(labels) != self._fragments.fragments.shape:
            return None
        return self._fragments

    def _has_labels_layer(self) -> bool:
        return self._in_viewer(self.labels_layer)

    def _in_viewer(self, layer: Any) -> bool:
        return layer is not None and any(_same(layer, other) for other in self._viewer.layers)

    def _on_paint(self, *_args: object) -> None:
        self._index_stale = True

    def _napari_history(self, which: str, layer: Labels) -> None:
        """Undo or redo a brush stroke with napari's own history (Ctrl-Z, Ctrl-Shift-Z).

        It changes the labels without a paint event, so the proofreading index is marked out of
        date here, as after painting.
        """
        getattr(layer, which)()
        self._index_stale = True

    # -- ground truth ----------------------------------------------------------------------
    @property
    def metrics_busy(self) -> bool:
        """True while a score is being computed (or one is queued)."""
        return self._metrics_worker is not None or self._metrics_pending

    def update_metrics(self, *_args: object) -> None:
        """Score the labels against the chosen ground truth in a worker (latest wins)."""
        self._metrics_request += 1  # a score still on its way is now out of date
        truth = self._truth.value
        if truth is None:
            self._metrics.value = NO_TRUTH
            return
        if self.segmentation is None or not self._has_labels_layer():
            self._metrics.value = "segment the image first"
            return
        assert self.labels_layer is not None
        labels = self.labels_layer.data
        if tuple(truth.data.shape) != tuple(labels.shape):
            self._metrics.value = (
                f"ground truth {truth.name!r} has shape "
                f"{tuple(truth.data.shape)}, the segmentation "
                f"{tuple(labels.shape)}: they must match"
            )
            return
        if self._metrics_worker is not None:
            self._metrics_pending = True
            return
        self._metrics.value = "scoring…"
        # a snapshot: the proofreader edits the labels in place while the worker reads
        self._metrics_worker = create_worker(
            score_or_message,
            truth.data,
            np.array(labels, copy=True),
            _start_thread=False,
            _connect={"returned": partial(self._show_metrics, self._metrics_request)},
        )
        self._metrics_worker.start()

    def _show_metrics(self, request: int, score: SegmentationScore | str) -> None:
        self._metrics_worker = None
        if self._metrics_pending:  # the labels changed meanwhile: score them again
            self._metrics_pending = False
            self.update_metrics()
            return
        if request != self._metrics_request:  # e.g. the ground truth was unset meanwhile
            return
        try:
            self._metrics.value = score if isinstance(score, str) else format_score(score)
        except RuntimeError:  # the dock widget was closed while scoring
            logger.debug("segmentation widget closed before its score arrived")

    # -- proofreading ----------------------------------------------------------------------
    def _voxels_of_points(self) -> np.ndarray:
        """The proofreading points as voxel coordinates of the labels, ``(N, 3)`` floats."""
        if not self._in_viewer(self.points_layer):
            return np.empty((0, 3))
        assert self.labels_layer is not None
        points = np.asarray(self.points_layer.data, float)
        if len(points) == 0:
            return np.empty((0, 3))
        world = [self.points_layer.data_to_world(p) for p in points]
        voxels = np.asarray([self.labels_layer.world_to_data(w) for w in world], float)
        shape = np.asarray(self.labels_layer.data.shape)
        outside = ((np.round(voxels) < 0) | (np.round(voxels) >= shape)).any(axis=1)
        if outside.any():
            shown = ", ".join(f"{c:.0f}" for c in voxels[outside][0])
            raise ValueError(f"point ({shown}) is outside the segmentation")
        return voxels

    def _ids_at(self, voxels: np.ndarray) -> list[int]:
        """Segment ids under ``voxels``, in order, without repeats (0 kept)."""
        assert self.labels_layer is not None
        index = tuple(np.round(voxels).astype(int).T)
        return list(dict.fromkeys(int(i) for i in self.labels_layer.data[index]))

    def _target(self, voxels: np.ndarray) -> int:
        """The one segment under the points, else the selected label."""
        assert self.labels_layer is not None
        if len(voxels) == 0:
            return int(self.labels_layer.selected_label)
        ids = self._ids_at(voxels)
        if len(ids) != 1:
            raise ValueError(
                f"the points lie on segments {', '.join(map(str, ids))}: place them on one segment"
            )
        return ids[0]

    def _edit(
        self,
        operation: Callable[[Proofreader, np.ndarray], Edit | None],
        describe: Callable[[Edit], str],
    ) -> Edit | None:
        """Run one proofreading operation; refresh the layer, clear the points, rescore."""
        proofreader = self._proofreader(partial(self._edit, operation, describe))
        if proofreader is None:
            return None
        try:
            edit = operation(proofreader, self._voxels_of_points())
        except ValueError as exc:
            self._say(first_line(exc), error=True)
            return None
        if edit is None:
            return None
        self._after_edit()
        self._say(describe(edit))
        return edit

    @property
    def index_busy(self) -> bool:
        """True while painted labels are being indexed (an operation waits for it)."""
        return self._index_worker is not None

    def _proofreader(self, retry: Callable[[], object] | None = None) -> Proofreader | None:
        """The proofreader of the Labels layer, or None (with a message).

        After hand painting, the labels are indexed again in a worker, so napari does not
        freeze on a large volume; then ``retry`` (the request that asked) runs.
        """
        if self.proofreader is None or not self._has_labels_layer():
            self._say("Segment an image first.", error=True)
            return None
        if self.relabel_busy:
            self._say("Relabelling at the new threshold: try again in a moment.", error=True)
            return None
        if self.index_busy:
            self._after_index = retry  # the latest request runs when the index is ready
            return None
        assert self.labels_layer is not None
        if self.proofreader.labels is not self.labels_layer.data:  # the layer got new data
            try:
                self.proofreader = Proofreader(
                    self.labels_layer.data,
                    self._boundaries,
                    fragments=self._fragments_of(self.labels_layer.data),
                )
            except ValueError as exc:
                self._say(first_line(exc), error=True)
                return None
        elif self._index_stale:  # painted by hand since the last operation
            self._start_reindex(self.proofreader, retry)
            return None
        self._index_stale = False
        return self.proofreader

    def _start_reindex(self, proofreader: Proofreader, retry: Callable[[], object] | None) -> None:
        """Index the painted labels in a worker; painting on meanwhile marks them stale again."""
        self._index_stale = False
        self._after_index = retry
        self._say("indexing the painted labels…")
        self._index_worker = create_worker(
            proofreader.index_labels,
            _start_thread=False,
            _connect={
                "returned": partial(self._reindexed, proofreader),
                "errored": self._reindex_failed,
            },
        )
        self._index_worker.start()

    def _reindexed(self, proofreader: Proofreader, index: LabelIndex) -> None:
        self._index_worker = None
        retry, self._after_index = self._after_index, None
        if proofreader is not self.proofreader:  # relabelled or segmented again meanwhile
            return
        proofreader.reindex(index)
        self._say("painted labels indexed")
        if retry is not None:
            retry()

    def _reindex_failed(self, exc: Exception) -> None:
        self._index_worker = None
        self._after_index = None
        self._index_stale = True
        self._say(f"could not index the painted labels: {first_line(exc)}", error=True)

    def _after_edit(self) -> None:
        assert self.labels_layer is not None and self.proofreader is not None
        if self.proofreader.changed_region() is not None:
            # napari re-slices only the shown plane; its partial refresh is private API
            self.labels_layer.refresh()
        if self.points_layer is not None and len(self.points_layer.data):
            self.points_layer.data = np.empty((0, 3))
        self.update_metrics()

    def merge(self) -> Edit | None:
        """Merge the segments under the points (with the selected label if only one)."""

        def merge(proofreader: Proofreader, voxels: np.ndarray) -> Edit:
            assert self.labels_layer is not None
            ids = self._ids_at(voxels)
            if len(ids) < 2:
                ids = list(dict.fromkeys([int(self.labels_layer.selected_label), *ids]))
            edit = proofreader.merge(ids, coordinates=voxels)
            self.labels_layer.selected_label = edit.new_ids[0]
            return edit

        return self._edit(merge, lambda e: f"merged {_ids(e.ids)} into {e.new_ids[0]}")

    def split(self) -> Edit | None:
        """Split the segment holding the points; each point seeds one part."""

        def split(proofreader: Proofreader, voxels: np.ndarray) -> Edit:
            if len(voxels) < 2:
                raise ValueError("place at least two points inside the segment to split")
            return proofreader.split(self._target(voxels), voxels)

        return self._edit(split, lambda e: f"split {e.ids[0]} into {_ids([*e.ids, *e.new_ids])}")

    def delete(self) -> Edit | None:
        """Delete the segment under the point(s), else the selected label."""
        return self._edit(
            lambda p, v: p.delete(self._target(v), coordinates=v), lambda e: f"deleted {e.ids[0]}"
        )

    def fill_holes(self) -> Edit | None:
        """Fill the holes of the segment under the point(s), else of the selected label."""

        def fill(proofreader: Proofreader, voxels: np.ndarray) -> Edit | None:
            edit = proofreader.fill_holes(self._target(voxels), coordinates=voxels)
            if proofreader.changed_region() is None:  # not recorded: nothing to refresh
                self._say(f"segment {edit.ids[0]} has no holes")
                return None
            return edit

        return self._edit(fill, lambda e: f"filled the holes of {e.ids[0]}")

    def relabel_sequential(self) -> Edit | None:
        """Renumber the segments 1…N (visits the whole volume)."""

        def relabel(proofreader: Proofreader, _voxels: np.ndarray) -> Edit:
            self._current = None
            return proofreader.relabel_sequential()

        return self._edit(
            relabel,
            lambda e: f"renumbered {len(e.ids)} segments" if e.ids else "the ids are already 1…N",
        )

    def undo(self) -> Edit | None:
        """Undo the last proofreading edit."""
        return self._history("undo")

    def redo(self) -> Edit | None:
        """Redo the last undone proofreading edit."""
        return self._history("redo")

    def _history(self, which: str) -> Edit | None:
        def step(proofreader: Proofreader, _voxels: np.ndarray) -> Edit | None:
            edit = getattr(proofreader, which)()
            if edit is None:
                self._say(f"nothing to {which}")
            return edit

        return self._edit(
            step, lambda e: f"{which}: {e.operation.replace('_', ' ')} of {_ids(e.ids)}"
        )

    def next_segment(self) -> int | None:
        """Select the next segment in the chosen order and move the view to it."""
        proofreader = self._proofreader(self.next_segment)
        if proofreader is None:
            return None
        try:
            segment = proofreader.next_segment(ORDERS[self._order.value], after=self._current)
        except ValueError:  # the current segment is gone for good: start over
            segment = proofreader.next_segment(ORDERS[self._order.value])
        self._current = segment
        if segment is None:
            self._say("no more segments in this order; Next starts again from the first")
            return None
        assert self.labels_layer is not None
        self.labels_layer.selected_label = segment
        self._focus(segment)
        confidence = proofreader.confidence.get(segment)
        self._status.value = f"segment {segment}: {proofreader.voxel_count(segment)} voxels" + (
            "" if confidence is None else f", confidence {confidence:.2f}"
        )
        return segment

    def _focus(self, segment: int) -> None:
        """Move the sliders to a voxel of ``segment`` near its centre and centre the camera."""
        assert self.proofreader is not None and self.labels_layer is not None
        box = self.proofreader.bounding_box(segment)
        if box is None:
            return
        inside = np.argwhere(self.labels_layer.data[box] == segment)
        middle = inside[np.argmin(((inside - inside.mean(axis=0)) ** 2).sum(axis=1))]
        voxel = middle + [s.start for s in box]
        world = np.asarray(self.labels_layer.data_to_world(voxel))
        first = self._viewer.dims.ndim - len(world)
        for axis in self._viewer.dims.not_displayed:
            if axis >= first:
                self._viewer.dims.set_point(axis, float(world[axis - first]))
        displayed = [axis - first for axis in self._viewer.dims.displayed if axis >= first]
        self._viewer.scene.camera.center = tuple(world[displayed])

    # -- export ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> tuple[Path, Path] | None:
        """Write the labels TIFF (image's voxel size) and ``<name>.edits.json`` beside it."""
        path = Path(path)
        proofreader = self._proofreader(partial(self.save, path))
        if proofreader is None or self.labels_layer is None:
            return None
        if path.suffix.lower() not in (".tif", ".tiff"):
            self._say(f"{path.name}: labels are saved as .tif or .tiff", error=True)
            return None
        image = self.source if self._in_viewer(self.source) else self.labels_layer
        voxel = tuple(float(s) for s in image.scale[-3:])
        try:
            tiff = write_labels_tiff(path, self.labels_layer.data, voxel)
            log = proofreader.save_log(path.with_name(f"{path.stem}.edits.json"))
        except (OSError, ValueError) as exc:
            self._say(f"could not save {path.name}: {first_line(exc)}", error=True)
            return None
        self._say(f"saved {tiff.name} and {log.name} ({len(proofreader.edits)} edits)")
        return tiff, log

    def _say(self, message: str, error: bool = False) -> None:
        """Show ``message`` in the widget; errors also as a napari notification."""
        self._status.value = message
        if error:
            show_error(message)


def _same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same layer (napari hands plugins proxies of layers)."""
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def _ids(ids: Sequence[int], most: int = 6) -> str:
    """``"3, 5, 8"``; long lists end in ``…``."""
    shown = ", ".join(str(int(i)) for i in ids[:most])
    return shown + (", …" if len(ids) > most else "")
