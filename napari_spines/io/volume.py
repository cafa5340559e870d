"""The `Volume` every reader returns: an array with its axes and voxel size in micrometres."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from napari_spines.voxel_size import VoxelSize

SPATIAL_AXES = "ZYX"
KNOWN_AXES = "TCZYX"


class VolumeReadError(ValueError):
    """A file looks like ours but cannot be read; the message says why in one line."""


@dataclass(frozen=True)
class Volume:
    """An image or label volume with the metadata napari needs to place it.

    Parameters
    ----------
    data
        Array-like (numpy, dask, zarr), or a list of them for a multiscale image, finest first.
    axes
        One letter per axis of ``data`` from ``"TCZYX"``, e.g. ``"ZYX"`` or ``"TCZYX"``.
    voxel_size_um
        Voxel size in micrometres for the spatial axes present, in the order of ``axes``.
    name
        Layer name.
    kind
        ``"image"`` or ``"labels"``.
    voxel_size_known
        False when the file carried no usable voxel size and 1 µm was assumed.
    channel_names
        Names of the channels when there is a ``C`` axis.
    """

    data: Any = field(repr=False)
    axes: str
    voxel_size_um: tuple[float, ...]
    name: str
    kind: Literal["image", "labels"] = "image"
    voxel_size_known: bool = True
    channel_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        levels = self.levels
        if len(self.axes) != levels[0].ndim or set(self.axes) - set(KNOWN_AXES):
            raise ValueError(f"axes {self.axes!r} do not describe data of shape {self.shape}")
        n_spatial = sum(a in SPATIAL_AXES for a in self.axes)
        if len(self.voxel_size_um) != n_spatial:
            raise ValueError(f"need {n_spatial} voxel sizes for axes {self.axes!r}")

    @property
    def multiscale(self) -> bool:
        """True when ``data`` is a list of resolution levels."""
        return isinstance(self.data, list | tuple)

    @property
    def levels(self) -> list[Any]:
        """The resolution levels, finest first (one level for a plain volume)."""
        return list(self.data) if self.multiscale else [self.data]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the finest level."""
        return tuple(self.levels[0].shape)

    @property
    def dtype(self) -> np.dtype:
        """Data type of the finest level."""
        return np.dtype(self.levels[0].dtype)

    @property
    def lazy(self) -> bool:
        """True when the data stays on disk and is read on demand."""
        return not isinstance(self.levels[0], np.ndarray)

    @property
    def voxel_size(self) -> VoxelSize:
        """The voxel size and whether the file gave it."""
        return VoxelSize(self.voxel_size_um, self.voxel_size_known)

    @property
    def scale(self) -> tuple[float, ...]:
        """Napari layer scale for every axis except ``C`` (time gets 1)."""
        return layer_scale(self.axes.replace("C", ""), self.voxel_size_um)


def layer_scale(axes: str, voxel_size_um: tuple[float, ...]) -> tuple[float, ...]:
    """Scale of a layer with ``axes`` (no ``C``): the voxel size for space, 1 for time.

    Parameters
    ----------
    axes
        Axis letters without ``C``, e.g. ``"TZYX"``.
    voxel_size_um
        Voxel size in µm of the spatial axes among ``axes``, in their order.

    Returns
    -------
    tuple of float
        One value per axis.

    Examples
    --------
    >>> layer_scale("TZYX", (1.0, 0.2, 0.2))
    (1.0, 1.0, 0.2, 0.2)
    """
    sizes = iter(voxel_size_um)
    return tuple(float(next(sizes)) if a in SPATIAL_AXES else 1.0 for a in axes)


def guess_axes(shape: tuple[int, ...]) -> str:
    """Axes for data that does not name them: YX, ZYX, CZYX (≤ 4 channels) or TZYX, TCZYX.

    Parameters
    ----------
    shape
        Shape of the data.

    Returns
    -------
    str
        One letter per axis.

    Raises
    ------
    VolumeReadError
        Fewer than 2 or more than 5 dimensions.

    Examples
    --------
    >>> guess_axes((3, 64, 256, 256))
    'CZYX'
    >>> guess_axes((10, 64, 256, 256))
    'TZYX'
    """
    ndim = len(shape)
    if ndim == 4:
        return "CZYX" if shape[0] <= 4 else "TZYX"
    if not 2 <= ndim <= 5:
        raise VolumeReadError(f"{ndim}D data: need 2 to 5 dimensions")
    return {2: "YX", 3: "ZYX", 5: "TCZYX"}[ndim]
