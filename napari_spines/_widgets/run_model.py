"""Dock widget that runs any registered model on an image layer and shows its outputs."""

from __future__ import annotations

from functools import partial

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, PushButton
from napari.utils.notifications import show_error, show_warning

from napari_spines._widgets._choices import (
    DEVICES,
    chosen_model,
    fit_model_to_image,
    follow_layers,
    model_names,
)
from napari_spines._widgets._layers import image_layers, layer_axes, layer_voxel_size, placed_like
from napari_spines._widgets._task import TaskPanel
from napari_spines.io.layers import prediction_layer_data
from napari_spines.models import ModelRun, run_model

AUTO_TILE = "model default"


def parse_tile(text: str) -> tuple[int, int, int] | None:
    """``"32 128 128"`` → (32, 128, 128); empty or the default text → None."""
    text = text.strip()
    if not text or text == AUTO_TILE:
        return None
    message = f"tile {text!r}: give three positive integers, Z Y X (e.g. 32 128 128)"
    try:
        values = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise ValueError(message) from None
    if len(values) != 3 or min(values) < 1:
        raise ValueError(message)
    return values  # type: ignore[return-value]


class RunModelWidget(Container):
    """Pick an image layer and a model; Run adds the model's outputs as image layers."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._image = ComboBox(label="image", choices=lambda _w: image_layers(viewer))
        self._model = ComboBox(label="model", choices=lambda _w: self._model_choices())
        self._model_path = FileEdit(label="or package", mode="d", value="")
        self._runtime = ComboBox(label="runtime", choices=("auto", "onnx", "torch"))
        self._device = ComboBox(label="device", choices=DEVICES)
        self._tile = LineEdit(label="tile (z y x)", value=AUTO_TILE)
        self._run = PushButton(text="Run")
        super().__init__(
            widgets=[
                self._image,
                self._model,
                self._model_path,
                self._runtime,
                self._device,
                self._tile,
                self._run,
            ]
        )
        self.task = TaskPanel()
        self.native.layout().addWidget(self.task)
        self._run.clicked.connect(self.run)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))
        follow_layers(viewer, self._image)
        fit_model_to_image(viewer, self._image, self._model, self._model_choices)

    def _model_choices(self) -> list[str]:
        """Every model but restoration ones; those made for the image's voxel size first.

        Restoration models are left to the Restore widget, which maps their outputs back to grey
        levels and places an upscaled output over its input.
        """
        layer = self._image.value
        voxel = layer_voxel_size(layer) if layer is not None else None
        if voxel is None or not voxel.known:
            names = model_names(first="spine-2p")
        else:
            names = model_names(voxel_size_um=voxel.um)
        restoration = set(model_names("restoration"))
        return [name for name in names if name not in restoration]

    def run(self) -> None:
        """Start the model in a worker; layers are added on the main thread when it returns."""
        layer = self._image.value
        model = chosen_model(self._model_path, self._model)
        if layer is None or not model:
            show_error("Choose an image layer and a model first.")
            return
        try:
            tile = parse_tile(self._tile.value)
        except ValueError as exc:
            show_error(str(exc))
            return
        voxel = layer_voxel_size(layer)
        if not voxel.known:
            show_warning(
                f"{layer.name}: voxel size unknown; using the model's (set it in the "
                "Voxel size widget)."
            )
        job = partial(
            run_model,
            model,
            layer.data,
            layer_axes(layer),
            voxel.for_model(),
            runtime=self._runtime.value,
            device=self._device.value,
            tile=tile,
        )
        if self.task.run(job, on_result=partial(self._add_outputs, layer)) is not None:
            self._run.enabled = False

    def _add_outputs(self, layer: napari.layers.Image, run: ModelRun) -> None:
        placed = placed_like(layer)
        name = f"{layer.name} {run.spec.name}"
        for data, meta, kind in prediction_layer_data(
            run.outputs, run.spec.outputs, name, placed["scale"]
        ):
            self._viewer.add_layer(napari.layers.Layer.create(data, {**meta, **placed}, kind))
