"""The 2D boundary recipe for EM: a per-section U-Net predicts cell interior, affinities follow.

The network sees each section on its own (1 × 3 × 3 convolutions at every level) and predicts
one channel: the logit that a pixel lies inside a cell, not on a boundary. Its package is still
an affinity model, so `segment` and the widgets run it unchanged: the affinity of a voxel to its
previous neighbour along an axis is the smaller of the two interior probabilities (in logits,
as the sigmoid keeps order). Training targets come from the same augmented crops as the
affinity recipe's (`random_crop`): a pixel is interior where it has affinity 1 to its four
in-plane neighbours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: 1 × 3 × 3 convolutions at every level of the U-Net (`build_unet`): no z context at all.
KERNELS_2D = ((1, 3, 3),) * 4


def interior_targets(affinities: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interior target and loss mask of a crop, from its affinities and their mask.

    Parameters
    ----------
    affinities, mask
        ``(3, Z, Y, X)`` z, y, x affinities to the previous neighbour and their loss mask
        (`random_crop`).

    Returns
    -------
    tuple of numpy.ndarray
        float32 ``(1, Z, Y, X)``: 1 where a pixel has affinity 1 to all four in-plane
        neighbours, and 1 where all four of those affinities are known (the crop's edge is
        masked out).

    Examples
    --------
    >>> from napari_spines.segmentation.affinities import labels_to_affinities
    >>> labels = np.array([[[1, 1, 1, 0, 2, 2, 2]] * 3])
    >>> aff = labels_to_affinities(labels)
    >>> target, known = interior_targets(aff, np.ones_like(aff))
    >>> target[0, 0, 1].astype(int).tolist(), known[0, 0, 1].astype(int).tolist()
    ([0, 1, 0, 0, 0, 1, 0], [1, 1, 1, 1, 1, 1, 0])
    """

    def with_next(a: np.ndarray, axis: int) -> np.ndarray:
        """``a`` and ``a`` one pixel on along ``axis`` (0 past the end), multiplied."""
        after = np.zeros_like(a)
        inner = [slice(None)] * a.ndim
        inner[axis] = slice(None, -1)
        ahead = [slice(None)] * a.ndim
        ahead[axis] = slice(1, None)
        after[tuple(inner)] = a[tuple(ahead)]
        return a * after

    target = with_next(affinities[1], 1) * with_next(affinities[2], 2)
    known = with_next(mask[1], 1) * with_next(mask[2], 2)
    return target[None].astype(np.float32), known[None].astype(np.float32)


def boundary_affinities(net: Any) -> Any:
    """``net`` (interior logits, 1 channel) as a module of z, y, x affinity logits.

    Parameters
    ----------
    net
        The torch U-Net, ``(B, 1, Z, Y, X)`` in and out.

    Returns
    -------
    torch.nn.Module
        ``(B, 1, Z, Y, X)`` → ``(B, 3, Z, Y, X)``: along each axis, the smaller logit of a voxel
        and its previous neighbour (the first plane is compared with itself).
    """
    import torch

    class BoundaryAffinities(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            interior = self.net(x)
            channels = []
            for dim in (2, 3, 4):
                n = interior.shape[dim]
                previous = torch.cat(
                    [interior.narrow(dim, 0, 1), interior.narrow(dim, 0, n - 1)], dim=dim
                )
                channels.append(torch.minimum(interior, previous))
            return torch.cat(channels, dim=1)

    return BoundaryAffinities(net)
