"""Missing and misaligned sections keep image, labels and loss mask consistent."""

import numpy as np
import pytest

from napari_spines.training.section_defects import (
    misaligned_sections,
    missing_section,
    section_defects,
)


def _stack() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.random.default_rng(0).random((4, 24, 24)).astype(np.float32)
    labels = np.arange(image.size).reshape(image.shape)  # each voxel its own id
    return image, labels, np.ones(image.shape, bool)


@pytest.mark.parametrize("seed", range(8))
def test_a_misaligned_section_moves_its_labels_with_its_image(seed: int) -> None:
    image, labels, valid = _stack()
    moved_image, moved_labels, moved_valid = misaligned_sections(
        np.random.default_rng(seed), image, labels, valid
    )
    # every voxel that holds data shows the original voxel its label names
    source = moved_labels[moved_valid]
    assert np.array_equal(moved_image[moved_valid], image.ravel()[source])
    changed = [z for z in range(4) if not np.array_equal(moved_labels[z], labels[z])]
    assert changed and 0 not in changed, "the first section stays, some later one moves"
    assert changed == list(range(changed[0], changed[-1] + 1))
    # the strips np.roll wrapped round are out of the loss, and nothing else is
    for z in range(4):
        wrapped = moved_labels[z] // (24 * 24) != z
        rolled_in = ~moved_valid[z]
        assert not (wrapped & moved_valid[z]).any()
        if z not in changed:
            assert not rolled_in.any()
    assert np.array_equal(image, _stack()[0]), "the input is not changed"


def test_a_missing_section_is_one_constant_section_and_nothing_else() -> None:
    image = _stack()[0]
    for seed in range(6):
        blanked = missing_section(np.random.default_rng(seed), image)
        differs = [z for z in range(4) if not np.array_equal(blanked[z], image[z])]
        assert len(differs) == 1
        assert np.ptp(blanked[differs[0]]) == 0


def test_defects_follow_their_chances() -> None:
    image, labels, valid = _stack()
    untouched = section_defects(np.random.default_rng(0), image, labels, valid, 0.0, 0.0)
    assert all(np.array_equal(a, b) for a, b in zip(untouched, (image, labels, valid), strict=True))
    always = section_defects(np.random.default_rng(0), image, labels, valid, 1.0, 1.0)
    assert not np.array_equal(always[0], image)
    assert not always[2].all()


def test_training_crops_with_defects_mask_what_the_move_uncovered() -> None:
    from napari_spines.training.affinity import random_crop
    from napari_spines.training.em_data import synthetic_volume

    volume = synthetic_volume(0)
    uncovered = 0
    for seed in range(40):  # a misalignment in 15 % of the crops
        plain = random_crop(volume, np.random.default_rng(seed), (4, 32, 32))
        with_defects = random_crop(volume, np.random.default_rng(seed), (4, 32, 32), defects=True)
        again = random_crop(volume, np.random.default_rng(seed), (4, 32, 32), defects=True)
        assert all(np.array_equal(a, b) for a, b in zip(with_defects, again, strict=True)), "seeded"
        uncovered += int(plain[2].sum() - with_defects[2].sum())
    assert uncovered > 0, "some crop had a misaligned section whose strips left the loss"
