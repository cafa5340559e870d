"""The layer adapter: what every widget needs to know of a napari layer, in one place.

Axes, voxel size (`~napari_spines.voxel_size.VoxelSize`), placing new layers like their image,
updating a layer in place, and moving the view to a point. A layer's voxel size is its
``scale``; ``metadata["voxel_size_known"]`` is False when the file did not give it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import napari
import numpy as np
from napari.layers import Image, Labels, Layer, Points

from napari_spines.voxel_size import VoxelSize

#: Border width of spine rings, relative to their size (the ring under review: twice this).
RING_WIDTH = 0.15
#: The layer attributes that place a layer in the world (copied from an image to its results).
PLACEMENT = ("scale", "translate", "units", "axis_labels")


def layer_axes(layer: Layer) -> str:
    """Axes of a layer: from its metadata (our reader), else YX, ZYX or TZYX by dimension."""
    axes = layer.metadata.get("axes")
    if isinstance(axes, str) and len(axes) == layer.ndim:
        return axes
    return {2: "YX", 3: "ZYX", 4: "TZYX"}.get(layer.ndim, "")


def layer_voxel_size(layer: Layer) -> VoxelSize:
    """The voxel size of a layer's spatial axes, and whether it is known."""
    return VoxelSize.of_layer(tuple(layer.scale), layer_axes(layer), layer.metadata)


def placed_like(layer: Layer) -> dict[str, tuple]:
    """``scale``, ``translate``, ``units`` and ``axis_labels`` of ``layer``, for a new layer."""
    return {key: tuple(getattr(layer, key)) for key in PLACEMENT}


def same_layer(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same layer (napari hands plugins proxies of layers)."""
    return getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def in_viewer(viewer: napari.viewer.Viewer, layer: Any) -> bool:
    """Whether ``layer`` is (still) one of ``viewer``'s layers."""
    return layer is not None and any(same_layer(layer, other) for other in viewer.layers)


def layers_of(viewer: napari.viewer.Viewer, *kinds: type) -> Callable[..., list]:
    """Choices for a layer ComboBox or Select: (name, layer) of ``viewer``'s layers of ``kinds``."""
    return lambda _w=None: [
        (layer.name, layer) for layer in viewer.layers if isinstance(layer, kinds)
    ]


def image_layers(viewer: napari.viewer.Viewer) -> list[tuple[str, Image]]:
    """(name, layer) of the grey-scale image layers, for a layer ComboBox."""
    return [
        (layer.name, layer) for layer in viewer.layers if isinstance(layer, Image) and not layer.rgb
    ]


def put_layer(viewer: napari.viewer.Viewer, kind: str, data: Any, meta: dict[str, Any]) -> Layer:
    """Update the layer named ``meta["name"]`` in place when it has the same kind, else add it.

    Updating keeps the user's display settings (colormap, opacity) of an earlier run.
    """
    name = meta["name"]
    if name in viewer.layers:
        layer = viewer.layers[name]
        same_kind = isinstance(layer, {"image": Image, "labels": Labels}.get(kind, ()))
        if same_kind and getattr(layer, "rgb", False) == bool(meta.get("rgb", False)):
            layer.data = data
            for key in PLACEMENT:
                if key in meta:
                    setattr(layer, key, meta[key])
            layer.metadata.update(meta.get("metadata", {}))
            return layer
        viewer.layers.remove(layer)
    return viewer.add_layer(Layer.create(data, meta, kind))


def click_points(viewer: napari.viewer.Viewer, name: str, placed: dict[str, Any]) -> Points:
    """The Points layer ``name`` for clicking on segments; added (empty, 3D) when missing.

    Parameters
    ----------
    viewer
        The viewer.
    name
        The layer's name.
    placed
        Scale and translate of the image it goes over (`placed_like`).

    Returns
    -------
    napari.layers.Points
    """
    layer = viewer.layers[name] if name in viewer.layers else None
    if isinstance(layer, Points):
        return layer
    return viewer.add_points(
        np.empty((0, 3)),
        ndim=3,
        name=name,
        size=5,
        face_color="cyan",
        border_color="white",
        **placed,
    )


def focus(
    viewer: napari.viewer.Viewer,
    layer: Layer,
    voxel: Sequence[float],
    field_um: float | None = None,
) -> None:
    """Move the sliders to the plane of ``voxel`` and centre the camera on it.

    ``voxel`` is in the data coordinates of ``layer``. With ``field_um``, the camera also zooms
    in until about ``field_um`` µm span the canvas' shorter side (it never zooms out, so a
    reviewer who zoomed in further keeps that).
    """
    world = np.asarray(layer.data_to_world(voxel))
    first = viewer.dims.ndim - len(world)  # layer axes are the last ones of the viewer
    for axis in viewer.dims.not_displayed:
        if axis >= first:
            viewer.dims.set_point(axis, float(world[axis - first]))
    displayed = [axis - first for axis in viewer.dims.displayed if axis >= first]
    viewer.scene.camera.center = tuple(world[displayed])
    if field_um is not None and viewer.dims.ndisplay == 2:
        # world units per µm: the layer's scale over its voxel size (1 when the scale is in µm)
        world_per_um = abs(float(layer.scale[-1])) / layer_voxel_size(layer).um[-1]
        zoom = min(viewer.canvas.size) / (field_um * world_per_um)
        if viewer.scene.camera.zoom < zoom:
            viewer.scene.camera.zoom = zoom


def highlight_point(layer: napari.layers.Points, index: int | None, size: float) -> None:
    """Draw point ``index`` of ``layer`` twice as large, with a thick ring; the rest at ``size``.

    ``size`` is the layer's normal point size (in data units); None highlights nothing.
    """
    sizes = np.full(len(layer.data), float(size))
    widths = np.full(len(layer.data), RING_WIDTH)
    if index is not None and 0 <= index < len(sizes):
        sizes[index] *= 2.0
        widths[index] = 2 * RING_WIDTH
    layer.size = sizes
    layer.border_width = widths


def show_plane_of_points(viewer: napari.viewer.Viewer, layer: napari.layers.Points) -> None:
    """Move the sliders to the plane holding the median of ``layer``'s points (in world units)."""
    if len(layer.data) == 0 or viewer.dims.ndisplay == 3:
        return
    world = np.asarray([layer.data_to_world(p) for p in layer.data])
    median = np.median(world, axis=0)
    first = viewer.dims.ndim - layer.ndim
    for axis in viewer.dims.not_displayed:
        if axis >= first:
            viewer.dims.set_point(axis, float(median[axis - first]))


def points_in(points: napari.layers.Points, target: Layer) -> np.ndarray:
    """The points of ``points`` as data coordinates of ``target``: ``(N, ndim)`` floats.

    Raises
    ------
    ValueError
        A point lies outside ``target``'s data.
    """
    data = np.asarray(points.data, float)
    if len(data) == 0:
        return np.empty((0, target.ndim))
    voxels = np.asarray([target.world_to_data(points.data_to_world(p)) for p in data], float)
    rounded = np.round(voxels)
    outside = ((rounded < 0) | (rounded >= np.asarray(target.data.shape))).any(axis=1)
    if outside.any():
        shown = ", ".join(f"{c:.0f}" for c in voxels[outside][0])
        raise ValueError(f"point ({shown}) is outside the segmentation")
    return voxels
