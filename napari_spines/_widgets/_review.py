"""What the spine reviews share (Spine detection, and a proposed session in Sessions).

The keys on the reviewed layer, the spine under review on screen (its plane, the camera zoomed
to it, drawn larger, selected), the queue's statuses pushed into the layer, and hand edits of
the layer followed into its features.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from napari.layers import Points

from napari_spines._widgets._layers import focus, highlight_point, layer_voxel_size
from napari_spines.io.layers import spine_points_style
from napari_spines.spines.review import ReviewQueue, follow_edits, status_colours

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


def follow_hand_edits(
    layer: Points, event: Any, positions: np.ndarray, id_column: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Put a hand edit of ``layer`` into its features (`follow_edits`).

    A dragged spine becomes ``moved``; one placed by hand ``added``, with a new id in
    ``id_column`` and no score; a deleted one leaves the features with its row.

    Parameters
    ----------
    layer
        The reviewed Points layer, with features ``status``, ``score`` and ``id_column``.
    event
        The layer's ``events.data`` event.
    positions
        The layer's points before the edit.
    id_column
        The feature that numbers the spines (``id``, or ``track_id`` for a session).

    Returns
    -------
    tuple or None
        ``(the points now, the rows added)``; None for the events before an edit.
    """
    action = str(getattr(event, "action", "")).lower()
    if not action.endswith(("changed", "added", "removed")):
        return None  # the "-ing" events before a change
    features = layer.features
    data = np.asarray(layer.data)
    added = (getattr(event, "data_indices", ()) or ()) if action.endswith("added") else ()
    statuses, ids, scores = follow_edits(
        features["status"].to_numpy(dtype=object),
        features[id_column].to_numpy(),
        features["score"].to_numpy(dtype=float),
        positions if action.endswith("changed") else None,
        data,
        added,
    )
    features["status"], features[id_column], features["score"] = statuses, ids, scores
    return data.copy(), np.asarray(added, int) % max(len(data), 1)
