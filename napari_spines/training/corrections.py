"""What a saved correction means for the loss: store entries → training and held-out data.

Spines (`spine_sample`), inside the region a person vouches for (within ``within_um`` of the
traced dendrites, or of the model's own shaft channel when no trace was given, in the entry's
box):

- accepted, added and moved spines are heads (Gaussian targets, as `head_targets`);
- rejected spines are known negatives: target 0, weighed as much as a head;
- auto spines left unreviewed are masked out of the loss around them;
- every other voxel is background.

Outside the region nothing is known: masked out. The shaft channel learns the traced dendrite
(`SHAFT_RADIUS_UM`), or, without a trace, keeps what the model itself predicted.

Labels (`labels_sample`): the proofread ids of the reviewed box, 0 being boundary or unlabelled
as everywhere in napari-spines (`napari_spines.training.em_data.user_volume`).

Each sample keeps a held-out part for validation: the last ``holdout`` of its heads along its
longest axis (spines), or its last sections (labels). Nothing of that part enters the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_spines.spines.evaluate import AnnotatedSession
from napari_spines.training.spines import (
    SHAFT_RADIUS_UM,
    VOXEL_SIZE_UM,
    TrainingVolume,
    ValidationVolume,
    distance_to_points_um,
    head_targets,
    points_to_model,
    to_model_space,
)
from napari_spines.training.store import HEAD_STATUSES, Entry

#: Extra loss weight of a head or of a rejected spine, times its Gaussian (as `loss_fn`).
NEGATIVE_WEIGHT = 20.0
#: Unreviewed spines are masked where their Gaussian exceeds this (about 2.4 σ around them).
UNREVIEWED_MASK_LEVEL = 0.05
#: Held-out and training parts are this far apart (µm), so no head's blob spans both.
GUARD_UM = 1.5
#: The held-out crop keeps this much image around its part (µm), for the network's view.
CONTEXT_UM = 8.0
#: Shaft probability above which the model's own shaft channel is taken as the dendrite.
SHAFT_LEVEL = 0.5

ShaftPredictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class SpineSample:
    """A spine entry prepared for fine-tuning: its training volume and its held-out part."""

    entry: Entry
    train: TrainingVolume
    held_out: ValidationVolume | None
    held_out_heads: int
    train_heads: int


def read_entry_image(entry: Entry) -> np.ndarray:
    """The entry's image as saved.

    Parameters
    ----------
    entry
        A store entry.

    Returns
    -------
    numpy.ndarray
        The ``(Z, Y, X)`` stack in its own dtype.
    """
    from napari_spines.io import read_volumes

    return np.asarray(read_volumes(entry.path("image.tif"))[0].levels[0])


def read_spines(entry: Entry) -> tuple[np.ndarray, np.ndarray]:
    """The spines of a spine entry.

    Parameters
    ----------
    entry
        A ``spines`` store entry.

    Returns
    -------
    coords : numpy.ndarray
        ``(N, 3)`` positions in the entry's voxels.
    statuses : numpy.ndarray
        Each spine's status (object array of str); ``accepted`` when the CSV has none.
    """
    from napari_spines.io.points_csv import read_points_csv

    coords, _, properties = read_points_csv(entry.path("points.csv"))
    statuses = np.asarray(properties.get("status", np.full(len(coords), "accepted")), object)
    return coords.reshape(-1, 3), statuses.astype(str).astype(object)


def split_axis_and_cut(
    heads: np.ndarray, voxel_size_um: tuple, holdout: float
) -> tuple[int, float]:
    """The axis along which heads spread most (µm) and the cut leaving ``holdout`` beyond it.

    Parameters
    ----------
    heads
        ``(N, 3)`` head positions, voxels.
    voxel_size_um
        Their voxel size.
    holdout
        Fraction of the heads beyond the cut, 0–0.5.

    Returns
    -------
    axis : int
        0, 1 or 2.
    cut : float
        Voxels at or beyond this coordinate along ``axis`` are held out.

    Examples
    --------
    >>> heads = np.array([[0, 0, x] for x in range(10)], float)
    >>> split_axis_and_cut(heads, (1.0, 1.0, 1.0), 0.2)
    (2, 8.0)
    """
    spread = np.ptp(heads * np.asarray(voxel_size_um), axis=0)
    axis = int(np.argmax(spread))
    order = np.sort(heads[:, axis])
    return axis, float(order[int(np.floor(len(order) * (1 - holdout)))])


def spine_sample(
    entry: Entry, predict_shaft: ShaftPredictor | None = None, holdout: float = 0.25
) -> SpineSample:
    """A spine entry as training volume (the loss semantics above) and held-out part.

    Parameters
    ----------
    entry
        A ``spines`` entry of the store.
    predict_shaft
        Maps the model-space image to the base model's shaft probability (same shape); needed
        for entries without traced dendrites.
    holdout
        Fraction of the heads held out (along the longest axis); 0 holds nothing out. Entries
        with fewer than 8 heads are not split.

    Returns
    -------
    SpineSample

    Raises
    ------
    ValueError
        An entry with no head, or no trace and no ``predict_shaft``.
    """
    image_data = read_entry_image(entry)
    voxel = entry.voxel_size_um
    within = float(entry.record["region"].get("within_um", 4.0))
    coords, statuses = read_spines(entry)
    is_head = np.isin(statuses, HEAD_STATUSES)
    if not is_head.any():
        raise ValueError(f"entry {entry.id}: no accepted, added or moved spine to learn from")
    image, factors = to_model_space(image_data, voxel)
    shape = image.shape
    if entry.has("dendrites.csv"):
        from napari_spines.io.points_csv import read_points_csv

        trace_data = read_points_csv(entry.path("dendrites.csv"))[0].reshape(-1, 3)
        reference = points_to_model(trace_data, factors)
        distance = distance_to_points_um(shape, reference)
        shaft = (distance <= SHAFT_RADIUS_UM).astype(np.float32)
    else:
        if predict_shaft is None:
            raise ValueError(f"entry {entry.id}: no traced dendrites and no model to find them")
        shaft = (predict_shaft(image) > SHAFT_LEVEL).astype(np.float32)
        reference = np.argwhere(shaft > 0).astype(float)
        if not len(reference):
            raise ValueError(f"entry {entry.id}: the model finds no dendrite in it")
        distance = distance_to_points_um(shape, reference)
        trace_data = (reference + 0.5) / np.asarray(factors) - 0.5
    region = distance <= within
    points = points_to_model(coords, factors)
    heads = head_targets(shape, points[is_head])
    negatives = head_targets(shape, points[statuses == "rejected"])
    unreviewed = head_targets(shape, points[statuses == "auto"])
    mask = region * (1.0 + NEGATIVE_WEIGHT * negatives)
    mask[unreviewed > UNREVIEWED_MASK_LEVEL] = 0
    shaft_mask = region.astype(np.float32)

    n_heads = int(is_head.sum())
    held_out = None
    held_out_heads = 0
    if holdout > 0 and n_heads >= 8:
        axis, cut = split_axis_and_cut(points[is_head], VOXEL_SIZE_UM, holdout)
        position = np.arange(shape[axis], dtype=float).reshape(
            [-1 if a == axis else 1 for a in range(3)]
        )
        guard = GUARD_UM / VOXEL_SIZE_UM[axis]
        train_side = position < cut - guard
        mask = mask * train_side
        shaft_mask = shaft_mask * train_side
        held_out = held_out_volume(
            entry, image, factors, axis, cut, coords, statuses, trace_data, voxel
        )
        held_out_heads = int((points[is_head][:, axis] >= cut).sum())
    centres = np.concatenate([reference, points[is_head]])
    centres = centres[
        mask[tuple(np.clip(np.round(centres).astype(int), 0, np.array(shape) - 1).T)] > 0
    ]
    if not len(centres):
        raise ValueError(f"entry {entry.id}: nothing left to train on after the hold-out")
    volume = TrainingVolume(
        image,
        heads,
        shaft,
        mask.astype(np.float32),
        centres,
        shaft_mask=shaft_mask.astype(np.float32),
    )
    return SpineSample(entry, volume, held_out, held_out_heads, n_heads - held_out_heads)


def held_out_volume(
    entry: Entry,
    image: np.ndarray,
    factors: tuple,
    axis: int,
    cut: float,
    coords: np.ndarray,
    statuses: np.ndarray,
    trace_data: np.ndarray,
    voxel: tuple,
) -> ValidationVolume:
    """The held-out part (model voxels ≥ ``cut`` along ``axis``) as a validation volume.

    Its truth is the heads beyond the cut; unreviewed spines are neither right nor wrong (as
    ``is_bad`` spines of an annotated session); the scored region is the trace (or the model's
    shaft) beyond the cut, so `napari_spines.training.spines.validate` scores it.

    Parameters
    ----------
    entry
        The spine entry.
    image, factors
        Its image in model space and the factors of `to_model_space`.
    axis, cut
        The held-out part: model voxels at or beyond ``cut`` along ``axis``.
    coords, statuses
        The entry's spines (entry voxels) and their statuses.
    trace_data
        The region's reference points (trace or shaft voxels), entry voxels.
    voxel
        The entry's voxel size.

    Returns
    -------
    ValidationVolume
        The box of the scored trace and heads plus `CONTEXT_UM`, with its annotated session.
    """
    model_coords = points_to_model(coords, factors)
    factor = factors[axis]
    data_cut = (cut + 0.5) / factor - 0.5
    beyond = model_coords[:, axis] >= cut
    trace_beyond = trace_data[trace_data[:, axis] >= data_cut]
    session = AnnotatedSession(
        entry.path("image.tif"),
        coords[beyond & np.isin(statuses, HEAD_STATUSES)],
        coords[beyond & (statuses == "auto")],
        trace_beyond if len(trace_beyond) else trace_data[:0],
        voxel,
    )
    # the image the network sees: what is scored (within 4 µm of the trace beyond the cut, and
    # the heads there) plus CONTEXT_UM, never more (validation runs every few dozen steps)
    scored = np.concatenate([points_to_model(session.dendrites, factors), model_coords[beyond]])
    margin = np.ceil(CONTEXT_UM / np.asarray(VOXEL_SIZE_UM)).astype(int)
    if len(scored):
        start = np.maximum(np.floor(scored.min(0)).astype(int) - margin, 0)
        stop = np.minimum(np.ceil(scored.max(0)).astype(int) + margin + 1, image.shape)
    else:
        start, stop = np.zeros(3, int), np.asarray(image.shape)
    start[axis] = max(start[axis], int(np.floor(cut)) - margin[axis])
    region = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    return ValidationVolume(session, np.ascontiguousarray(image[region]), start, factors)


def labels_volumes(entry: Entry, holdout: float = 0.25) -> tuple:
    """A labels entry as (training, held-out) `LabelledVolume` s; held-out None when too small.

    The held-out part is the last ``holdout`` of the sections (at least one) when the entry has
    at least 4 sections, else the last ``holdout`` of its columns (x).

    Parameters
    ----------
    entry
        A ``labels`` entry of the store.
    holdout
        Fraction held out; 0 holds nothing out.

    Returns
    -------
    tuple
        ``(train, held_out)``.
    """
    from napari_spines.io import read_volumes
    from napari_spines.training.em_data import user_volume

    image = read_entry_image(entry)
    labels = np.asarray(read_volumes(entry.path("labels.tif"))[0].levels[0])
    if holdout <= 0:
        return user_volume(image, labels, entry.id), None
    axis = 0 if image.shape[0] >= 4 else 2
    n = image.shape[axis]
    keep = n - max(1, round(n * holdout))
    if keep < 1 or (axis == 2 and keep < 64):
        return user_volume(image, labels, entry.id), None
    first = [slice(None)] * 3
    last = [slice(None)] * 3
    first[axis], last[axis] = slice(0, keep), slice(keep, None)
    parts = []
    for part in (tuple(first), tuple(last)):
        if not labels[part].any():
            return user_volume(image, labels, entry.id), None
        parts.append(user_volume(image[part], labels[part], entry.id))
    return parts[0], parts[1]
