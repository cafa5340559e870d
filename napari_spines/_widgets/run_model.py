"""Dock widget that runs any registered model on an image layer and shows its outputs."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, PushButton
from napari.utils.notifications import show_error, show_warning

from napari_spines._widgets._task import TaskPanel
from napari_spines._widgets._viewer import follow_layers, image_layers
from napari_spines.inference import predict_volume
from napari_spines.io.layers import prediction_layer_data
from napari_spines.models import find_model, list_models, load_model

AUTO_TILE = "model default"


def run_model_job(
    data: Any,
    axes: str,
    model: str,
    runtime: str,
    device: str,
    voxel_size_um: tuple[float, ...] | None,
    tile: tuple[int, int, int] | None,
    progress: Any = None,
) -> tuple[Any, np.ndarray]:
    """Load (cached) and run a model; runs in the worker thread, touches no layer."""
    package = find_model(model)
    loaded = load_model(package, runtime=runtime, device=device)
    result = predict_volume(
        data, axes, loaded, package.spec, voxel_size_um=voxel_size_um, tile=tile, progress=progress
    )
    return package.spec, result


def layer_axes(layer: napari.layers.Image) -> str:
    """Axes of a layer: from its metadata (our reader), else YX, ZYX or TZYX by dimension."""
    axes = layer.metadata.get("axes")
    if isinstance(axes, str) and len(axes) == layer.ndim:
        return axes
    return {2: "YX", 3: "ZYX", 4: "TZYX"}.get(layer.ndim, "")


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
        self._image = ComboBox(label="image", choices=self._image_choices)
        self._model = ComboBox(label="model", choices=self._model_choices)
        self._model_path = FileEdit(label="or package", mode="d", value="")
        self._runtime = ComboBox(label="runtime", choices=("auto", "onnx", "torch"))
        self._device = ComboBox(label="device", choices=("auto", "cpu", "cuda", "mps"))
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

    def _image_choices(self, _widget: object = None) -> list[tuple[str, object]]:
        return image_layers(self._viewer)

    def _model_choices(self, _widget: object = None) -> list[str]:
        return [p.spec.name for p in list_models()]

    def run(self) -> None:
        """Start the model in a worker; layers are added on the main thread when it returns."""
        layer = self._image.value
        path = str(self._model_path.value or "")
        model = path if path not in ("", ".") and Path(path).exists() else self._model.value
        if layer is None or not model:
            show_error("Choose an image layer and a model first.")
            return
        try:
            tile = parse_tile(self._tile.value)
        except ValueError as exc:
            show_error(str(exc))
            return
        axes = layer_axes(layer)
        n_spatial = sum(a in "ZYX" for a in axes)
        voxel: tuple[float, ...] | None = tuple(float(s) for s in layer.scale[-n_spatial:])
        if layer.metadata.get("voxel_size_known") is False:
            show_warning(
                f"{layer.name}: voxel size unknown; using the model's (set it in the "
                "Voxel size widget)."
            )
            voxel = None
        job = partial(
            run_model_job,
            layer.data,
            axes,
            model,
            self._runtime.value,
            self._device.value,
            voxel,
            tile,
        )
        if self.task.run(job, on_result=partial(self._add_outputs, layer)) is not None:
            self._run.enabled = False

    def _add_outputs(self, layer: napari.layers.Image, outcome: tuple[Any, np.ndarray]) -> None:
        spec, result = outcome
        for data, meta, layer_type in prediction_layer_data(
            result, spec.outputs, f"{layer.name} {spec.name}", tuple(layer.scale)
        ):
            meta.update(
                translate=tuple(layer.translate),
                units=tuple(layer.units),
                axis_labels=tuple(layer.axis_labels),
            )
            self._viewer.add_layer(napari.layers.Layer.create(data, meta, layer_type))
