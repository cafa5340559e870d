"""What the Sessions widget reads from its layers: the sessions' stacks and their spines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Points, Shapes

from napari_spines._widgets._layers import layer_voxel_size, same_layer
from napari_spines.sessions.dynamics import dendrite_length_um
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


def in_session_voxels(layer: Points | Shapes, voxel_um: Sequence[float]) -> bool:
    """Whether to take ``layer``'s coordinates as the sessions' voxels rather than µm.

    A dendrites CSV opens at scale 1 (its columns are voxels): beside sessions of another voxel
    size, a layer of scale 1 is taken to be in their voxels.
    """
    spatial = np.asarray(layer.scale[-3:], dtype=float)
    return bool(np.allclose(spatial, 1.0) and not np.allclose(voxel_um, 1.0))


def _segments_um(
    layer: Points | Shapes, voxel_um: Sequence[float]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(t, polyline in µm)`` of each traced segment of ``layer`` (t is 0 for a 3D layer)."""
    scale = np.asarray(layer.scale, dtype=float)
    if in_session_voxels(layer, voxel_um):
        scale[-3:] = voxel_um
    if isinstance(layer, Shapes):
        lines = [
            np.asarray(d, dtype=float)
            for d, kind in zip(layer.data, layer.shape_type, strict=True)
            if kind in ("path", "line")
        ]
        if not lines:
            raise ValueError(f"{layer.name} has no path: trace the dendrites with the path tool")
    else:
        if "segment_id" not in layer.features:
            raise ValueError(
                f"{layer.name}: points of traced dendrites need a segment_id feature (open a "
                "dendrites CSV with segment_id, z, y, x), or trace paths in a Shapes layer"
            )
        data = np.asarray(layer.data, dtype=float)
        segment = layer.features["segment_id"].to_numpy()
        lines = [data[segment == s] for s in dict.fromkeys(segment.tolist())]
    if layer.ndim == 4:
        return [(line[:, 0], line[:, 1:] * scale[1:]) for line in lines]
    return [(np.zeros(len(line)), line * scale) for line in lines]


def gather_dendrite_lengths(
    layers: Sequence[Points | Shapes], n_sessions: int, voxel_um: Sequence[float]
) -> list[float | None] | None:
    """Per session, the length in µm of the dendrites traced in ``layers``; None: no layers.

    Parameters
    ----------
    layers
        No layer, one 4D layer (``t`` first), or one 3D layer per session: Shapes with paths, or
        Points with a ``segment_id`` feature (a dendrites CSV), each segment's points in order.
    n_sessions
        The number of sessions.
    voxel_um
        The sessions' voxel size, for layers at scale 1 (`in_session_voxels`).

    Returns
    -------
    list or None
        A session without a trace gets None (no density).
    """
    if not layers:
        return None
    if len(layers) == 1 and layers[0].ndim == 4:
        per_session: list[list[np.ndarray]] = [[] for _ in range(n_sessions)]
        for t, line in _segments_um(layers[0], voxel_um):
            session = np.rint(t).astype(int)
            for s in np.unique(session):
                if not 0 <= s < n_sessions:
                    raise ValueError(
                        f"{layers[0].name} has a trace at t = {s}, but there are {n_sessions} "
                        f"sessions (t = 0 to {n_sessions - 1})"
                    )
                per_session[s].append(line[session == s])
    elif any(layer.ndim != 3 for layer in layers) or len(layers) != n_sessions:
        raise ValueError(
            f"{n_sessions} sessions need one 4D dendrites layer (t, z, y, x) or {n_sessions} "
            f"3D ones (one per session), got {len(layers)}"
        )
    else:
        per_session = [[line for _, line in _segments_um(layer, voxel_um)] for layer in layers]
    return [_length_um(lines) if lines else None for lines in per_session]


def _length_um(lines: Sequence[np.ndarray]) -> float:
    trace = np.concatenate([np.column_stack([np.full(len(p), k), p]) for k, p in enumerate(lines)])
    return dendrite_length_um(trace, (1.0, 1.0, 1.0))  # the lines are in µm already


def traced_layers(layers: Sequence[Any]) -> list[tuple[str, Points | Shapes]]:
    """(name, layer) of the layers that can hold traced dendrites, for the dendrites chooser.

    Shapes layers, and Points layers with a ``segment_id`` feature (a dendrites CSV).
    """
    return [
        (layer.name, layer)
        for layer in layers
        if isinstance(layer, Shapes)
        or (isinstance(layer, Points) and "segment_id" in layer.features)
    ]


def assumed_voxel_notes(layers: Sequence[Points | Shapes], voxel_um: Sequence[float]) -> list[str]:
    """One line for each dendrites layer whose coordinates are taken as the sessions' voxels."""
    return [
        f"{layer.name} has scale 1: its coordinates are taken as the sessions' voxels "
        f"({tuple(voxel_um)} µm); set its scale if they are µm"
        for layer in layers
        if in_session_voxels(layer, voxel_um)
    ]


@dataclass(frozen=True)
class Proposal:
    """What "Propose next session" needs: both stacks, the voxel size, the previous spines."""

    stack: Any
    voxel_um: tuple[float, float, float]
    previous_stack: Any
    previous_um: np.ndarray
    previous_ids: np.ndarray | None


def gather_proposal(
    previous: Image | None, spines: Points | None, following: Image | None
) -> Proposal:
    """The previous session's image and spines and the next image; a one-line `ValueError` if bad.

    Parameters
    ----------
    previous, spines, following
        The chosen layers: the previous session's image, its corrected spines (3D), the next
        session's image.

    Returns
    -------
    Proposal
    """
    if previous is None or spines is None or following is None:
        raise ValueError(
            "Choose the previous session's image and its corrected spines, and the next "
            "session's image."
        )
    if same_layer(previous, following):
        raise ValueError("Choose two different images: the previous and the next session.")
    if spines.ndim != 3:
        raise ValueError(f"{spines.name} is not 3D: choose the previous session's spines (z, y, x)")
    voxel = tuple(float(v) for v in layer_voxel_size(following).um)
    check_sessions(
        [np.shape(stack_of(previous)), np.shape(stack_of(following))],
        [layer_voxel_size(previous).um, voxel],
    )
    previous_um = world_um(spines) - np.asarray(previous.translate, float)
    return Proposal(
        stack_of(following), voxel, stack_of(previous), previous_um, track_ids_of(spines)
    )  # type: ignore[arg-type]
