"""Small viewer helpers shared by the widgets and the demo."""

from __future__ import annotations

import numpy as np
from napari.layers import Points
from napari.viewer import Viewer


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
