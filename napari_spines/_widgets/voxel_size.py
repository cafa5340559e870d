"""Dock widget to see and set the voxel size (µm) of a layer, for files without metadata."""

from __future__ import annotations

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton

from napari_spines._widgets._choices import follow_layers
from napari_spines._widgets._layers import layer_voxel_size
from napari_spines._widgets._task import status_label


class VoxelSizeWidget(Container):
    """Show a layer's shape, axes and voxel size, and set its voxel size in µm."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._layer = ComboBox(label="layer", choices=self._layer_choices)
        self._summary = status_label("")
        self._sizes = [
            FloatSpinBox(label=f"{axis} (µm)", min=1e-4, max=1e4, step=0.0001, value=1.0)
            for axis in "zyx"
        ]
        self._same_shape = CheckBox(value=True, text="also layers of the same shape")
        self._apply = PushButton(text="Apply")
        super().__init__(
            widgets=[self._layer, self._summary, *self._sizes, self._same_shape, self._apply]
        )
        self._layer.changed.connect(self._show_layer)
        self._apply.clicked.connect(self.apply)
        follow_layers(viewer, self._layer)
        self._show_layer()

    def _layer_choices(self, _widget: object = None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in self._viewer.layers]

    def _show_layer(self, *_args: object) -> None:
        layer = self._layer.value
        if layer is None:
            self._summary.value = "no layer"
            return
        voxel = layer_voxel_size(layer)
        axes = layer.metadata.get("axes", "")
        self._summary.value = f"{type(layer).__name__} {axes} {tuple(layer.data.shape)}" + (
            "" if voxel.known else "\nvoxel size not in the file: set it"
        )
        for box, value in zip(self._sizes[-len(voxel.um) :], voxel.um, strict=True):
            box.value = float(value)
        self._sizes[0].enabled = layer.ndim >= 3

    def apply(self) -> None:
        """Set the chosen voxel size on the layer (and layers of the same shape)."""
        layer = self._layer.value
        if layer is None:
            return
        targets = [layer]
        if self._same_shape.value:
            targets += [
                other
                for other in self._viewer.layers
                if other is not layer
                and tuple(other.data.shape[-3:]) == tuple(layer.data.shape[-3:])
                and other.ndim == layer.ndim
            ]
        for target in targets:
            n_spatial = min(target.ndim, 3)
            voxel = tuple(box.value for box in self._sizes[-n_spatial:])
            target.scale = (*tuple(target.scale[:-n_spatial]), *voxel)
            target.metadata = {**target.metadata, "voxel_size_known": True}
        self._viewer.reset_view()
        self._show_layer()
