"""What the spine reviews share (Spine detection, and a proposed session in Sessions).

The keys on the reviewed layer, the spine under review on screen (its plane, the camera zoomed
to it, drawn larger, selected), and the queue's statuses pushed into the layer.
"""

from __future__ import annotations

from typing import Any

import napari
from napari.layers import Points

from napari_spines._widgets._layers import focus, highlight_point, layer_voxel_size
from napari_spines.io.layers import spine_points_style
from napari_spines.spines.review import ReviewQueue, status_colours

#: Key → reviewer method, bound on the reviewed layer.
KEYS = {"n": "next", "b": "previous", "a": "accept", "r": "reject", "u": "undo"}
#: The camera zooms in until about this many µm around the spine under review fill the view.
REVIEW_FIELD_UM = 12.0


def bind_review_keys(layer: Points, reviewer: Any) -> None:
    """Bind `KEYS` on ``layer`` to the methods of ``reviewer`` of the same names."""
    for key, action in KEYS.items():
        layer.bind_key(key, lambda _layer, a=action: getattr(reviewer, a)(), overwrite=True)


def show_under_review(viewer: napari.viewer.Viewer, layer: Points, index: int | None) -> None:
    """Show spine ``index`` of ``layer``: its plane, the camera on it, larger, selected."""
    if index is None:
        return
    focus(viewer, layer, layer.data[index], field_um=REVIEW_FIELD_UM)
    highlight_point(layer, index, spine_points_style(layer_voxel_size(layer).um)["size"])
    layer.selected_data = {index}


def show_statuses(layer: Points, queue: ReviewQueue) -> str:
    """Push the queue's statuses into ``layer`` (colours, which are shown); the count line."""
    statuses = queue.statuses
    layer.features["status"] = statuses
    layer.border_color = status_colours(statuses)
    layer.shown = queue.shown
    return queue.summary()
