"""Restore dock widget: denoise or super-resolve an image layer with a restoration model."""

from __future__ import annotations

from functools import partial

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from napari_spines._widgets._choices import (
    DEVICES,
    chosen_model,
    fit_model_to_image,
    follow_layers,
    model_names,
)
from napari_spines._widgets._layers import (
    image_layers,
    layer_axes,
    layer_voxel_size,
    placed_like,
    put_layer,
)
from napari_spines._widgets._task import TaskPanel
from napari_spines.restoration.restore import (
    FALLBACK_MODEL,
    Restored,
    output_placement,
    restore,
)

TASK = "restoration"


class RestorationWidget(Container):
    """Pick an image layer and a restoration model; Restore adds the restored layer over it."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._image = ComboBox(label="image", choices=lambda _w: image_layers(viewer))
        self._model = ComboBox(label="model", choices=lambda _w: self._model_choices())
        self._model_path = FileEdit(label="or package", mode="d", value="")
        self._device = ComboBox(label="device", choices=DEVICES)
        self._run = PushButton(text="Restore")
        super().__init__(
            widgets=[self._image, self._model, self._model_path, self._device, self._run]
        )
        self.task = TaskPanel()
        self.native.layout().addWidget(self.task)
        self._run.clicked.connect(self.run)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))
        follow_layers(viewer, self._image)
        fit_model_to_image(viewer, self._image, self._model, self._model_choices)

    def _model_choices(self) -> list[str]:
        """The restoration models; those made for the image's voxel size first."""
        layer = self._image.value
        voxel = layer_voxel_size(layer) if layer is not None else None
        if voxel is None or not voxel.known:
            return model_names(TASK, first=FALLBACK_MODEL)
        return model_names(TASK, voxel_size_um=voxel.um)

    def run(self) -> None:
        """Restore in a worker; the layer is added on the main thread when it returns."""
        layer = self._image.value
        model = chosen_model(self._model_path, self._model)
        if layer is None or not model:
            show_error("Choose an image layer and a restoration model first.")
            return
        axes = layer_axes(layer)
        if "C" in axes:
            show_error(f"{layer.name}: restoration takes one channel; this layer is {axes}.")
            return
        voxel = layer_voxel_size(layer)
        if not voxel.known:
            show_warning(
                f"{layer.name}: voxel size unknown; assuming the model's (set it in the "
                "Voxel size widget)."
            )
        job = partial(
            restore, layer.data, axes, model, voxel.for_model(), device=self._device.value
        )
        if self.task.run(job, on_result=partial(self._add_layer, layer)) is not None:
            self._run.enabled = False

    def _add_layer(self, layer: napari.layers.Image, restored: Restored) -> None:
        placed = placed_like(layer)
        placed["scale"], placed["translate"] = output_placement(
            placed["scale"], placed["translate"], restored.upscale
        )
        meta = {
            **placed,
            "name": f"{layer.name} restored",
            "colormap": layer.colormap.name,
            "metadata": {
                "restored_by": restored.model,
                "voxel_size_known": layer_voxel_size(layer).known,
            },
        }
        put_layer(self._viewer, "image", restored.image, meta)
        show_info(
            f"{layer.name}: restored by {restored.model}, voxel "
            f"{' × '.join(f'{v:g}' for v in restored.voxel_size_um)} µm"
        )
