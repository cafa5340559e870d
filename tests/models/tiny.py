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
        torch.nn.Conv3d(channels_in, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(width, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(width, channels_out, 3, padding=1),
    )


def spec_fields(*, name: str, task: str, channels_in: int, channels_out: int,
                voxel_size_um: Sequence[float], tile: Triple, multiple: Triple,
                halo: Triple) -> dict[str, Any]:
    """A model.yaml mapping (without weights) for a test model."""
    if task == "affinities":
        offsets = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]] * (channels_out // 3 + 1)
        output = {"name": "affinities", "channels": channels_out,
                  "offsets": offsets[:channels_out]}
    else:
        output = {"name": "heatmap" if "detection" in task else "output",
                  "channels": channels_out}
    return {
        "format_version": 1, "name": name, "version": "0.1.0", "task": task,
        "description": "Tiny test model with random weights.", "license": "MIT",
        "authors": ["napari-spines tests"], "training": {"data": ["none: random weights"]},
        "input": {"axes": "zyx", "channels": channels_in, "voxel_size_um": list(voxel_size_um),
                  "normalisation": {"kind": "percentile", "low": 1.0, "high": 99.8}},
        "tiling": {"tile": list(tile), "multiple": list(multiple), "halo": list(halo)},
        "outputs": [{**output, "description": "random"}],
        "postprocessing": {"threshold": 0.5}, "metrics": {},
    }


def make_tiny_package(folder: Path, *, channels_in: int = 1, channels_out: int = 1,
                      task: str = "spine-detection", runtimes: Sequence[str] = ("onnx", "torch"),
                      voxel_size_um: Sequence[float] = (1.0, 0.12, 0.12),
                      tile: Triple = (16, 32, 32), multiple: Triple = (4, 4, 4),
                      halo: Triple = (4, 4, 4), seed: int = 0, name: str = "tiny") -> Path:
    """Build a tiny 3-conv model package in ``folder`` and return ``folder``."""
    import torch

    torch.manual_seed(seed)
    net = _tiny_net(channels_in, channels_out)
    fields = spec_fields(name=name, task=task, channels_in=channels_in, channels_out=channels_out,
                         voxel_size_um=voxel_size_um, tile=tile, multiple=multiple, halo=halo)
    return export_package(net, folder, fields, (1, channels_in, *multiple), runtimes)


def make_unet_package(folder: Path, *, channels_in: int = 1, channels_out: int = 1,
                      task: str = "spine-detection", runtimes: Sequence[str] = ("onnx", "torch"),
                      voxel_size_um: Sequence[float] = (1.0, 0.12, 0.12),
                      tile: Triple = (32, 128, 128), halo: Triple = (8, 16, 16), width: int = 8,
                      seed: int = 0, name: str = "tiny-unet") -> Path:
    """Build a small 3-D U-Net package (two poolings, sizes a multiple of 4) in ``folder``."""
    import torch

    torch.manual_seed(seed)
    net = build_unet(channels_in, channels_out, width, pools=((2, 2, 2), (2, 2, 2)))
    fields = spec_fields(name=name, task=task, channels_in=channels_in, channels_out=channels_out,
                         voxel_size_um=voxel_size_um, tile=tile, multiple=(4, 4, 4), halo=halo)
    return export_package(net, folder, fields, (1, channels_in, 8, 16, 16), runtimes)
