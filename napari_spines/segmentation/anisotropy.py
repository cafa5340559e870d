"""How much deeper than wide a stack's voxels look, from the stack alone.

A file without a voxel size must not silently be taken for serial-section EM. Neighbouring
sections of an isotropic (FIB-SEM) stack are as alike as neighbouring pixels; those of a
serial-section stack (ISBI 2012: 50 nm sections of 4 nm pixels) are as alike as pixels about a
dozen apart. The semivariogram ``γ(d) = ½ mean((I(p + d) − I(p))²)`` measures this: the in-plane
distance at which γ grows to γ between neighbouring sections estimates the z step in pixels.
White noise adds the same amount to γ at every distance, so it does not move the estimate.

On the stacks here: ISBI 2012 13.5 (its voxels are 12.5 times deeper than wide), gala 1.0 (a
FIB-SEM-like volume), a synthetic EM stack of voxels 5 times deeper than wide 3.8.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The largest in-plane distance compared: stacks whose sections differ more are "≥ MAX_LAG".
MAX_LAG = 24
#: The centre of the stack that is measured, at most (Z, Y, X) voxels.
SAMPLE = (16, 256, 256)


def central_sample(data: Any, shape: tuple[int, int, int] = SAMPLE) -> np.ndarray:
    """The centre of a ``(Z, Y, X)`` stack, at most ``shape``, as float32 (numpy, dask, zarr).

    Parameters
    ----------
    data
        The stack.
    shape
        The largest sample.

    Returns
    -------
    numpy.ndarray
    """
    region = tuple(
        slice(max((n - s) // 2, 0), max((n - s) // 2, 0) + s)
        for n, s in zip(data.shape, shape, strict=True)
    )
    return np.asarray(data[region], np.float32)


def in_plane_semivariance(sample: np.ndarray, d: int) -> float:
    """γ at in-plane distance ``d``: half the mean squared difference, y and x averaged.

    Parameters
    ----------
    sample
        A ``(Z, Y, X)`` float stack, more than ``d`` pixels in y and x.
    d
        The distance in pixels.

    Returns
    -------
    float
    """
    along_x = np.mean(np.square(sample[:, :, d:] - sample[:, :, :-d]))
    along_y = np.mean(np.square(sample[:, d:] - sample[:, :-d]))
    return float(along_x + along_y) / 4


def estimate_anisotropy(data: Any, max_lag: int = MAX_LAG) -> float | None:
    """The z step of a stack in in-plane pixels, estimated from how alike its sections are.

    Parameters
    ----------
    data
        A ``(Z, Y, X)`` stack (numpy, dask or zarr); only its centre (`SAMPLE`) is read.
    max_lag
        The largest estimate: stacks whose neighbouring sections differ more than pixels this
        far apart get ``max_lag``.

    Returns
    -------
    float or None
        About 1 for isotropic voxels, about 13 for ISBI's; None for a single section or a
        constant stack, where nothing can be told.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> smooth = np.cumsum(np.cumsum(rng.normal(size=(8, 64, 64)), 1), 2)
    >>> estimate_anisotropy(smooth) > 5  # sections unrelated to each other
    True
    >>> print(estimate_anisotropy(smooth[:1]))
    None
    """
    if len(data.shape) != 3 or data.shape[0] < 2 or min(data.shape[1:]) < 3:
        return None
    sample = central_sample(data)
    gamma_z = float(np.mean(np.square(sample[1:] - sample[:-1]))) / 2
    if gamma_z == 0:
        return None
    before = 0.0
    lags = min(max_lag, min(sample.shape[1:]) - 1)
    for d in range(1, lags + 1):  # until γ reaches γ_z: ISBI's 14 distances, gala's one
        gamma = in_plane_semivariance(sample, d)
        if gamma >= gamma_z:
            return float(d - 1 + (gamma_z - before) / (gamma - before))
        before = gamma
    return float(lags)
