"""The EM training data: ISBI 2012 and gala sections, a user's stack and labels, synthetic EM.

- ISBI 2012 (``isbi2012_train_image.tif``, ``isbi2012_train_membranes.tif``): its instances are
  the 2D connected components of the non-membrane area of each section (`section_labels`), so
  its z-affinities are unknown.
- gala (``gala_train_image.tif``, ``gala_train_labels.tif``): dense 3D ids.
- synthetic EM volumes (`napari_spines.synthetic.synthetic_em`).

A `Split` says which sections train and which choose; every stack is normalised on its own,
as the inference engine will normalise it (`normalise`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_spines.inference import normalisation_stats
from napari_spines.models.spec import Normalisation

#: The engine's normalisation of em-affinity's input, which training copies (`normalise`).
NORMALISATION = Normalisation(kind="percentile", low=1.0, high=99.8)
#: The shipped split: ISBI sections 0–14 train, 15–19 choose; gala 0–34 train, 35–49 choose.
ISBI_TRAIN = range(0, 15)
ISBI_VALIDATE = range(15, 20)
GALA_SPLIT = 35
GALA_SECTIONS = 50


@dataclass
class LabelledVolume:
    """A normalised float32 stack, its instance labels (0 = boundary) and what they know."""

    image: np.ndarray
    labels: np.ndarray
    z_known: bool  # False: labels are per section, z-affinities unknown


@dataclass(frozen=True)
class Split:
    """Which ISBI and gala sections train the network, and which choose its checkpoint.

    The shipped split (`SHIPPED_SPLIT`) trains on ISBI 0–14 and gala 0–34 and chooses on ISBI
    15–19 and gala 35–49; cross-validation (`napari_spines.training.em_folds`) makes others.
    """

    isbi_train: tuple[int, ...] = tuple(ISBI_TRAIN)
    isbi_validate: tuple[int, ...] = tuple(ISBI_VALIDATE)
    gala_train: tuple[int, ...] = tuple(range(GALA_SPLIT))
    gala_validate: tuple[int, ...] = tuple(range(GALA_SPLIT, GALA_SECTIONS))


SHIPPED_SPLIT = Split()


#: Every section the cross-validation folds use (ISBI 0–19, gala 0–49) trains, none chooses:


#: the weights of a recipe whose choices were made by cross-validation.


EVERY_SECTION = Split(tuple(range(20)), (), tuple(range(GALA_SECTIONS)), ())


def normalise(image: np.ndarray) -> np.ndarray:
    """Normalise a stack exactly as the inference engine will (percentiles of the volume).

    Parameters
    ----------
    image
        A ``(Z, Y, X)`` stack of any numeric dtype.

    Returns
    -------
    numpy.ndarray
        float32, same shape: the stack's 1st and 99.8th percentiles (`NORMALISATION`) map to 0
        and 1.
    """
    offset, gain = normalisation_stats(image, NORMALISATION, channel_axis=False)
    return ((image.astype(np.float32) - offset[0]) * gain[0]).astype(np.float32)


def section_labels(membranes: np.ndarray) -> np.ndarray:
    """Instances of a membrane stack: 4-connected non-membrane components, per section.

    Parameters
    ----------
    membranes
        ``(Z, Y, X)`` membrane stack: 0 inside cells, anything else membrane.

    Returns
    -------
    numpy.ndarray
        int64 labels of the same shape, 0 on membrane; ids are unique over the stack and never
        continue into the next section.
    """
    from skimage.measure import label

    labels = np.zeros(membranes.shape, np.int64)
    offset = 0
    for z, section in enumerate(membranes):
        components = label(section == 0, connectivity=1)
        labels[z] = np.where(components > 0, components + offset, 0)
        offset += int(components.max())
    return labels


def load_isbi(folder: Path, sections: Sequence[int]) -> LabelledVolume:
    """ISBI 2012 sections with per-section instance labels.

    Parameters
    ----------
    folder
        Folder holding ``isbi2012_train_image.tif`` and ``isbi2012_train_membranes.tif``.
    sections
        Indices of the sections to load: `ISBI_TRAIN` (0–14) to train, `ISBI_VALIDATE` (15–19)
        to validate.

    Returns
    -------
    LabelledVolume
        The sections normalised on their own (`normalise`), their `section_labels`, and
        ``z_known=False``.
    """
    import tifffile

    image = tifffile.imread(folder / "isbi2012_train_image.tif")
    membranes = tifffile.imread(folder / "isbi2012_train_membranes.tif")
    picked = list(sections)
    # normalised on their own, as `segment` would normalise a stack of just these sections:
    # validation then scores what `evaluate` scores (on ISBI 15–19 a shift of 0.016 in
    # normalised intensity moved the adapted Rand error from 0.045 to 0.063)
    return LabelledVolume(normalise(image[picked]), section_labels(membranes[picked]), False)


def sections(indices: Sequence[int]) -> str:
    """Section indices as ranges, the way a model card names them.

    Parameters
    ----------
    indices
        Section indices, in any order.

    Returns
    -------
    str

    Examples
    --------
    >>> sections(range(20)), sections([0, 1, 2, 5, 6, 9])
    ('0-19', '0-2, 5-6, 9')
    """
    runs = contiguous_runs(indices)
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs) or "none"


def contiguous_runs(sections: Sequence[int]) -> list[list[int]]:
    """Split section indices into runs of consecutive sections.

    Parameters
    ----------
    sections
        Section indices, in any order.

    Returns
    -------
    list of list of int
        The sorted indices, cut wherever one is not the previous plus one.

    Examples
    --------
    >>> contiguous_runs([5, 0, 1, 2, 6, 9])
    [[0, 1, 2], [5, 6], [9]]
    """
    runs: list[list[int]] = []
    for z in sorted(sections):
        if runs and z == runs[-1][-1] + 1:
            runs[-1].append(z)
        else:
            runs.append([z])
    return runs


def load_gala(folder: Path, sections: Sequence[int]) -> list[LabelledVolume]:
    """Blocks of the gala volume: one volume per run of consecutive ``sections``.

    Its ids are 3D, so sections that are not neighbours in the file must not become neighbours
    in a volume: each run of consecutive sections is a volume of its own.

    Parameters
    ----------
    folder
        Folder holding ``gala_train_image.tif`` and ``gala_train_labels.tif``.
    sections
        Indices of the sections to load, e.g. ``SHIPPED_SPLIT.gala_train`` (0–34).

    Returns
    -------
    list of LabelledVolume
        Each run normalised on its own, its dense 3D ids (int64, 0 = boundary), and
        ``z_known=True``.
    """
    import tifffile

    image = tifffile.imread(folder / "gala_train_image.tif")
    labels = tifffile.imread(folder / "gala_train_labels.tif").astype(np.int64)
    present = [z for z in sections if z < len(image)]  # a shorter stand-in volume: what it has
    return [  # normalised on its own, as in `load_isbi`
        LabelledVolume(normalise(image[run]), labels[run], True) for run in contiguous_runs(present)
    ]


def user_volume(image: np.ndarray, labels: np.ndarray, name: str = "stack") -> LabelledVolume:
    """A user's stack and its (proofread) labels, as training data.

    Every id is one cell, 0 is boundary or unlabelled. Labels in which no id reaches into the
    next section are taken to be per section (as the Segmentation widget's "2d" mode makes
    them): their z-affinities are unknown and left out of the loss.

    Parameters
    ----------
    image
        The ``(Z, Y, X)`` stack, any numeric dtype, on its own grid (not resampled).
    labels
        Integer ids of the same shape.
    name
        Names the stack in error messages.

    Returns
    -------
    LabelledVolume
        The normalised stack (`normalise`), its labels as int64, and whether z is known.

    Raises
    ------
    ValueError
        Not a 3D pair of the same shape, labels that are not integers, or no labelled voxel.
    """
    image, labels = np.asarray(image), np.asarray(labels)
    if image.ndim != 3 or labels.shape != image.shape:
        raise ValueError(
            f"{name}: training needs a 3D (Z, Y, X) stack and labels of the same "
            f"shape, got {image.shape} and {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers, got dtype {labels.dtype}")
    if not labels.any():
        raise ValueError(f"{name}: the labels are empty (all 0)")
    z_known = bool(((labels[1:] == labels[:-1]) & (labels[1:] != 0)).any())
    return LabelledVolume(normalise(image), labels.astype(np.int64), z_known)


def synthetic_volume(seed: int) -> LabelledVolume:
    """A synthetic EM volume with dense 3D labels.

    Parameters
    ----------
    seed
        Seed of `synthetic_em`.

    Returns
    -------
    LabelledVolume
        A normalised ``(16, 192, 192)`` stack of 30 cells, ``z_known=True``.
    """
    from napari_spines.synthetic import synthetic_em

    sample = synthetic_em(shape=(16, 192, 192), n_cells=30, seed=seed)
    return LabelledVolume(normalise(sample.image), sample.labels.astype(np.int64), True)


def check_data(data: Path) -> None:
    """Raise ValueError unless ``data`` holds the ISBI 2012 and gala volumes it trains on.

    Parameters
    ----------
    data
        The folder `train` reads, e.g. ``../shared/data/em``.

    Raises
    ------
    ValueError
        Naming the first missing file.
    """
    for needed in (
        "isbi2012/isbi2012_train_image.tif",
        "isbi2012/isbi2012_train_membranes.tif",
        "gala/gala_train_image.tif",
        "gala/gala_train_labels.tif",
    ):
        if not (data / needed).exists():
            raise ValueError(
                f"{data / needed}: missing (the data folder must hold isbi2012/ "
                f"and gala/, as ../shared/data/em does)"
            )


def gala_depth(data: Path) -> int:
    """Number of sections of the gala volume in ``data``.

    Parameters
    ----------
    data
        Folder with ``gala/``.

    Returns
    -------
    int
    """
    import tifffile

    with tifffile.TiffFile(data / "gala" / "gala_train_image.tif") as tif:
        return int(tif.series[0].shape[0])


def validation_stacks(
    data: Path, split: Split = SHIPPED_SPLIT
) -> dict[str, tuple[np.ndarray, np.ndarray, bool, str | None]]:
    """The held-out stacks: name → (raw uint8 image, labels, scored per section, mode).

    ISBI's validation sections run in the default mode for its voxel size (the model's: "2d"),
    gala's, a FIB-SEM-like volume of 3D ids, in "3d".

    Parameters
    ----------
    data
        Folder with ``isbi2012/`` and ``gala/``.
    split
        Its ``isbi_validate`` and ``gala_validate`` sections are the stacks (gala's first run
        of consecutive sections, `contiguous_runs`).

    Returns
    -------
    dict
        ``"isbi2012 sections A-B"`` and ``"gala sections C-D"`` (first and last section);
        mode None means the default for the stack's voxel size.
    """
    import tifffile

    isbi = data / "isbi2012"
    gala = data / "gala"
    picked = list(split.isbi_validate)
    image = tifffile.imread(gala / "gala_train_image.tif")
    block = contiguous_runs([z for z in split.gala_validate if z < len(image)])[0]
    membranes = tifffile.imread(isbi / "isbi2012_train_membranes.tif")[picked]
    return {
        f"isbi2012 sections {picked[0]}-{picked[-1]}": (
            tifffile.imread(isbi / "isbi2012_train_image.tif")[picked],
            section_labels(membranes),
            True,
            None,
        ),
        f"gala sections {block[0]}-{block[-1]}": (
            image[block],
            tifffile.imread(gala / "gala_train_labels.tif")[block],
            False,
            "3d",
        ),
    }
