"""A small anisotropy-aware 3D U-Net, the architecture of the built-in learned models."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: Pooling per level (z, y, x): in-plane only first, for stacks whose z steps are coarse.
ANISOTROPIC_POOLS = ((1, 2, 2), (1, 2, 2), (2, 2, 2))


def build_unet(
    in_channels: int = 1,
    out_channels: int = 1,
    width: int = 16,
    pools: Sequence[Sequence[int]] = ANISOTROPIC_POOLS,
    kernels: Sequence[Sequence[int]] | None = None,
) -> Any:
    """A U-Net of ``len(pools) + 1`` levels: two conv + ReLU per level, width doubling.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and of the output.
    width
        Channels of the finest level; each coarser level doubles them.
    pools
        Max-pooling factors (z, y, x) between successive levels, finest first.
    kernels
        Each level's convolution size, ``len(pools) + 1`` odd triples; None: 3×3×3 everywhere.
        ``(1, 3, 3)`` at the fine levels of an anisotropic stack keeps the fine levels in-plane,
        where the detail is.

    Returns
    -------
    torch.nn.Module
        Maps ``(B, in_channels, Z, Y, X)`` to logits ``(B, out_channels, Z, Y, X)``; Z, Y and X
        must be multiples of `size_multiple` (``pools``).
    """
    import torch
    from torch import nn

    sizes = [tuple(k) for k in kernels] if kernels else [(3, 3, 3)] * (len(pools) + 1)

    def block(c_in: int, c_out: int, level: int) -> nn.Sequential:
        padding = tuple(k // 2 for k in sizes[level])
        return nn.Sequential(
            nn.Conv3d(c_in, c_out, sizes[level], padding=padding),
            nn.ReLU(inplace=True),
            nn.Conv3d(c_out, c_out, sizes[level], padding=padding),
            nn.ReLU(inplace=True),
        )

    class UNet3D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = [width * 2**i for i in range(len(pools) + 1)]
            self.down = nn.ModuleList(
                [block(in_channels, widths[0], 0)]
                + [block(widths[i], widths[i + 1], i + 1) for i in range(len(pools))]
            )
            self.pools = nn.ModuleList([nn.MaxPool3d(tuple(p)) for p in pools])
            self.ups = nn.ModuleList(
                [
                    nn.ConvTranspose3d(widths[i + 1], widths[i], tuple(p), stride=tuple(p))
                    for i, p in enumerate(pools)
                ]
            )
            self.up_blocks = nn.ModuleList(
                [block(2 * widths[i], widths[i], i) for i in range(len(pools))]
            )
            self.head = nn.Conv3d(widths[0], out_channels, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for i, down in enumerate(self.down):
                x = down(x)
                if i < len(self.pools):
                    skips.append(x)
                    x = self.pools[i](x)
            for i in reversed(range(len(self.pools))):
                x = self.up_blocks[i](torch.cat([self.ups[i](x), skips[i]], dim=1))
            return self.head(x)

    return UNet3D()


def size_multiple(pools: Sequence[Sequence[int]] = ANISOTROPIC_POOLS) -> tuple[int, int, int]:
    """Every input size must be a multiple of the product of the poolings.

    Parameters
    ----------
    pools
        Pooling factors (z, y, x) per level, as given to `build_unet`.

    Returns
    -------
    tuple of int
        The multiple per axis (z, y, x).

    Examples
    --------
    >>> size_multiple(((1, 2, 2), (1, 2, 2), (2, 2, 2)))
    (2, 8, 8)
    """
    return tuple(math.prod(p[axis] for p in pools) for axis in range(3))  # type: ignore[return-value]


def receptive_field(
    pools: Sequence[Sequence[int]] = ANISOTROPIC_POOLS,
    kernels: Sequence[Sequence[int]] | None = None,
    convs_per_level: int = 2,
) -> tuple[int, int, int]:
    """Exact receptive-field radius of a `build_unet` network, per axis, in input voxels.

    An output voxel depends on the input voxels within this distance of it, and on no others:
    a tile whose halo is at least this (and whose origin lies on the pooling grid, a multiple of
    `size_multiple`) gives the same core output as the whole volume. The radius is the largest
    over every position of a voxel within a pooling cell (the U-Net's output is only
    shift-equivariant by whole cells), through both the skip connections and the deepest
    level: ``convs_per_level`` convolutions per level going down and up, max-pooling, and
    transposed convolutions of kernel and stride equal to the pooling.

    Parameters
    ----------
    pools
        Pooling factors (z, y, x) per level, finest first, as given to `build_unet`.
    kernels
        Each level's convolution size, ``len(pools) + 1`` odd triples; None: 3×3×3 everywhere.
    convs_per_level
        Convolutions in each level's block (two in `build_unet`).

    Returns
    -------
    tuple of int
        Radius (z, y, x) in input voxels.

    Examples
    --------
    >>> receptive_field(((1, 2, 2), (1, 2, 2), (2, 2, 2)))  # spine-2p
    (17, 51, 51)
    >>> receptive_field(((1, 2, 2),) * 3, ((1, 3, 3),) * 3 + ((3, 3, 3),))  # em-affinity
    (2, 51, 51)
    >>> receptive_field((), ((5, 3, 1),), convs_per_level=1)  # one convolution
    (2, 1, 0)
    """
    n_levels = len(pools) + 1
    sizes = [tuple(k) for k in kernels] if kernels else [(3, 3, 3)] * n_levels
    if len(sizes) != n_levels:
        raise ValueError(f"{n_levels} levels need {n_levels} kernels, got {len(sizes)}")
    return tuple(  # type: ignore[return-value]
        _axis_radius(
            [int(p[axis]) for p in pools], [convs_per_level * (k[axis] // 2) for k in sizes]
        )
        for axis in range(3)
    )


def covering_halo(
    pools: Sequence[Sequence[int]] = ANISOTROPIC_POOLS,
    kernels: Sequence[Sequence[int]] | None = None,
    shifted: Sequence[int] = (),
) -> list[int]:
    """Smallest package halo (z, y, x) that covers a `build_unet` network's receptive field.

    The `receptive_field` radius, plus one voxel on the ``shifted`` axes (0 = z), rounded up
    to `size_multiple` so tile origins stay on the pooling grid.

    Parameters
    ----------
    pools, kernels
        As given to `build_unet`.
    shifted
        Axes whose outputs are shifted by a voxel after test-time flipping back (affinities).

    Returns
    -------
    list of int
        Halo per axis, in model voxels.

    Examples
    --------
    >>> covering_halo(((1, 2, 2), (1, 2, 2), (2, 2, 2)))  # spine-2p
    [18, 56, 56]
    """
    radius = receptive_field(pools, kernels)
    multiple = size_multiple(pools)
    return [
        -(-(r + (axis in shifted)) // m) * m
        for axis, (r, m) in enumerate(zip(radius, multiple, strict=True))
    ]


def _axis_radius(pool: Sequence[int], conv: Sequence[int]) -> int:
    """`receptive_field` along one axis: poolings per level, and each level's conv reach."""

    def down(level: int, lo: int, hi: int) -> tuple[int, int]:
        """Input interval behind ``[lo, hi]`` of the down block's output at ``level``."""
        lo, hi = lo - conv[level], hi + conv[level]
        if level == 0:
            return lo, hi
        p = pool[level - 1]  # max-pooling: one cell reads p finer cells
        return down(level - 1, lo * p, hi * p + p - 1)

    def up(level: int, lo: int, hi: int) -> tuple[int, int]:
        """Input interval behind ``[lo, hi]`` of the up block's output at ``level``."""
        lo, hi = lo - conv[level], hi + conv[level]
        skip = down(level, lo, hi)
        p = pool[level]  # transposed conv of stride p: one coarse cell per fine voxel
        coarse = (lo // p, hi // p)
        deep = up(level + 1, *coarse) if level + 1 < len(pool) else down(level + 1, *coarse)
        return min(skip[0], deep[0]), max(skip[1], deep[1])

    widest = 0
    for x in range(math.prod(pool)):  # every position within the coarsest cell
        lo, hi = up(0, x, x) if pool else down(0, x, x)
        widest = max(widest, x - lo, hi - x)
    return widest


def conv_flops(module: Any, input_shape: Sequence[int]) -> int:
    """Floating-point operations of one forward pass (2 per multiply-add of every conv).

    Parameters
    ----------
    module
        A torch module, e.g. `build_unet`'s; its ``Conv3d`` and ``ConvTranspose3d`` layers count.
    input_shape
        Shape ``(B, C, Z, Y, X)`` of the zero input it is run on once.

    Returns
    -------
    int
        The operation count of the convolutions (other layers are not counted).
    """
    import torch
    from torch import nn

    total = 0

    def count(layer: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv3d):
            per_out = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
            total += 2 * per_out * output.numel()
        elif isinstance(layer, nn.ConvTranspose3d):
            per_in = layer.out_channels // layer.groups * math.prod(layer.kernel_size)
            total += 2 * per_in * _inputs[0].numel()

    hooks = [
        m.register_forward_hook(count)
        for m in module.modules()
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d)
    ]
    with torch.no_grad():
        module(torch.zeros(*input_shape))
    for hook in hooks:
        hook.remove()
    return total
