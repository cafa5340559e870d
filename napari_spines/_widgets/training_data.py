"""Dock widget: keep corrections as training data, see what the store holds, open an entry.

*Save corrections* takes reviewed spines (a Points layer with a ``status`` feature, as the
Spine detection widget makes) or proofread labels (a Labels layer), the image they belong to,
optionally a region (the box of a Shapes layer's first shape) and, for spines, traced
dendrites; `napari_spines.training.store.add_spines` / `add_labels` write the entry in a
worker, and the stack's autosave journal is then retired (`napari_spines.training.journal`).
Spine edits an earlier session left unsaved can be restored here as a Points layer, for a stack
whose detections are no longer shown. Coordinates are converted between layers, and boxes made
from shapes, by `napari_spines.training.regions`.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    TextEdit,
)
from napari.layers import Image, Labels, Layer, Points, Shapes
from napari.utils.notifications import show_error, show_info, show_warning

from napari_spines._widgets._choices import OptionalChoice, follow_layers
from napari_spines._widgets._journal import RestoreButton, journal_of, put_spines, stack_shape
from napari_spines._widgets._layers import image_layers, layer_voxel_size, layers_of
from napari_spines._widgets._task import LatestWorker, TaskPanel
from napari_spines.settings import TRAINING_STORE, save_setting, training_store
from napari_spines.training import journal, regions
from napari_spines.training.store import Entry, StoreContents, add_labels, add_spines, load_store


def save_entry(task: str, store: Path, progress: Any = None, **kwargs: Any) -> Entry:
    """Write one entry (in the worker: it crops the image and writes TIFFs)."""
    return (add_spines if task == "spines" else add_labels)(store, **kwargs)


class TrainingDataWidget(Container):
    """Save reviewed spines or proofread labels to the training store; list and open entries."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.contents = StoreContents()
        self._store = FileEdit(label="store", mode="d", value=str(training_store()))
        self._corrections = ComboBox(
            label="corrections",
            choices=layers_of(viewer, Points, Labels),
            tooltip="reviewed spines (Points with statuses) or proofread labels",
        )
        self._image = ComboBox(label="image", choices=lambda _w: image_layers(viewer))
        self._region = OptionalChoice(
            label="region",
            choices=layers_of(viewer, Shapes),
            nullable=True,
            tooltip="the box of the first shape (a 2D one spans every plane); none: the whole "
            "stack, or for spines the dendrites and some context",
        )
        self._dendrites = OptionalChoice(
            label="dendrites",
            choices=layers_of(viewer, Points, Shapes),
            nullable=True,
            tooltip="traced centre lines (points or paths); none: near the model's own shaft",
        )
        self._within = FloatSpinBox(label="within µm", value=4.0, min=0.1, max=100.0, step=0.5)
        self._save = PushButton(text="Save corrections")
        self.restore_button = RestoreButton()
        self._contents = TextEdit(label="the store holds", value="")
        self._contents.native.setReadOnly(True)
        self._refresh = PushButton(text="Refresh")
        self._entry = ComboBox(label="entry", choices=self._entry_choices)
        self._open = PushButton(text="Open entry")
        super().__init__(
            widgets=[
                self._store,
                Label(value="Save corrections"),
                *(self._corrections, self._image, self._region, self._dendrites, self._within),
                *(self._save, self.restore_button),
                Label(value="What the store holds"),
                *(self._contents, self._refresh, self._entry, self._open),
            ]
        )
        self.task = TaskPanel()
        self.native.layout().insertWidget(8, self.task)
        self._lister = LatestWorker(self._list_job, self._listed)
        self._store.changed.connect(self._store_changed)
        self._save.clicked.connect(self.save)
        self.task.finished.connect(lambda: setattr(self._save, "enabled", True))
        self.restore_button.clicked.connect(self.restore)
        self._image.changed.connect(self._offer_restore)
        self._refresh.clicked.connect(self.refresh)
        self._open.clicked.connect(self.open_entry)
        follow_layers(viewer, self._corrections, self._image, self._region, self._dendrites)
        self._offer_restore()
        self.refresh()

    def _entry_choices(self, _widget: object = None) -> list[tuple[str, Entry]]:
        return [(entry.id, entry) for entry in reversed(self.contents.entries)]

    @property
    def store(self) -> Path:
        """The store folder chosen."""
        return Path(str(self._store.value)).expanduser()

    @property
    def busy(self) -> bool:
        """True while saving or listing."""
        return self.task.busy or self._lister.busy

    def _store_changed(self, *_args: object) -> None:
        save_setting(TRAINING_STORE, str(self.store))  # remembered; journals go there too
        self._offer_restore()
        self.refresh()

    # -- saving ----------------------------------------------------------------------------
    def save(self) -> Any:
        """Check the choices, then write the entry in a worker; None (and a message) if bad."""
        try:
            task, kwargs = self._entry_arguments()
            self.store.mkdir(parents=True, exist_ok=True)
            if not os.access(self.store, os.W_OK):
                raise PermissionError
        except ValueError as exc:
            show_error(str(exc))
            return None
        except OSError:
            show_error(f"Cannot write to the store folder {self.store}: choose another one.")
            return None
        image = self._image.value
        job = partial(save_entry, task, self.store, **kwargs)
        worker = self.task.run(job, on_result=partial(self._saved, image, task))
        if worker is not None:
            self._save.enabled = False
        return worker

    def _entry_arguments(self) -> tuple[str, dict[str, Any]]:
        """The task and the keyword arguments of `add_spines` / `add_labels` (main thread)."""
        layer, image = self._corrections.value, self._image.value
        if layer is None:
            raise ValueError("Choose the corrections to save: a spines (Points) or Labels layer.")
        if image is None:
            raise ValueError("Choose the image layer the corrections belong to.")
        shape = stack_shape(image)
        if len(shape) != 3:
            raise ValueError(f"{image.name} is not a Z × Y × X stack (shape {shape})")
        task = "spines" if isinstance(layer, Points) else "labels"
        data = image.data[0] if image.multiscale else image.data
        kwargs: dict[str, Any] = {
            "image": data,
            "voxel_size_um": layer_voxel_size(image).um,
            "box": None if self._region.value is None else self._box(self._region.value, image),
            "source": image.source.path,
            "model": layer.metadata.get("model") or None,
        }
        if task == "labels":
            if tuple(layer.data.shape) != shape:
                raise ValueError(
                    f"{layer.name} {tuple(layer.data.shape)} and {image.name} {shape} differ "
                    "in shape: choose the image the labels were made from"
                )
            edits = list(layer.metadata.get("edits") or [])
            painted = int(layer.metadata.get("painted", 0))
            kwargs.update(
                labels=layer.data.copy(),  # painting may go on while the worker writes
                edit_log=json.dumps({"edits": edits}, indent=1) + "\n" if edits else None,
                counts=regions.edit_counts(edits, painted),
            )
            return task, kwargs
        if "status" not in layer.features:
            raise ValueError(
                f"{layer.name} has no review statuses: detect and review spines in the Spine "
                "detection widget first"
            )
        kwargs.update(
            coords=self._voxels(layer, image),
            statuses=layer.features["status"].astype(str).tolist(),
            dendrites=None if self._dendrites.value is None else self._traced(image),
            within_um=float(self._within.value),
        )
        return task, kwargs

    def _voxels(self, layer: Layer, image: Image, data: Any = None) -> Any:
        data = layer.data if data is None else data
        return regions.layer_to_voxels(
            data, layer.scale, layer.translate, image.scale, image.translate
        )

    def _box(self, shapes: Shapes, image: Image) -> tuple[int, ...]:
        if not len(shapes.data):
            raise ValueError(f"{shapes.name} has no shape: draw a rectangle around the region")
        vertices = self._voxels(shapes, image, shapes.data[0])
        return regions.box_of_vertices(vertices, stack_shape(image))

    def _traced(self, image: Image) -> Any:
        layer = self._dendrites.value
        paths = [layer.data] if isinstance(layer, Points) else list(layer.data)
        points = [regions.densify_path(self._voxels(layer, image, p)) for p in paths if len(p)]
        if not points or any(p.shape[1] != 3 for p in points):
            raise ValueError(f"{layer.name}: trace the dendrites in 3D (z, y, x), in a 3D layer")
        return np.vstack(points)

    def _saved(self, image: Image, task: str, entry: Entry) -> None:
        journal.clear(journal_of(image, task, self.store))  # saved: the journal is done
        show_info(f"saved entry {entry.id} ({regions.counts_text(entry.record['counts'])})")
        self._offer_restore()
        self.refresh()

    # -- restoring unsaved spine edits -------------------------------------------------------
    def _offer_restore(self, *_args: object) -> None:
        image = self._image.value
        keep = None if image is None else journal.Journal(journal_of(image, "spines", self.store))
        self.restore_button.offer(0 if keep is None else keep.unsaved)

    def restore(self) -> Points | None:
        """Add the unsaved spine edits of the chosen image as a Points layer."""
        image = self._image.value
        path = None if image is None else journal_of(image, "spines", self.store)
        state = None if path is None else journal.last_state(path)
        if image is None or state is None:
            show_error("No unsaved spine edits of this image to restore.")
            return None
        name = f"{state.get('layer', image.name + ' spines')} (restored)"
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        layer = self._viewer.add_points(
            journal.spine_arrays(state)[0], name=name, scale=image.scale, translate=image.translate
        )
        show_info(put_spines(layer, state))
        self._corrections.value = layer
        return layer

    # -- the store's contents ----------------------------------------------------------------
    def refresh(self) -> None:
        """List the store's entries again (read in a worker: every file's sha256 is checked)."""
        self._lister.request()

    def _list_job(self) -> Any:
        return partial(load_store, self.store)

    def _listed(self, contents: StoreContents) -> None:
        self.contents = contents
        lines = regions.store_overview(contents)
        if contents.problems:
            n = f"{len(contents.problems)} problem" + "s" * (len(contents.problems) > 1)
            lines += ["", f"{n}:", *contents.problems]
            show_warning(f"{n} in the store {self.store}: {contents.problems[0]}")
        self._contents.value = "\n".join(lines)
        self._entry.reset_choices()

    def open_entry(self) -> list[Layer]:
        """Open the chosen entry: its image, then its spines (by status) or labels."""
        entry = self._entry.value
        if entry is None:
            show_error("Choose an entry of the store first (Refresh lists them).")
            return []
        try:
            layer_data = regions.entry_layer_data(entry)
        except (OSError, ValueError) as exc:
            show_error(f"Cannot open entry {entry.id}: {exc}")
            return []
        return [self._viewer.add_layer(Layer.create(*data)) for data in layer_data]
