"""Classical restorations that a learned one must beat: interpolation, Gaussian, non-local means.

Each takes a crappified ``(Z, Y, X)`` stack and the crappifier's scale, and returns a stack on
the good grid (``scale`` times the shape), so every method is scored against the same voxels.
Parameters (the Gaussian's width, the non-local means' strength) are chosen by `choose` on
pairs kept apart from the ones reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from napari_spines.restoration.quality import quality

#: A baseline with its parameter: ``(crappy, scale, parameter) -> restored``.
Baseline = Callable[[np.ndarray, Sequence[int], float], np.ndarray]


def upsampled(crappy: np.ndarray, scale: Sequence[int], order: int = 1) -> np.ndarray:
    """``crappy`` on the good grid by spline interpolation of ``order`` (1 linear, 3 cubic).

    Voxel edges stay aligned, as in the tiled engine (`skimage.transform.resize`).

    Parameters
    ----------
    crappy
        ``(Z, Y, X)`` stack.
    scale
        Good voxels per crappy voxel along ``(z, y, x)``.
    order
        Spline order.

    Returns
    -------
    numpy.ndarray
        float32 of shape ``crappy.shape * scale``.
    """
    from skimage.transform import resize

    crappy = np.asarray(crappy, np.float32)
    if all(s == 1 for s in scale):
        return crappy
    shape = tuple(n * int(s) for n, s in zip(crappy.shape, scale, strict=True))
    return resize(crappy, shape, order=order, mode="edge", anti_aliasing=False).astype(np.float32)


def linear(crappy: np.ndarray, scale: Sequence[int], _: float = 0.0) -> np.ndarray:
    """Linear interpolation only (the input as it stands, for denoising).

    Parameters
    ----------
    crappy
        ``(Z, Y, X)`` crappified stack.
    scale
        Good voxels per crappy voxel along ``(z, y, x)``.
    _
        Unused (no parameter).

    Returns
    -------
    numpy.ndarray
        float32 on the good grid.
    """
    return upsampled(crappy, scale, 1)


def cubic(crappy: np.ndarray, scale: Sequence[int], _: float = 0.0) -> np.ndarray:
    """Cubic-spline interpolation (bicubic in each slice).

    Parameters
    ----------
    crappy
        ``(Z, Y, X)`` crappified stack.
    scale
        Good voxels per crappy voxel along ``(z, y, x)``.
    _
        Unused (no parameter).

    Returns
    -------
    numpy.ndarray
        float32 on the good grid.
    """
    return upsampled(crappy, scale, 3)


def gaussian(crappy: np.ndarray, scale: Sequence[int], sigma: float) -> np.ndarray:
    """A Gaussian of ``sigma`` good-grid voxels in y and x, after linear interpolation.

    Parameters
    ----------
    crappy
        ``(Z, Y, X)`` crappified stack.
    scale
        Good voxels per crappy voxel along ``(z, y, x)``.
    sigma
        Standard deviation in good-grid voxels.

    Returns
    -------
    numpy.ndarray
        float32 on the good grid.
    """
    from scipy import ndimage

    return ndimage.gaussian_filter(upsampled(crappy, scale, 1), (0, sigma, sigma), mode="reflect")


def nl_means(crappy: np.ndarray, scale: Sequence[int], strength: float) -> np.ndarray:
    """Non-local means per slice (``h = strength`` × the estimated noise), then cubic upsampling.

    Parameters
    ----------
    crappy
        ``(Z, Y, X)`` crappified stack.
    scale
        Good voxels per crappy voxel along ``(z, y, x)``.
    strength
        ``h`` in units of the slice's estimated noise (`noise_sigma`).

    Returns
    -------
    numpy.ndarray
        float32 on the good grid.
    """
    from skimage.restoration import denoise_nl_means

    crappy = np.asarray(crappy, np.float32)
    out = np.empty_like(crappy)
    for z, section in enumerate(crappy):
        sigma = noise_sigma(section)
        out[z] = denoise_nl_means(
            section, patch_size=5, patch_distance=6, h=strength * sigma, sigma=sigma, fast_mode=True
        )
    return upsampled(out, scale, 3)


def noise_sigma(section: np.ndarray) -> float:
    """Standard deviation of a slice's Gaussian noise, by Immerkær's (1996) Laplacian method.

    scikit-image's ``estimate_sigma`` needs PyWavelets, which napari-spines does not otherwise
    need; this estimate is three lines.

    Parameters
    ----------
    section
        ``(Y, X)`` image, at least 3 × 3.

    Returns
    -------
    float
    """
    from scipy import ndimage

    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = ndimage.convolve(np.asarray(section, np.float32), kernel)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).mean() / 6)


#: Each baseline and the parameters `choose` tries.
BASELINES: dict[str, tuple[Baseline, tuple[float, ...]]] = {
    "linear": (linear, (0.0,)),
    "cubic": (cubic, (0.0,)),
    "gaussian": (gaussian, (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)),
    "nl-means": (nl_means, (0.6, 0.8, 1.0, 1.2)),
}


def choose(
    baseline: str, pairs: Sequence[tuple[np.ndarray, np.ndarray]], scale: Sequence[int]
) -> float:
    """The parameter of ``baseline`` with the best mean PSNR on ``pairs`` (crappy, good).

    Parameters
    ----------
    baseline
        A key of `BASELINES`.
    pairs
        ``(crappy, good)`` stacks used for the choice only, never for the report.
    scale
        Good voxels per crappy voxel.

    Returns
    -------
    float
        The chosen parameter.
    """
    method, parameters = BASELINES[baseline]
    if len(parameters) == 1:
        return parameters[0]
    scores = {
        p: np.mean([quality(method(c, scale, p), g).psnr for c, g in pairs]) for p in parameters
    }
    return max(scores, key=lambda p: scores[p])
