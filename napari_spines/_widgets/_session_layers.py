"""What the Sessions widget reads from its layers: the sessions' stacks and their spines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Points

from napari_spines._widgets._layers import layer_voxel_size
from napari_spines.sessions.track import check_sessions


@dataclass(frozen=True)
class Sessions:
    """The chosen sessions: their ``ZYX`` stacks, voxel size, and where they lie in the world."""

    stacks: list[Any]
    voxel_um: tuple[float, float, float]
    translates: list[np.ndarray]
    placement: dict[str, tuple]


def stack_of(layer: Image) -> Any:
    """The finest level of an image layer's data."""
    return layer.data[0] if layer.multiscale else layer.data


def world_um(points: Points) -> np.ndarray:
    """World coordinates of the spines of ``points`` that are not rejected, ``(N, ndim)``."""
    data = np.asarray(points.data, dtype=float)
    if "status" in points.features:
        data = data[points.features["status"].astype(str).to_numpy() != "rejected"]
    if not len(data):
        return np.zeros((0, points.ndim))
    return np.asarray([points.data_to_world(p) for p in data], dtype=float)


def gather_sessions(layers: Sequence[Image]) -> Sessions:
    """The sessions of one 4D image layer or several 3D ones; a one-line `ValueError` if bad.

    Parameters
    ----------
    layers
        The chosen image layers, in imaging order.

    Returns
    -------
    Sessions
    """
    if not layers:
        raise ValueError(
            "Choose the sessions: one image layer with a T axis, or two or more 3D image layers."
        )
    if any(layer.ndim == 4 for layer in layers):
        if len(layers) > 1:
            raise ValueError("Choose one 4D image (T, Z, Y, X) or several 3D images, not both.")
        layer = layers[0]
        data = stack_of(layer)
        stacks = [data[t] for t in range(data.shape[0])]
        voxels = [layer_voxel_size(layer).um] * len(stacks)
        translates = [np.asarray(layer.translate[-3:], float)] * len(stacks)
        time_origin = float(layer.translate[0])
    else:
        stacks = [stack_of(layer) for layer in layers]
        voxels = [layer_voxel_size(layer).um for layer in layers]
        translates = [np.asarray(layer.translate[-3:], float) for layer in layers]
        time_origin = 0.0
    check_sessions([np.shape(s) for s in stacks], voxels)
    voxel = tuple(float(v) for v in voxels[0])
    placement = {"scale": (1.0, *voxel), "translate": (time_origin, *translates[0].tolist())}
    return Sessions(stacks, voxel, translates, placement)  # type: ignore[arg-type]


def gather_points(layers: Sequence[Points], sessions: Sessions) -> list[np.ndarray] | None:
    """Per session, the spines of ``layers`` in µm in that session's stack; None: detect them.

    Parameters
    ----------
    layers
        No layer, one 4D Points layer (``t`` first), or one 3D Points layer per session.
    sessions
        The sessions they belong to.

    Returns
    -------
    list of numpy.ndarray or None
    """
    n = len(sessions.stacks)
    if not layers:
        return None
    if len(layers) == 1 and layers[0].ndim == 4:
        layer = layers[0]
        keep = np.ones(len(layer.data), bool)
        if "status" in layer.features:
            keep = layer.features["status"].astype(str).to_numpy() != "rejected"
        t = np.rint(np.asarray(layer.data, float)[keep, 0]).astype(int).reshape(-1)
        world = world_um(layer)
        if ((t < 0) | (t >= n)).any():
            raise ValueError(
                f"{layer.name} has spines at t = {int(t[(t < 0) | (t >= n)][0])}, "
                f"but there are {n} sessions (t = 0 to {n - 1})"
            )
        return [world[t == i, -3:] - sessions.translates[i] for i in range(n)]
    if any(layer.ndim != 3 for layer in layers):
        raise ValueError(
            "Choose one 4D points layer (t, z, y, x) or one 3D points layer per session."
        )
    if len(layers) != n:
        raise ValueError(
            f"{n} sessions need {n} points layers (one per session) or one 4D points layer, "
            f"got {len(layers)}"
        )
    return [world_um(layer)[:, -3:] - sessions.translates[i] for i, layer in enumerate(layers)]


def track_ids_of(layer: Points) -> np.ndarray | None:
    """The ``track_id`` feature of the spines kept (not rejected); unnumbered ones get new ids."""
    if "track_id" not in layer.features:
        return None
    ids = np.asarray(layer.features["track_id"].to_numpy(), dtype=float)
    if "status" in layer.features:
        ids = ids[layer.features["status"].astype(str).to_numpy() != "rejected"]
    ids = np.where(np.isfinite(ids), ids, 0).astype(int)
    missing = ids <= 0
    ids[missing] = ids.max(initial=0) + 1 + np.arange(int(missing.sum()))
    return ids
