"""Register one imaging session's stack onto the next: a translation, then a smooth deformation.

Both stacks are normalised by their percentiles and averaged down to a grid of about
``grid_um`` (0.5 µm by default) in y and x. Phase correlation (`skimage.registration.
phase_cross_correlation`) finds the 3D translation; optical flow (`skimage.registration.
optical_flow_ilk`, smoothed by a Gaussian of a few µm) then follows what moved locally. On
rr30a the deformation lowers the median distance between a spine and its tracked partner from
1.33 to 1.01 µm (tp0 → tp1) and from 1.34 to 1.19 µm (tp1 → tp2); docs/sessions.md has the
table and the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_spines.progress import ProgressCallback, raise_if_cancelled

#: Spacing (µm) in y and x of the grid the stacks are registered on.
GRID_UM = 0.5
#: Window radius of the optical flow and the Gaussian that smooths it, in µm.
FLOW_WINDOW_UM = 5.0
SMOOTHING_UM = 5.0


@dataclass(frozen=True)
class Registration:
    """Maps positions (µm) in one session's stack to where they are in the next one's.

    A position ``p`` goes to ``p + shift_um``, then moves by the flow sampled there. The flow
    is ``(3, Z, Y, X)`` displacements in µm on the next stack's grid of spacing ``grid_um``;
    None means a translation only.
    """

    shift_um: tuple[float, float, float]
    flow_um: np.ndarray | None = None
    grid_um: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def apply(self, points_um: np.ndarray) -> np.ndarray:
        """The places in the second stack of positions in the first.

        Parameters
        ----------
        points_um
            ``(N, 3)`` positions (z, y, x) in µm in the first stack.

        Returns
        -------
        numpy.ndarray
            ``(N, 3)`` positions in µm in the second stack.
        """
        moved = np.asarray(points_um, dtype=float).reshape(-1, 3) + np.asarray(self.shift_um)
        if self.flow_um is None or len(moved) == 0:
            return moved
        where = (moved / np.asarray(self.grid_um)).T
        return moved + np.stack(
            [ndi.map_coordinates(axis, where, order=1, mode="nearest") for axis in self.flow_um],
            axis=1,
        )

    def then(self, other: Registration) -> ComposedRegistration:
        """Apply this registration, then ``other`` (session t → t+1 → t+2).

        Parameters
        ----------
        other
            The registration from this one's second stack onwards.

        Returns
        -------
        ComposedRegistration
        """
        return ComposedRegistration((self, other))


@dataclass(frozen=True)
class ComposedRegistration:
    """Several registrations applied one after another."""

    steps: tuple[Registration | ComposedRegistration, ...]

    def apply(self, points_um: np.ndarray) -> np.ndarray:
        """The places in the last stack of positions in the first.

        Parameters
        ----------
        points_um
            ``(N, 3)`` positions (z, y, x) in µm in the first stack.

        Returns
        -------
        numpy.ndarray
            ``(N, 3)`` positions in µm in the last stack.
        """
        moved = np.asarray(points_um, dtype=float).reshape(-1, 3)
        for step in self.steps:
            moved = step.apply(moved)
        return moved

    def then(self, other: Registration | ComposedRegistration) -> ComposedRegistration:
        """Apply these registrations, then ``other``.

        Parameters
        ----------
        other
            The registration from this one's last stack onwards.

        Returns
        -------
        ComposedRegistration
        """
        return ComposedRegistration((*self.steps, other))


def register_sessions(
    previous: np.ndarray,
    current: np.ndarray,
    voxel_size_um: Sequence[float],
    deformable: bool = True,
    grid_um: float = GRID_UM,
    progress: ProgressCallback | None = None,
) -> Registration:
    """Register ``previous`` onto ``current`` (two ``ZYX`` stacks with the same voxel size).

    Parameters
    ----------
    previous, current
        The two sessions' stacks; their shapes may differ.
    voxel_size_um
        Voxel size (z, y, x) in µm of both.
    deformable
        Follow local motion with optical flow after the translation.
    grid_um
        Spacing in µm the stacks are averaged down to before registering (no axis is made
        finer than it is).
    progress
        ``(done, total)`` callback; may raise `Cancelled`.

    Returns
    -------
    Registration
        Maps positions in µm in ``previous`` to ``current``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> stack = ndi.gaussian_filter(rng.random((20, 64, 64)), 2)
    >>> moved = np.roll(stack, (2, -3, 5), axis=(0, 1, 2))
    >>> found = register_sessions(stack, moved, (1.0, 0.5, 0.5), deformable=False)
    >>> np.round(found.shift_um, 1).tolist()
    [2.0, -1.5, 2.5]
    """
    from skimage.registration import optical_flow_ilk, phase_cross_correlation

    voxel = np.asarray(voxel_size_um, dtype=float)
    if previous.ndim != 3 or current.ndim != 3:
        raise ValueError(f"sessions must be ZYX stacks, got {previous.ndim}D and {current.ndim}D")
    factors = np.maximum(1, np.round(grid_um / voxel)).astype(int)
    grid = voxel * factors
    report = progress or (lambda done, total: None)
    report(0, 3)
    a, b = (_normalised_small(stack, factors) for stack in (previous, current))
    shape = np.maximum(a.shape, b.shape)
    a, b = (np.pad(x, [(0, n - s) for n, s in zip(shape, x.shape, strict=True)]) for x in (a, b))
    raise_if_cancelled(progress)
    shift, _, _ = phase_cross_correlation(b, a, upsample_factor=4, normalization=None)
    report(1, 3)
    translation = tuple(float(s) for s in shift * grid)
    if not deformable:
        report(3, 3)
        return Registration(translation, None, tuple(grid))
    raise_if_cancelled(progress)
    shifted = ndi.shift(a, shift, order=1)
    radius = max(1, round(FLOW_WINDOW_UM / grid[1:].mean()))
    flow = optical_flow_ilk(shifted, b, radius=radius, prefilter=False)
    report(2, 3)
    sigma = SMOOTHING_UM / grid
    flow_um = np.stack([ndi.gaussian_filter(f, sigma) * g for f, g in zip(flow, grid, strict=True)])
    report(3, 3)
    return Registration(translation, flow_um.astype(np.float32), tuple(grid))


def _normalised_small(stack: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``stack`` averaged down by ``factors`` and scaled to [0, 1] by its 1-99.8 percentiles."""
    from skimage.transform import downscale_local_mean

    small = downscale_local_mean(np.asarray(stack, dtype=np.float32), tuple(factors))
    low, high = np.percentile(small, [1.0, 99.8])
    return np.clip((small - low) / max(high - low, 1e-6), 0, 1).astype(np.float32)
