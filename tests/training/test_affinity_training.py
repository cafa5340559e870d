"""em-affinity training pieces: crops and their targets, test-time flips, the spec."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spines.segmentation.affinities import labels_to_affinities
from napari_spines.training.affinity import LabelledVolume, flip_averaged, random_crop
from tests.models.tiny import cells_stack


def test_flip_averaging_keeps_affinities_aligned() -> None:
    # a "network" that is exactly the affinities of its input labels: flipping the input and
    # flipping back must give the same affinities, which needs the one-voxel shift
    torch = pytest.importorskip("torch")
    labels = cells_stack((4, 24, 24), n_cells=6, seed=2)[1].astype(np.float32)

    class LabelAffinities(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            aff = labels_to_affinities(x[0, 0].numpy().astype(np.int64))
            return torch.logit(torch.from_numpy(aff[None]).clamp(1e-4, 1 - 1e-4))

    averaged = flip_averaged(LabelAffinities(), ((4,), (3,), (3, 4), (2,)))
    with torch.no_grad():
        out = averaged(torch.from_numpy(labels)[None, None]).numpy()[0]
    expected = labels_to_affinities(labels.astype(np.int64))
    inner = (slice(None), slice(1, None), slice(1, None), slice(1, None))
    np.testing.assert_allclose(out[inner], expected[inner], atol=1e-3)


def test_random_crop_targets_follow_the_augmented_labels() -> None:
    image, labels = cells_stack((6, 40, 40), n_cells=8, seed=4)
    volume = LabelledVolume(image.astype(np.float32) / 255, labels.astype(np.int64), True)
    rng = np.random.default_rng(0)
    for _ in range(8):
        crop, affinities, mask = random_crop(volume, rng, (4, 32, 32))
        # walls are dark: wherever the target says "same cell", both voxels are bright
        bright = crop[0] > crop[0].min() + 0.3 * (crop[0].max() - crop[0].min())
        assert bright[affinities[2] * mask[2] > 0].all()
        assert not mask[2][:, :, 0].any()  # no neighbour before the first column


def test_z_affinities_are_masked_for_per_section_labels() -> None:
    image, labels = cells_stack((6, 40, 40), n_cells=8, seed=4)
    volume = LabelledVolume(image.astype(np.float32), labels.astype(np.int64), False)
    _, _, mask = random_crop(volume, np.random.default_rng(0), (4, 32, 32))
    assert not mask[0].any() and mask[1].any() and mask[2].any()


def test_crops_larger_than_the_volume_are_padded_and_masked() -> None:
    image, labels = cells_stack((3, 20, 20), n_cells=4, seed=1)
    volume = LabelledVolume(image.astype(np.float32), labels.astype(np.int64), True)
    crop, affinities, mask = random_crop(volume, np.random.default_rng(1), (4, 32, 32))
    assert crop.shape == (1, 4, 32, 32) and affinities.shape == mask.shape == (3, 4, 32, 32)
    assert mask.sum() < mask.size / 2


def test_in_plane_kernels_do_not_mix_sections() -> None:
    # with (1, 3, 3) kernels everywhere a section's output depends on that section only
    torch = pytest.importorskip("torch")
    from napari_spines.training.unet import build_unet

    torch.manual_seed(0)  # a net this small can be born with dead ReLUs and a constant output
    net = build_unet(1, 1, width=4, pools=((1, 2, 2),), kernels=((1, 3, 3), (1, 3, 3))).eval()
    x = torch.rand(1, 1, 3, 16, 16)
    changed = x.clone()
    changed[:, :, 2] = 0
    with torch.no_grad():
        assert torch.equal(net(x)[:, :, :2], net(changed)[:, :, :2])
        assert not torch.equal(net(x)[:, :, 2], net(changed)[:, :, 2])


def test_elastic_deformation_moves_image_and_labels_together():
    from napari_spines.training.affinity import elastic_deform

    labels = np.repeat(np.arange(64)[:, None] // 8, 64, axis=1)  # stripes 8 px wide
    labels = np.stack([labels, labels])
    warped_image, warped_labels = elastic_deform(np.random.default_rng(0),
                                                 labels.astype(np.float32), labels)
    assert warped_labels.shape == labels.shape and warped_labels.dtype == labels.dtype
    assert (warped_labels != labels).mean() > 0.05  # it did deform
    assert (np.round(warped_image) == warped_labels).mean() > 0.95  # in step with the image
    np.testing.assert_array_equal(warped_labels[0], warped_labels[1])  # same in every section
