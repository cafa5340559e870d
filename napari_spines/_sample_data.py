"""Sample data for napari's File > Open Sample menu: synthetic stacks with their ground truth.

Generated from a fixed seed on request, so they work in any install and need no download.
"""

from __future__ import annotations

import numpy as np

from napari_spines.io.layers import LayerData, placement, spine_points_style
from napari_spines.synthetic import (
    EMSample,
    TwoPhotonSample,
    synthetic_em,
    synthetic_two_photon,
)


def two_photon_layer_data(sample: TwoPhotonSample, name: str = "two-photon") -> list[LayerData]:
    """Image and ground-truth spines (and tracks, for a time series) as layer data."""
    time = sample.image.ndim == 4
    axes = "TZYX" if time else "ZYX"
    place = placement(axes, sample.voxel_size_um)
    image_meta = {
        **place,
        "name": name,
        "colormap": "gray",
        "contrast_limits": robust_contrast_limits(sample.image),
        "metadata": {"axes": axes},
    }
    points_meta = {
        **place,
        "name": f"{name} spines (ground truth)",
        "features": {"id": sample.spine_ids},
        **spine_points_style(sample.voxel_size_um),
    }
    layers: list[LayerData] = [
        (sample.image, image_meta, "image"),
        (sample.spines, points_meta, "points"),
    ]
    if time:
        tracks = np.column_stack([sample.spine_ids, sample.spines])
        order = np.lexsort((tracks[:, 1], tracks[:, 0]))
        layers.append(
            (tracks[order], {**place, "name": f"{name} spine tracks", "tail_length": 5}, "tracks")
        )
    return layers


def em_layer_data(sample: EMSample, name: str = "EM") -> list[LayerData]:
    """EM image and its ground-truth instance labels as layer data."""
    meta = {
        **placement("ZYX", sample.voxel_size_um),
        "metadata": {"axes": "ZYX"},
    }
    return [
        (
            sample.image,
            {
                **meta,
                "name": name,
                "colormap": "gray",
                "contrast_limits": robust_contrast_limits(sample.image),
            },
            "image",
        ),
        (
            sample.labels,
            {**meta, "name": f"{name} labels (ground truth)", "opacity": 0.4},
            "labels",
        ),
    ]


def robust_contrast_limits(image: np.ndarray) -> tuple[float, float]:
    """0.5–99.95 percentiles: the dim shafts stay visible without saturating the heads."""
    low, high = np.percentile(image[:: max(1, image.shape[0] // 8)], [0.5, 99.95])
    return float(low), float(max(high, low + 1))


def two_photon() -> list[LayerData]:
    """A synthetic two-photon dendrite stack with its spine heads."""
    return two_photon_layer_data(synthetic_two_photon(seed=0))


def two_photon_sessions() -> list[LayerData]:
    """Three synthetic imaging sessions of the same dendrite, with spine tracks."""
    return two_photon_layer_data(
        synthetic_two_photon(shape=(24, 192, 192), n_timepoints=3, seed=1), "two-photon sessions"
    )


def em() -> list[LayerData]:
    """A synthetic EM volume with dense neuron labels."""
    return em_layer_data(synthetic_em(seed=0))
