"""Volumes to napari layer-data tuples (plain data and dicts, no napari import)."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_spines.io.volume import Volume, layer_scale

LayerData = tuple[Any, dict[str, Any], str]

#: Points are drawn this many µm across.
POINT_SIZE_UM = 1.5


def spine_points_style(voxel_size_um: tuple[float, ...]) -> dict[str, Any]:
    """How spine Points layers look: open yellow rings `POINT_SIZE_UM` across in the plane.

    Parameters
    ----------
    voxel_size_um
        Voxel size of the stack in µm; the finer of the last two (``y, x``) sets the size.

    Returns
    -------
    dict
        ``size`` (in voxels), ``face_color`` and ``border_color``: keyword arguments of a
        napari Points layer.

    Examples
    --------
    >>> spine_points_style((1.0, 0.25, 0.5))["size"]  # 1.5 µm at 0.25 µm per voxel
    6.0
    """
    return {
        "size": POINT_SIZE_UM / min(voxel_size_um[-2:]),
        "face_color": "transparent",
        "border_color": "yellow",
    }


_AXIS_LABELS = {"T": "t", "Z": "z", "Y": "y", "X": "x"}


def placement(axes: str, voxel_size_um: tuple[float, ...]) -> dict[str, tuple]:
    """Layer ``scale``, ``units`` and ``axis_labels`` for ``axes`` (from ``TZYX``).

    Spatial axes get the voxel size in µm; time gets 1 and no physical unit.

    Parameters
    ----------
    axes
        Axis letters from ``TZYX`` (no ``C``), e.g. ``"TZYX"``.
    voxel_size_um
        Voxel size in µm of the spatial axes among ``axes``, in their order.

    Returns
    -------
    dict
        ``scale``, ``units`` and ``axis_labels``, one entry per axis: keyword arguments of a
        napari layer.

    Examples
    --------
    >>> placement("TYX", (0.2, 0.2))["scale"]
    (1.0, 0.2, 0.2)
    >>> placement("TYX", (0.2, 0.2))["units"]
    ('pixel', 'micrometer', 'micrometer')
    """
    return {
        "scale": layer_scale(axes, voxel_size_um),
        "units": tuple("pixel" if a == "T" else "micrometer" for a in axes),
        "axis_labels": tuple(_AXIS_LABELS[a] for a in axes),
    }


def volume_to_layer_data(volume: Volume) -> list[LayerData]:
    """One layer per channel (a ``C`` axis is split), scaled to µm, time kept as a dimension.

    Parameters
    ----------
    volume
        An image or labels volume, e.g. from `~napari_spines.io.read.read_volumes`.

    Returns
    -------
    list of LayerData
        ``(data, meta, kind)`` tuples for napari. Channels are named ``"<name> [ch<i>]"``
        unless the volume has channel names; ``meta["metadata"]`` carries the axes and the
        voxel size.
    """
    axes_no_c = volume.axes.replace("C", "")
    meta: dict[str, Any] = {
        **placement(axes_no_c, volume.voxel_size_um),
        "metadata": {
            "axes": axes_no_c,
            "voxel_size_known": volume.voxel_size_known,
        },
    }
    if volume.multiscale:
        meta["multiscale"] = True
    if "C" not in volume.axes:
        layer_meta = {**meta, "name": volume.name}
        if volume.kind == "image" and volume.lazy:
            layer_meta["contrast_limits"] = _contrast_limits(volume.levels[-1])
        return [(volume.data, layer_meta, volume.kind)]
    c = volume.axes.index("C")
    n_channels = volume.shape[c]
    names = volume.channel_names or tuple(f"{volume.name} [ch{i}]" for i in range(n_channels))
    layers = []
    for i, name in enumerate(names):
        index = (slice(None),) * c + (i,)
        levels = [level[index] for level in volume.levels]
        data = levels if volume.multiscale else levels[0]
        layer_meta = {**meta, "name": name, "blending": "additive"}
        if volume.kind == "image":
            level = data[-1] if volume.multiscale else data
            layer_meta["contrast_limits"] = _contrast_limits(level)
        layers.append((data, layer_meta, volume.kind))
    return layers


def _contrast_limits(data: Any) -> tuple[float, float]:
    """0.1–99.9 percentile of the middle plane: cheap for lazy data, good for display."""
    index = tuple(n // 2 for n in data.shape[:-2])
    plane = data[index]
    plane = np.asarray(plane.compute() if hasattr(plane, "compute") else plane, dtype=float)
    plane = plane[np.isfinite(plane)]
    if plane.size == 0:
        return (0.0, 1.0)
    low, high = np.percentile(plane, [0.1, 99.9])
    return (float(low), float(high if high > low else low + 1))


def prediction_layer_data(
    result: np.ndarray, outputs: Any, name: str, scale: tuple[float, ...]
) -> list[LayerData]:
    """Image layers for a model's ``(C_out, ...)`` output: one per channel, affinities as RGB.

    An output with nearest-neighbour ``offsets`` along z, y and x becomes one RGB layer with
    x in red, y in green and z in blue; any other channel becomes a grey-scale layer.

    Parameters
    ----------
    result
        The model's outputs, float32 ``(C_out, ...)``: the channels of ``outputs`` in order.
    outputs
        The spec's `~napari_spines.models.spec.OutputSpec` entries (name, channels, offsets).
    name
        First part of every layer name, e.g. the model's name.
    scale
        Layer scale of the axes after ``C_out``.

    Returns
    -------
    list of LayerData
        ``(data, meta, "image")`` tuples named ``"<name> <output>"``, with ``[i]`` added for
        each channel of a multi-channel grey-scale output.
    """
    layers: list[LayerData] = []
    first = 0
    for output in outputs:
        channels = result[first : first + output.channels]
        first += output.channels
        rgb_axes = _rgb_channels(output)
        if rgb_axes is not None:
            rgb = np.stack([np.clip(channels[i], 0, 1) for i in rgb_axes], axis=-1)
            layers.append(
                (
                    rgb,
                    {
                        "name": f"{name} {output.name}",
                        "scale": scale,
                        "rgb": True,
                        "contrast_limits": (0.0, 1.0),
                    },
                    "image",
                )
            )
            continue
        for i, channel in enumerate(channels):
            suffix = f"[{i}]" if output.channels > 1 else ""
            layers.append(
                (
                    channel,
                    {
                        "name": f"{name} {output.name}{suffix}",
                        "scale": scale,
                        "colormap": "magma",
                        "blending": "additive",
                    },
                    "image",
                )
            )
    return layers


def _rgb_channels(output: Any) -> tuple[int, int, int] | None:
    """Indices of the x, y and z nearest-neighbour affinity channels, or None."""
    offsets = getattr(output, "offsets", None)
    if not offsets:
        return None
    found: dict[int, int] = {}
    for i, offset in enumerate(offsets):
        nonzero = [axis for axis, d in enumerate(offset) if d != 0]
        if len(nonzero) == 1 and abs(offset[nonzero[0]]) == 1:
            found.setdefault(nonzero[0], i)
    return (found[2], found[1], found[0]) if len(found) == 3 else None


def tracks_layer_data(track_ids: np.ndarray, tzyx: np.ndarray) -> np.ndarray:
    """Napari Tracks data: rows ``track_id, t, z, y, x``, sorted by track, then time.

    Parameters
    ----------
    track_ids
        ``(N,)`` the track of each spine.
    tzyx
        ``(N, 4)`` each spine's session and position.

    Returns
    -------
    numpy.ndarray
        ``(N, 5)``.

    Examples
    --------
    >>> tracks_layer_data(np.array([2, 1]), np.array([[0, 1, 1, 1], [1, 2, 2, 2]])).tolist()
    [[1, 1, 2, 2, 2], [2, 0, 1, 1, 1]]
    """
    tracks = np.column_stack([track_ids, tzyx])
    return tracks[np.lexsort((tracks[:, 1], tracks[:, 0]))]
