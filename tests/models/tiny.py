"""Build tiny, deterministic model packages (ONNX + TorchScript + model.yaml) for tests.

`make_tiny_package` makes a 3-conv net (receptive-field radius 3 voxels, translation
equivariant); `make_unet_package` a small 3-D U-Net with two poolings, for benchmarks.
Both take a few seconds, most of it the first ONNX export of the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_spines.training.export import export_package
from napari_spines.training.unet import build_unet

Triple = tuple[int, int, int]


def _tiny_net(channels_in: int, channels_out: int, width: int = 4) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv3d(channels_in, width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv3d(width, width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv3d(width, channels_out, 3, padding=1),
    )


def spec_fields(
    *,
    name: str,
    task: str,
    channels_in: int,
    channels_out: int,
    voxel_size_um: Sequence[float],
    tile: Triple,
    multiple: Triple,
    halo: Triple,
) -> dict[str, Any]:
    """A model.yaml mapping (without weights) for a test model."""
    if task == "affinities":
        offsets = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]] * (channels_out // 3 + 1)
        output = {"name": "affinities", "channels": channels_out, "offsets": offsets[:channels_out]}
    else:
        output = {"name": "heatmap" if "detection" in task else "output", "channels": channels_out}
    return {
        "format_version": 1,
        "name": name,
        "version": "0.1.0",
        "task": task,
        "description": "Tiny test model with random weights.",
        "license": "MIT",
        "authors": ["napari-spines tests"],
        "training": {"data": ["none: random weights"]},
        "input": {
            "axes": "zyx",
            "channels": channels_in,
            "voxel_size_um": list(voxel_size_um),
            "normalisation": {"kind": "percentile", "low": 1.0, "high": 99.8},
        },
        "tiling": {"tile": list(tile), "multiple": list(multiple), "halo": list(halo)},
        "outputs": [{**output, "description": "random"}],
        "postprocessing": {"threshold": 0.5},
        "metrics": {},
    }


def make_tiny_package(
    folder: Path,
    *,
    channels_in: int = 1,
    channels_out: int = 1,
    task: str = "spine-detection",
    runtimes: Sequence[str] = ("onnx", "torch"),
    voxel_size_um: Sequence[float] = (1.0, 0.12, 0.12),
    tile: Triple = (16, 32, 32),
    multiple: Triple = (4, 4, 4),
    halo: Triple = (4, 4, 4),
    seed: int = 0,
    name: str = "tiny",
) -> Path:
    """Build a tiny 3-conv model package in ``folder`` and return ``folder``."""
    import torch

    torch.manual_seed(seed)
    net = _tiny_net(channels_in, channels_out)
    fields = spec_fields(
        name=name,
        task=task,
        channels_in=channels_in,
        channels_out=channels_out,
        voxel_size_um=voxel_size_um,
        tile=tile,
        multiple=multiple,
        halo=halo,
    )
    return export_package(net, folder, fields, (1, channels_in, *multiple), runtimes)


def make_unet_package(
    folder: Path,
    *,
    channels_in: int = 1,
    channels_out: int = 1,
    task: str = "spine-detection",
    runtimes: Sequence[str] = ("onnx", "torch"),
    voxel_size_um: Sequence[float] = (1.0, 0.12, 0.12),
    tile: Triple = (32, 128, 128),
    halo: Triple = (8, 16, 16),
    width: int = 8,
    seed: int = 0,
    name: str = "tiny-unet",
) -> Path:
    """Build a small 3-D U-Net package (two poolings, sizes a multiple of 4) in ``folder``."""
    import torch

    torch.manual_seed(seed)
    net = build_unet(channels_in, channels_out, width, pools=((2, 2, 2), (2, 2, 2)))
    fields = spec_fields(
        name=name,
        task=task,
        channels_in=channels_in,
        channels_out=channels_out,
        voxel_size_um=voxel_size_um,
        tile=tile,
        multiple=(4, 4, 4),
        halo=halo,
    )
    return export_package(net, folder, fields, (1, channels_in, 8, 16, 16), runtimes)


def make_edge_affinity_package(folder: Path, name: str = "edge-affinity") -> Path:
    """An affinity package without learning: bright voxels are cells, dark ones boundaries.

    The affinity of a voxel to its previous neighbour along each axis is
    ``sigmoid(12 · (min(both intensities) − 0.5))`` of the normalised image, so a synthetic
    stack whose cells are bright and whose boundaries are dark gets near-perfect affinities.
    """
    return make_long_range_edge_package(folder, [(-1, 0, 0), (0, -1, 0), (0, 0, -1)], name)


def make_long_range_edge_package(
    folder: Path, offsets: Sequence[Triple], name: str = "long-range-edge"
) -> Path:
    """`make_edge_affinity_package`'s rule at any backward ``offsets``, one channel each."""
    import torch

    reach = [max(-o[axis] for o in offsets) for axis in range(3)]

    class EdgeAffinities(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z, y, x_ = reach
            padded = torch.nn.functional.pad(x, (x_, 0, y, 0, z, 0), mode="replicate")
            depth, height, width = x.shape[2:]
            here = padded[:, :, z:, y:, x_:]
            back = [
                padded[:, :, z + a : z + a + depth, y + b : y + b + height, x_ + c : x_ + c + width]
                for a, b, c in offsets
            ]
            return torch.cat(
                [torch.sigmoid(12.0 * (torch.minimum(here, b) - 0.5)) for b in back], dim=1
            )

    fields = spec_fields(
        name=name,
        task="affinities",
        channels_in=1,
        channels_out=len(offsets),
        voxel_size_um=(0.05, 0.004, 0.004),
        tile=(8, 64, 64),
        multiple=(1, 1, 1),
        halo=(max(reach[0], 1), max(reach[1], 2), max(reach[2], 2)),
    )
    fields["outputs"][0]["offsets"] = [list(o) for o in offsets]
    return export_package(EdgeAffinities(), folder, fields, (1, 1, 4, 16, 16), ("onnx",))


def cells_stack(shape: Triple = (6, 64, 64), n_cells: int = 12, seed: int = 0) -> tuple[Any, Any]:
    """A (image uint8, labels uint32) pair: Voronoi cells, bright inside, dark 1-voxel walls.

    The ground-truth labels are 0 on the walls; each id is one 6-connected object.
    """
    import numpy as np
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint32)
    points = (rng.random((n_cells, 3)) * shape).astype(int)
    points[:, 0] = rng.integers(0, shape[0], n_cells)
    seeds[tuple(points.T)] = np.arange(1, n_cells + 1)
    nearest = ndi.distance_transform_edt(
        seeds == 0, sampling=(4, 1, 1), return_distances=False, return_indices=True
    )
    labels = seeds[tuple(nearest)]
    wall = np.zeros(shape, bool)
    for axis in range(3):
        wall |= np.diff(labels, axis=axis, prepend=labels.take([0], axis)) != 0
    # walls can cut a cell in two: number connected pieces, so every id is one object
    from skimage.measure import label

    labels = label(np.where(wall, 0, labels), connectivity=1).astype(np.uint32)
    image = np.where(wall, 30, 220).astype(np.uint8)
    return image, labels
