"""A tiny restoration package for tests: the ``restore-em`` recipe with an identity network.

The U-Net's final convolution is zeroed, so the residual network returns its input exactly:
restoring a stack then gives the input read onto the fine grid by linear interpolation, in
the input's grey levels, which tests the engine's resampling, normalisation and placement.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

#: Voxel size (µm) of the good EM stacks the package is "trained" on: its output's.
GOOD_VOXEL = (0.05, 0.004, 0.004)
#: Voxel size of the stacks it restores: 4× coarser in y and x (``em-4x``).
INPUT_VOXEL = (0.05, 0.016, 0.016)


def make_identity_em_package(folder: Path) -> Path:
    """Export the identity ``restore-em`` package (tile 1×128×128) into ``folder``."""
    import torch

    from napari_spines.restoration.train import RECIPES, residual, restoration_spec
    from napari_spines.training.export import export_package
    from napari_spines.training.unet import build_unet

    recipe = dataclasses.replace(RECIPES["em"], tile=(1, 128, 128))
    torch.manual_seed(0)
    net = build_unet(1, 1, width=2, pools=recipe.pools, kernels=recipe.kernels)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    spec = restoration_spec(recipe, GOOD_VOXEL)
    return export_package(residual(net), folder, spec, (1, 1, 1, 64, 64))


def make_identity_2p_package(folder: Path) -> Path:
    """Export an identity ``restore-2p`` package (no upscaling, TorchScript only) to ``folder``."""
    import torch

    from napari_spines.restoration.train import RECIPES, residual, restoration_spec
    from napari_spines.training.export import export_package
    from napari_spines.training.unet import build_unet

    recipe = dataclasses.replace(RECIPES["two-photon"], tile=(16, 128, 128))
    torch.manual_seed(0)
    net = build_unet(1, 1, width=2, pools=recipe.pools, kernels=recipe.kernels)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    spec = restoration_spec(recipe, (1.0, 0.12, 0.12))
    return export_package(residual(net), folder, spec, (1, 1, 8, 64, 64), runtimes=("torch",))
