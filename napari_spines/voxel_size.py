"""The voxel size of a volume or a layer: micrometres per spatial axis, and whether it is known.

One value travels from a file (or a layer, or ``--voxel-size``) to the models: `VoxelSize`.
A file that carries no usable voxel size gives 1 µm per axis with ``known=False``; the models
then run at their own voxel size (`VoxelSize.for_model` is None), and whoever shows the result
says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SPATIAL_AXES = "ZYX"


@dataclass(frozen=True)
class VoxelSize:
    """Micrometres per spatial axis (``z, y, x``, or ``y, x`` in 2D) and whether they are known.

    Parameters
    ----------
    um
        One size per spatial axis, in the order of the axes.
    known
        False when nothing (file, layer, user) gave the size and 1 µm was assumed.

    Examples
    --------
    >>> VoxelSize((1.0, 0.12, 0.12)).for_model()
    (1.0, 0.12, 0.12)
    >>> VoxelSize((1.0, 1.0, 1.0), known=False).for_model() is None
    True
    >>> VoxelSize((1.0, 1.0, 1.0), known=False).given([0.05, 0.004, 0.004])
    VoxelSize(um=(0.05, 0.004, 0.004), known=True)
    """

    um: tuple[float, ...]
    known: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "um", tuple(float(v) for v in self.um))

    @classmethod
    def of_layer(cls, scale: Sequence[float], axes: str, metadata: dict) -> VoxelSize:
        """The voxel size of a napari layer from its ``scale``, axis letters and metadata.

        Parameters
        ----------
        scale
            The layer's scale, one value per axis (time gets 1).
        axes
            The layer's axis letters, e.g. ``"TZYX"``; the spatial ones are counted.
        metadata
            The layer's metadata: ``voxel_size_known`` False marks an assumed size.

        Returns
        -------
        VoxelSize
        """
        n_spatial = sum(a in SPATIAL_AXES for a in axes) or min(len(scale), 3)
        known = metadata.get("voxel_size_known", True) is not False
        return cls(tuple(scale[-n_spatial:]), known)

    def given(self, override: Sequence[float] | None) -> VoxelSize:
        """The same size, or ``override`` (e.g. ``--voxel-size``) when one is given (then known).

        A 3-value override of a 2D volume keeps its last two values.

        Parameters
        ----------
        override
            Sizes in µm, or None / empty for none.

        Returns
        -------
        VoxelSize
        """
        if not override:
            return self
        return VoxelSize(tuple(override)[-len(self.um) :], True)

    def for_model(self) -> tuple[float, ...] | None:
        """The size to rescale to a model's voxels; None when unknown (run at the model's).

        Returns
        -------
        tuple of float or None
        """
        return self.um if self.known else None

    def __str__(self) -> str:
        axes = "zyx"[-len(self.um) :]
        text = " × ".join(f"{v:g}" for v in self.um) + f" µm ({', '.join(axes)})"
        return text if self.known else f"{text}, assumed (not in the file)"


def assumed_size_warning(voxel_size_um: Sequence[float]) -> str:
    """What to say when something is written with a voxel size no file or person gave.

    Parameters
    ----------
    voxel_size_um
        The assumed size in µm, one value per spatial axis.

    Returns
    -------
    str
    """
    sizes = " × ".join(f"{v:g}" for v in voxel_size_um)
    return (
        f"written with the assumed voxel size {sizes} µm: the stack's file gave none. "
        "Set the true size with the Voxel size widget and save again."
    )
