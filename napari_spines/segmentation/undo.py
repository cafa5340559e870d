"""Undo records of the proofreader: which voxels an edit changed, and their old and new values.

A record holds, per touched region, the changed voxels (flat indices, or a bit mask when many
change) and their old and new values (in compact dtypes), plus the index entries of the touched
segments before and after, and the fragment owners the edit changed; undo and redo write only
those voxels. A relabel stores its id mapping instead of voxels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from napari_spines.segmentation.edit_log import Edit
from napari_spines.segmentation.label_index import Region, SegmentEntry


class PackedValues(NamedTuple):
    """Voxel values, compactly: a palette and codes into it (no codes when all are equal)."""

    palette: np.ndarray
    codes: np.ndarray | None

    @classmethod
    def pack(cls, values: np.ndarray) -> PackedValues:
        """Pack ``values``.

        Parameters
        ----------
        values
            1D array of voxel values.

        Returns
        -------
        PackedValues
            The distinct values, and codes in the smallest unsigned dtype that holds them.
        """
        if values.size == 0 or (values == values[0]).all():
            return cls(values[:1].copy(), None)
        palette, codes = np.unique(values, return_inverse=True)
        return cls(palette, codes.astype(np.min_scalar_type(palette.size - 1)))

    @classmethod
    def constant(cls, value: int, dtype: np.dtype) -> PackedValues:
        """The same ``value`` (of ``dtype``) for every voxel.

        Parameters
        ----------
        value
            The voxels' id.
        dtype
            The labels' dtype.

        Returns
        -------
        PackedValues
            A one-entry palette and no codes.
        """
        return cls(np.array([value], dtype), None)

    def unpack(self) -> np.ndarray | np.generic:
        """The values again: an array, or one scalar when all are equal."""
        return self.palette[0] if self.codes is None else self.palette[self.codes]


def _compact_index(flat: np.ndarray, size: int) -> np.ndarray:
    """Flat indices into ``size`` voxels as uint32 where they fit, else uint64."""
    return flat.astype(np.uint32 if size <= np.iinfo(np.uint32).max else np.uint64)


class ChangedVoxels(NamedTuple):
    """Which voxels of a region an edit changed, compactly.

    Flat indices (uint32 where they fit) when few change; a bit mask when more than about one
    voxel in 32 does (a merge of segments spanning the volume: 3 MB of bits instead of 52 MB
    of indices for 13 M voxels, and no index arrays to build on undo).
    """

    shape: tuple[int, ...]
    flat: np.ndarray | None
    bits: np.ndarray | None

    @classmethod
    def of(cls, mask: np.ndarray) -> ChangedVoxels:
        """Store the true voxels of ``mask``.

        Parameters
        ----------
        mask
            Boolean array the shape of the region, true where the edit changes a voxel.

        Returns
        -------
        ChangedVoxels
            Flat indices or packed bits, whichever is smaller.
        """
        shape = tuple(mask.shape)
        index_bits = 32 if mask.size <= np.iinfo(np.uint32).max else 64
        if np.count_nonzero(mask) * index_bits > mask.size:
            return cls(shape, None, np.packbits(mask, axis=None))
        return cls(shape, _compact_index(np.flatnonzero(mask), mask.size), None)

    def select(self) -> np.ndarray | tuple[np.ndarray, ...]:
        """An index of the changed voxels in the region's array (C order)."""
        if self.bits is None:
            assert self.flat is not None
            return np.unravel_index(self.flat, self.shape)
        size = math.prod(self.shape)
        return np.unpackbits(self.bits, count=size).view(bool).reshape(self.shape)


@dataclass
class Patch:
    """The voxels an edit changed inside one region, with their values before and after.

    Attributes
    ----------
    region
        Slices of the region in the 3D volume.
    voxels
        The changed voxels within the region.
    old, new
        Their values before and after the edit.
    """

    region: Region
    voxels: ChangedVoxels
    old: PackedValues
    new: PackedValues

    def apply(self, volume: np.ndarray) -> None:
        """Write the new values into ``volume`` (the 3D labels), as the edit did (redo).

        Parameters
        ----------
        volume
            The 3D labels, edited in place.
        """
        volume[self.region][self.voxels.select()] = self.new.unpack()

    def revert(self, volume: np.ndarray) -> None:
        """Write the old values back into ``volume`` (the 3D labels), undoing the edit.

        Parameters
        ----------
        volume
            The 3D labels, edited in place.
        """
        volume[self.region][self.voxels.select()] = self.old.unpack()


class OwnerPatch(NamedTuple):
    """Fragments whose owning segment an edit changed, with their owners before and after."""

    fragments: np.ndarray
    old: np.ndarray
    new: np.ndarray


@dataclass
class UndoRecord:
    """All an edit changed, to undo and redo it.

    Attributes
    ----------
    edit
        The edit, as logged.
    patches
        The changed voxels, region by region, in the order they were written.
    before, after
        Index entries of the touched ids before and after the edit (None: absent).
    region
        Bounding box of all the edit touched (3D slices); None if nothing.
    mapping
        For a relabel, old id → new id (and no patches).
    owners
        The fragment owners the edit changed, in order.
    mixed
        Segments the edit marked as not a union of owned fragments, and those it cleared.
    """

    edit: Edit
    patches: list[Patch]
    before: dict[int, SegmentEntry | None]
    after: dict[int, SegmentEntry | None]
    region: Region | None
    mapping: dict[int, int] | None = None
    owners: list[OwnerPatch] = field(default_factory=list)
    mixed: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())
