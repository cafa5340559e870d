"""Small viewer helpers shared by the widgets and the demo."""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox
from napari.layers import Image, Points
from napari.viewer import Viewer


class OptionalChoice(ComboBox):
    """A ComboBox whose empty choice reads "none" (and, being nullable, reports choosing it)."""

    null_string = "none"


def image_layers(viewer: Viewer) -> list[tuple[str, Image]]:
    """(name, layer) of the grey-scale image layers, for a layer ComboBox."""
    return [
        (layer.name, layer) for layer in viewer.layers if isinstance(layer, Image) and not layer.rgb
    ]


def follow_layers(viewer: Viewer, *combos: Any) -> None:
    """Refresh the choices of ``combos`` whenever a layer is added or removed (and now)."""
    for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
        for combo in combos:
            event.connect(lambda _e, c=combo: c.reset_choices())
    for combo in combos:
        combo.reset_choices()


def show_plane_of_points(viewer: Viewer, layer: Points) -> None:
    """Move the sliders to the plane holding the median of ``layer``'s points (in world units)."""
    if len(layer.data) == 0 or viewer.dims.ndisplay == 3:
        return
    world = np.asarray([layer.data_to_world(p) for p in layer.data])
    median = np.median(world, axis=0)
    first = viewer.dims.ndim - layer.ndim  # layer axes are the last ones of the viewer
    for axis in viewer.dims.not_displayed:
        if axis >= first:
            viewer.dims.set_point(axis, float(median[axis - first]))
