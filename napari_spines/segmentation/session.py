"""A segmentation being tuned and proofread: everything the Segmentation widget shows, no screen.

A `SegmentationSession` owns the affinities and their agglomeration, the boundary map and the
fragment graph that splits use, the labels at the current threshold and the `Proofreader` that
edits them. The widget only turns clicks into voxel coordinates and results into layers; the
command line and tests drive the same object without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.errors import first_line
from napari_spines.models.spec import ModelSpec
from napari_spines.progress import ProgressCallback
from napari_spines.segmentation.affinities import boundary_map
from napari_spines.segmentation.edit_log import Edit
from napari_spines.segmentation.fragment_graph import FragmentGraph, build_fragment_graph
from napari_spines.segmentation.pipeline import Segmentation, segment_image
from napari_spines.segmentation.proofreading import Proofreader

#: Orders of `SegmentationSession.next_segment` as shown to the user → `Proofreader` orders.
ORDERS = {"largest": "largest", "smallest": "smallest", "least confident": "least_confident"}


@dataclass(frozen=True)
class Relabelled:
    """The labels at one threshold and the `Proofreader` that indexes them."""

    threshold: float
    proofreader: Proofreader


class SegmentationSession:
    """A segmentation, its labels at a threshold, and their proofreading.

    Parameters
    ----------
    segmentation
        Affinities and their agglomeration (`segment_image`).
    boundaries
        The boundary map splits flood (`boundary_map` of the affinities).
    fragments
        The agglomeration's fragments with their graph, for splits by whole fragments.
    spec
        The spec of the model that made the affinities (its outputs name the channels).
    """

    def __init__(
        self,
        segmentation: Segmentation,
        boundaries: np.ndarray,
        fragments: FragmentGraph | None,
        spec: ModelSpec | None = None,
    ) -> None:
        self.segmentation = segmentation
        self.boundaries = boundaries
        self.fragments = fragments
        self.spec = spec
        self.proofreader: Proofreader | None = None
        self.current: int | None = None  # the segment `next_segment` went to

    @classmethod
    def segment(
        cls,
        data: Any,
        axes: str,
        model: Any,
        voxel_size_um: Sequence[float] | None = None,
        mode: str | None = None,
        device: str = "auto",
        progress: ProgressCallback | None = None,
    ) -> tuple[SegmentationSession, Relabelled]:
        """Segment a stack and make its first labels (runs in a worker: touches no layer).

        Parameters
        ----------
        data, axes, model, voxel_size_um, mode, device
            See `segment_image`; ``model`` is an opened affinity package.
        progress
            ``(done, total)`` over the segmentation, then over the fragment graph (a second
            pass of the bar, a few seconds on 100 × 1024 × 1024); may raise `Cancelled`.

        Returns
        -------
        tuple
            The session and the labels at the model's threshold.
        """
        segmentation = segment_image(
            data,
            axes,
            model,
            voxel_size_um=voxel_size_um,
            mode=mode,
            device=device,
            progress=progress,
        )
        boundaries = boundary_map(segmentation.affinities)
        fragments = build_fragment_graph(
            segmentation.agglomeration.fragments, boundaries, progress=progress
        )
        session = cls(segmentation, boundaries, fragments, model.spec)
        return session, session.relabel(segmentation.threshold)

    # -- labels ------------------------------------------------------------------------------
    def affinity_layers(self, name: str, scale: Sequence[float]) -> list:
        """The affinities as napari layer data (one RGB layer for nearest-neighbour ones).

        Parameters
        ----------
        name
            The image layer's name; the layers are named after it.
        scale
            The image layer's scale.

        Returns
        -------
        list
            ``(data, meta, kind)`` of `napari_spines.io.layers.prediction_layer_data`.
        """
        from napari_spines.io.layers import prediction_layer_data

        outputs = self.spec.outputs if self.spec is not None else ()
        return prediction_layer_data(self.segmentation.affinities, outputs, name, tuple(scale))

    def relabel(self, threshold: float) -> Relabelled:
        """Labels at ``threshold`` and their proofreading index (safe in a worker).

        Parameters
        ----------
        threshold
            Agglomeration threshold in [0, 1]; higher merges more.

        Returns
        -------
        Relabelled
        """
        labels = self.segmentation.labels(threshold)
        confidence = self.segmentation.agglomeration.confidence(threshold)
        proofreader = Proofreader(
            labels, boundaries=self.boundaries, confidence=confidence, fragments=self.fragments
        )
        return Relabelled(threshold, proofreader)

    def adopt(self, relabelled: Relabelled, labels: np.ndarray) -> Proofreader:
        """Proofread ``labels`` (the array the viewer shows) from now on.

        When the viewer copied the labels, the proofreader is rebuilt on its array, so edits
        land where they are seen.

        Parameters
        ----------
        relabelled
            From `relabel`.
        labels
            The array the Labels layer holds.

        Returns
        -------
        Proofreader
        """
        proofreader = relabelled.proofreader
        if proofreader.labels is not labels:
            proofreader = Proofreader(
                labels,
                boundaries=self.boundaries,
                fragments=self.fragments_of(labels),
                confidence=relabelled.proofreader.confidence,
            )
        self.proofreader = proofreader
        self.current = None
        return proofreader

    def proofread(self, labels: np.ndarray) -> Proofreader:
        """The proofreader of ``labels``; a new one when the layer was given other data.

        Parameters
        ----------
        labels
            The array the Labels layer holds now.

        Returns
        -------
        Proofreader
            The current one if it edits ``labels``, else a new one on ``labels`` (without the
            old one's undo history or confidence).

        Raises
        ------
        ValueError
            No labels yet, or labels a proofreader cannot edit.
        """
        if self.proofreader is None:
            raise ValueError("Segment an image first.")
        if self.proofreader.labels is not labels:
            self.proofreader = Proofreader(
                labels, self.boundaries, fragments=self.fragments_of(labels)
            )
        return self.proofreader

    def fragments_of(self, labels: Any) -> FragmentGraph | None:
        """The fragments, if ``labels`` could be made of them (same shape), else None.

        Parameters
        ----------
        labels
            Labels (any array-like); only their shape is compared.

        Returns
        -------
        FragmentGraph or None
        """
        if self.fragments is None or np.shape(labels) != self.fragments.fragments.shape:
            return None
        return self.fragments

    def summary(self, threshold: float) -> str:
        """``"N segments at threshold T"``.

        Parameters
        ----------
        threshold
            The threshold to show (two decimals); the count is of the current labels.

        Returns
        -------
        str
        """
        assert self.proofreader is not None
        return f"{len(self.proofreader.segment_ids())} segments at threshold {threshold:.2f}"

    # -- proofreading ------------------------------------------------------------------------
    def ids_at(self, voxels: np.ndarray) -> list[int]:
        """Segment ids under ``voxels`` (``(N, D)`` floats), in order, without repeats.

        Parameters
        ----------
        voxels
            ``(N, D)`` voxel coordinates, rounded to the nearest voxel.

        Returns
        -------
        list of int
            Ids in the order of first appearance (0 for background).
        """
        assert self.proofreader is not None
        index = tuple(np.round(voxels).astype(int).T)
        return list(dict.fromkeys(int(i) for i in self.proofreader.labels[index]))

    def target(self, voxels: np.ndarray, selected: int) -> int:
        """The one segment under the points, else the ``selected`` label.

        Parameters
        ----------
        voxels
            ``(N, D)`` voxel coordinates; none means ``selected``.
        selected
            The label selected in the layer.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            The points lie on several segments.
        """
        if len(voxels) == 0:
            return int(selected)
        ids = self.ids_at(voxels)
        if len(ids) != 1:
            raise ValueError(
                f"the points lie on segments {', '.join(map(str, ids))}: place them on one segment"
            )
        return ids[0]

    def merge(self, voxels: np.ndarray, selected: int) -> Edit:
        """Merge the segments under the points (with ``selected`` if they lie on one).

        Parameters
        ----------
        voxels
            ``(N, D)`` voxel coordinates clicked; logged with the edit.
        selected
            The label selected in the layer.

        Returns
        -------
        Edit

        Raises
        ------
        ValueError
            Fewer than two distinct segments, background, or ids not in the labels.
        """
        assert self.proofreader is not None
        ids = self.ids_at(voxels)
        if len(ids) < 2:
            ids = list(dict.fromkeys([int(selected), *ids]))
        return self.proofreader.merge(ids, coordinates=voxels)

    def split(self, voxels: np.ndarray, selected: int) -> Edit:
        """Split the segment holding the points; each point seeds one part.

        Parameters
        ----------
        voxels
            ``(N, D)`` seed voxel coordinates, at least two, on one segment.
        selected
            The label selected in the layer; unused, since the points name the segment.

        Returns
        -------
        Edit

        Raises
        ------
        ValueError
            Fewer than two points, points on several segments or outside the segment, or
            points on the same voxel (see `Proofreader.split`).
        """
        assert self.proofreader is not None
        if len(voxels) < 2:
            raise ValueError("place at least two points inside the segment to split")
        return self.proofreader.split(self.target(voxels, selected), voxels)

    def delete(self, voxels: np.ndarray, selected: int) -> Edit:
        """Delete the segment under the point(s), else ``selected``.

        Parameters
        ----------
        voxels
            ``(N, D)`` voxel coordinates clicked; none means ``selected``.
        selected
            The label selected in the layer.

        Returns
        -------
        Edit

        Raises
        ------
        ValueError
            Points on several segments, background, or an id not in the labels.
        """
        assert self.proofreader is not None
        return self.proofreader.delete(self.target(voxels, selected), coordinates=voxels)

    def fill_holes(self, voxels: np.ndarray, selected: int) -> Edit:
        """Fill the holes of the segment under the point(s), else of ``selected``.

        A segment without holes gives an edit that is not recorded (`changed` is False).

        Parameters
        ----------
        voxels
            ``(N, D)`` voxel coordinates clicked; none means ``selected``.
        selected
            The label selected in the layer.

        Returns
        -------
        Edit

        Raises
        ------
        ValueError
            Points on several segments, background, or an id not in the labels.
        """
        assert self.proofreader is not None
        return self.proofreader.fill_holes(self.target(voxels, selected), coordinates=voxels)

    @property
    def changed(self) -> bool:
        """Whether the last operation changed any voxel."""
        return self.proofreader is not None and self.proofreader.changed_region() is not None

    def relabel_sequential(self) -> Edit:
        """Renumber the segments 1…N (visits the whole volume)."""
        assert self.proofreader is not None
        self.current = None
        return self.proofreader.relabel_sequential()

    def undo(self) -> Edit | None:
        """Undo the last edit; None when there is none."""
        assert self.proofreader is not None
        return self.proofreader.undo()

    def redo(self) -> Edit | None:
        """Redo the last undone edit; None when there is none."""
        assert self.proofreader is not None
        return self.proofreader.redo()

    def next_segment(self, order: str) -> int | None:
        """Go to the segment after the current one in ``order`` (see `ORDERS`); None at the end.

        After the end, the next call starts again from the first.

        Parameters
        ----------
        order
            A key of `ORDERS`: ``"largest"``, ``"smallest"`` or ``"least confident"``.

        Returns
        -------
        int or None
            The segment gone to, or None past the last.
        """
        assert self.proofreader is not None
        try:
            segment = self.proofreader.next_segment(ORDERS[order], after=self.current)
        except ValueError:  # the current segment is gone for good: start over
            segment = self.proofreader.next_segment(ORDERS[order])
        self.current = segment
        return segment

    def describe_segment(self, segment: int) -> str:
        """``"segment 5: 1234 voxels, confidence 0.83"``.

        Parameters
        ----------
        segment
            A segment id; the confidence is left out when it has none.

        Returns
        -------
        str
        """
        assert self.proofreader is not None
        confidence = self.proofreader.confidence.get(segment)
        return f"segment {segment}: {self.proofreader.voxel_count(segment)} voxels" + (
            "" if confidence is None else f", confidence {confidence:.2f}"
        )

    def centre_voxel(self, segment: int) -> np.ndarray | None:
        """A voxel of ``segment`` nearest its centre (the centre may lie outside a curved one).

        Parameters
        ----------
        segment
            A segment id.

        Returns
        -------
        np.ndarray or None
            ``(D,)`` integer voxel coordinates; None when the segment is not in the labels.
        """
        assert self.proofreader is not None
        box = self.proofreader.bounding_box(segment)
        if box is None:
            return None
        inside = np.argwhere(self.proofreader.labels[box] == segment)
        middle = inside[np.argmin(((inside - inside.mean(axis=0)) ** 2).sum(axis=1))]
        return middle + [s.start for s in box]

    def save(self, path: str | Path, voxel_size_um: Sequence[float]) -> tuple[Path, Path]:
        """Write the labels TIFF (with ``voxel_size_um``) and ``<name>.edits.json`` beside it.

        The TIFF carries the edit log too, so labels and log are saved by one atomic rename
        (`~napari_spines.segmentation.edit_log.load_saved_edits` reads them back); the JSON
        file, written after it, is a copy for people and other tools.

        Parameters
        ----------
        path
            The ``.tif`` or ``.tiff`` to write.
        voxel_size_um
            Voxel size in µm, stored in the TIFF.

        Returns
        -------
        tuple of Path
            The TIFF and the edit log.

        Raises
        ------
        ValueError
            Not a ``.tif``/``.tiff`` path, nothing to save, or the files cannot be written.
        """
        from napari_spines.io.labels_tiff import write_labels_tiff
        from napari_spines.segmentation.edit_log import log_json

        path = Path(path)
        if self.proofreader is None:
            raise ValueError("Segment an image first.")
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise ValueError(f"{path.name}: labels are saved as .tif or .tiff")
        try:
            log_text = log_json(self.proofreader.edits)
            tiff = write_labels_tiff(
                path, self.proofreader.labels, tuple(voxel_size_um), edit_log=log_text
            )
            log = self.proofreader.save_log(path.with_name(f"{path.stem}.edits.json"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"could not save {path.name}: {first_line(exc)}") from exc
        return tiff, log


def segment_for_layers(
    data: Any,
    axes: str,
    model: Any,
    voxel_size_um: Sequence[float] | None,
    mode: str | None,
    device: str,
    name: str,
    scale: Sequence[float],
    progress: ProgressCallback | None = None,
) -> tuple[SegmentationSession, Relabelled, list]:
    """`SegmentationSession.segment`, then the affinities' layer data, all in the worker.

    Stacking the affinities into an RGB image takes about 0.2 s; on napari's thread it froze the
    window (docs/performance.md, "The GUI while work runs").

    Parameters
    ----------
    data, axes, model, voxel_size_um, mode, device, progress
        See `SegmentationSession.segment`.
    name, scale
        The image layer's name and scale, for the affinity layers.

    Returns
    -------
    tuple
        The session, the labels at the model's threshold, and the affinities' layer data
        (`SegmentationSession.affinity_layers`).
    """
    session, relabelled = SegmentationSession.segment(
        data, axes, model, voxel_size_um, mode, device, progress=progress
    )
    return session, relabelled, session.affinity_layers(name, scale)


def describe_edit(edit: Edit, how: str = "") -> str:
    """What an edit did, in a line: ``"merged 3, 5 into 8"``; ``how`` is "undo" or "redo".

    Parameters
    ----------
    edit
        The edit.
    how
        ``"undo"`` or ``"redo"`` when the edit was undone or redone; empty when it was made.

    Returns
    -------
    str
    """
    if how:
        return f"{how}: {edit.operation.replace('_', ' ')} of {format_ids(edit.ids)}"
    if edit.operation == "merge":
        return f"merged {format_ids(edit.ids)} into {edit.new_ids[0]}"
    if edit.operation == "split":
        return f"split {edit.ids[0]} into {format_ids([*edit.ids, *edit.new_ids])}"
    if edit.operation == "delete":
        return f"deleted {edit.ids[0]}"
    if edit.operation == "fill_holes":
        return f"filled the holes of {edit.ids[0]}"
    return f"renumbered {len(edit.ids)} segments" if edit.ids else "the ids are already 1…N"


def void_edit_note(edit: Edit | None, changed: bool, how: str = "") -> str | None:
    """Why an operation changed nothing, in a line; None when it made a real edit.

    Parameters
    ----------
    edit
        What the operation returned (None: it found nothing to do).
    changed
        Whether the labels changed (`SegmentationSession.changed`).
    how
        The operation's verb, or ``"undo"`` / ``"redo"``.

    Returns
    -------
    str or None

    Examples
    --------
    >>> void_edit_note(None, False, "undo")
    'nothing to undo'
    """
    if edit is None:
        return f"nothing to {how}"
    if edit.operation == "fill_holes" and not changed:  # not recorded
        return f"segment {edit.ids[0]} has no holes"
    return None


def format_ids(ids: Sequence[int], most: int = 6) -> str:
    """``"3, 5, 8"``; long lists end in ``…``.

    Parameters
    ----------
    ids
        The ids.
    most
        How many ids to show at most.

    Returns
    -------
    str

    Examples
    --------
    >>> format_ids([3, 5, 8])
    '3, 5, 8'
    >>> format_ids(list(range(1, 10)))
    '1, 2, 3, 4, 5, 6, …'
    """
    shown = ", ".join(str(int(i)) for i in ids[:most])
    return shown + (", …" if len(ids) > most else "")
