"""Test-time flips: the network's outputs averaged over flipped copies of each tile.

The engine runs the network once per flip, one after another, so a tile's activations are held
once, not once per flip as when the flips are branches of one ONNX graph (spine-2p's tile:
2.1 GB → 0.8 GB, docs/performance.md). Affinities say how a voxel relates to its neighbour at an
offset; flipped back, that neighbour lies on the other side, so each such channel is shifted by
its offset to mean the same again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: Axis of a (batch, channel, z, y, x) array for each spatial axis letter.
AXIS = {"z": 2, "y": 3, "x": 4}


def flip_averaged(
    run: Callable[[np.ndarray], np.ndarray],
    batch: np.ndarray,
    flips: Sequence[str],
    offsets: Sequence[tuple[int, int, int] | None] | None = None,
) -> np.ndarray:
    """Mean of ``run(batch)`` and of ``run`` on each flip of ``batch``, flipped back.

    Parameters
    ----------
    run
        The network: float32 ``(B, C_in, z, y, x)`` to ``(B, C_out, z, y, x)``.
    batch
        float32 ``(B, C_in, z, y, x)``.
    flips
        Axes flipped together for each extra prediction, e.g. ``("x", "yx")``.
    offsets
        Per output channel, the ``(z, y, x)`` offset of an affinity channel, or None for a
        channel that needs no realignment; None: no channel does.

    Returns
    -------
    numpy.ndarray
        float32 ``(B, C_out, z, y, x)``: the average of ``len(flips) + 1`` predictions.

    Examples
    --------
    >>> x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 1, 4)
    >>> flip_averaged(lambda b: b * 2, x, ["x"]).ravel().tolist()
    [0.0, 2.0, 4.0, 6.0]
    """
    total = np.asarray(run(batch), dtype=np.float32).copy()
    for flip in flips:
        axes = tuple(AXIS[a] for a in flip)
        out = np.flip(np.asarray(run(np.ascontiguousarray(np.flip(batch, axes)))), axes)
        total += realign(out, axes, offsets)
    total /= len(flips) + 1
    return total


def realign(
    out: np.ndarray,
    axes: Sequence[int],
    offsets: Sequence[tuple[int, int, int] | None] | None,
) -> np.ndarray:
    """Shift each affinity channel of a flipped-back prediction by its offset on ``axes``.

    Parameters
    ----------
    out
        ``(B, C, z, y, x)`` prediction of a flipped input, flipped back.
    axes
        The flipped axes of ``out`` (2, 3, 4 for z, y, x).
    offsets
        Per channel, its ``(z, y, x)`` offset or None (see `flip_averaged`).

    Returns
    -------
    numpy.ndarray
        ``out`` when nothing moves, else a copy whose affinity channels moved by ``-offset``
        along each flipped axis, the edge plane repeated where the shift leaves a gap.

    Examples
    --------
    >>> a = np.arange(3, dtype=np.float32).reshape(1, 1, 1, 1, 3)
    >>> realign(a, [4], [(0, 0, -1)]).ravel().tolist()
    [0.0, 0.0, 1.0]
    """
    if offsets is None or not any(o is not None and any(o[a - 2] for a in axes) for o in offsets):
        return out
    out = np.array(out, dtype=np.float32)
    for channel, offset in enumerate(offsets):
        for axis in axes:
            step = 0 if offset is None else -int(offset[axis - 2])
            if step == 0:
                continue
            c = out[:, channel]
            n = c.shape[axis - 1]
            index = np.clip(np.arange(n) - step, 0, n - 1)
            out[:, channel] = np.take(c, index, axis=axis - 1)
    return out
