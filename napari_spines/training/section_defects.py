"""Serial-section defects for training crops: missing sections and misaligned sections.

Serial-section EM stacks lose sections (a torn or dirty section, imaged black or blank) and
their sections slip against each other where the alignment failed. A network that never saw
either cuts every neuron at such a section. These augmentations (as in the CREMI and
gunpowder recipes) put them into training crops:

- a **missing section**: one section's image is replaced by a constant, its labels are kept,
  so the network must carry the segments through from the sections around it;
- a **misaligned section**: one section ("slip"), or every section from one on ("shift"), is
  moved in y and x by a few pixels, its labels with it, so the targets across the cut stay
  true; the strips the move uncovers are left out of the loss.
"""

from __future__ import annotations

import numpy as np

MISSING_CHANCE = 0.15
MISALIGN_CHANCE = 0.15
MAX_SHIFT = 8


def missing_section(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Blank one random section of ``image``: 0 (imaged black) or the stack's mean (blank).

    Parameters
    ----------
    rng
        Draws the section and the fill.
    image
        ``(Z, Y, X)`` normalised image; not changed.

    Returns
    -------
    numpy.ndarray
        A copy with one section filled.
    """
    image = image.copy()
    z = int(rng.integers(image.shape[0]))
    image[z] = 0.0 if rng.random() < 0.5 else float(image.mean())
    return image


def misaligned_sections(
    rng: np.random.Generator,
    image: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray,
    max_shift: int = MAX_SHIFT,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move one section (slip) or every section from one on (shift) by a random y/x offset.

    Parameters
    ----------
    rng
        Draws the section, the kind and the offset.
    image, labels, valid
        ``(Z, Y, X)`` image, labels and mask of the voxels that hold data; not changed.
    max_shift
        Largest move in pixels along y and along x.

    Returns
    -------
    tuple of numpy.ndarray
        Image, labels and mask moved alike; the mask is False where a moved section uncovered
        pixels it has no data for.
    """
    image, labels, valid = image.copy(), labels.copy(), valid.copy()
    if image.shape[0] < 2:
        return image, labels, valid
    first = int(rng.integers(1, image.shape[0]))
    moved = slice(first, first + 1) if rng.random() < 0.5 else slice(first, None)
    dy, dx = (int(d) for d in rng.integers(-max_shift, max_shift + 1, 2))
    for array in (image, labels, valid):
        array[moved] = np.roll(array[moved], (dy, dx), axis=(1, 2))
    # the rows and columns that np.roll wrapped round hold no data
    rows = slice(0, dy) if dy > 0 else slice(valid.shape[1] + dy, None)
    columns = slice(0, dx) if dx > 0 else slice(valid.shape[2] + dx, None)
    if dy:
        valid[moved, rows, :] = False
    if dx:
        valid[moved, :, columns] = False
    return image, labels, valid


def section_defects(
    rng: np.random.Generator,
    image: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray,
    missing_chance: float = MISSING_CHANCE,
    misalign_chance: float = MISALIGN_CHANCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Misalign sections, then blank one, each with its chance.

    Parameters
    ----------
    rng
        Draws whether and how.
    image, labels, valid
        ``(Z, Y, X)`` image, labels and data mask (`misaligned_sections`).
    missing_chance
        Chance of a missing section (`missing_section`).
    misalign_chance
        Chance of a misalignment (`misaligned_sections`).

    Returns
    -------
    tuple of numpy.ndarray
        Image, labels and mask.
    """
    if rng.random() < misalign_chance:
        image, labels, valid = misaligned_sections(rng, image, labels, valid)
    if rng.random() < missing_chance:
        image = missing_section(rng, image)
    return image, labels, valid
