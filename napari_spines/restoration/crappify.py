"""Crappifiers: make a good stack as bad as a fast or gentle acquisition, for training pairs.

As in PSSR (Fang et al. 2021), a restoration model learns from pairs (crappified, good); the
crappifier must be at least as bad as the real low-quality data, or the model fails on it. Every
function here is deterministic for a given ``seed``.

- Two-photon (`TwoPhotonCrappifier`): blur, photon thinning (Poisson at a fraction of the
  photons), Gaussian read noise, and optionally keeping every k-th slice (z undersampling).
- EM (`EMCrappifier`): the detector's blur, downsampling by an integer factor in y and x,
  Poisson (electron dose) and Gaussian noise, lower contrast, and scan-line offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class TwoPhotonCrappifier:
    """Fewer photons, read noise, blur and z undersampling of a two-photon stack.

    Parameters
    ----------
    photon_fraction
        Fraction of the photons kept: counts ``Poisson(fraction * photons_per_level * value)``.
    photons_per_level
        Photons per grey level assumed in the good stack (1 for photon-counting detectors).
    read_noise
        Standard deviation of the Gaussian read noise, in grey levels of the good stack.
    blur_um
        Standard deviation of an extra Gaussian blur ``(z, y, x)`` in µm (0: none).
    z_step
        Keep every ``z_step``-th slice (1: all).
    """

    photon_fraction: float = 0.1
    photons_per_level: float = 1.0
    read_noise: float = 2.0
    blur_um: tuple[float, float, float] = (0.0, 0.1, 0.1)
    z_step: int = 1

    @property
    def scale(self) -> tuple[int, int, int]:
        """Good voxels per crappified voxel along ``(z, y, x)``."""
        return (self.z_step, 1, 1)

    def __call__(
        self, stack: np.ndarray, voxel_size_um: Sequence[float], seed: int = 0
    ) -> np.ndarray:
        """The crappified ``(Z, Y, X)`` stack, float32 in the good stack's grey levels.

        Parameters
        ----------
        stack
            Good ``(Z, Y, X)`` stack (any real dtype).
        voxel_size_um
            Its voxel size ``(z, y, x)`` in µm (for the blur).
        seed
            Seed of the noise.

        Returns
        -------
        numpy.ndarray
            float32, ``(ceil(Z / z_step), Y, X)``, not below 0.
        """
        rng = np.random.default_rng(seed)
        image = _blurred(np.asarray(stack, np.float32), self.blur_um, voxel_size_um)
        image = image[:: self.z_step]
        photons = self.photon_fraction * self.photons_per_level
        counts = rng.poisson(np.clip(image, 0, None) * photons).astype(np.float32)
        image = counts / photons + rng.normal(0, self.read_noise, image.shape).astype(np.float32)
        return np.clip(image, 0, None)


@dataclass(frozen=True)
class EMCrappifier:
    """A fast EM scan: large pixels, the detector's blur, shot and read noise, scan lines.

    Parameters
    ----------
    factor
        Good pixels per crappified pixel in y and x (an integer ≥ 1).
    blur_pixels
        Standard deviation of the detector's Gaussian blur in crappified pixels, applied before
        the pixels are averaged.
    dose
        Electrons per grey level at the crappified pixel: Poisson noise ``Poisson(dose * v)``.
    read_noise
        Standard deviation of Gaussian noise, in grey levels.
    contrast
        The image is squeezed towards its mean by this factor (1: unchanged).
    line_noise
        Standard deviation of an offset added to each scan line (row), in grey levels.
    """

    factor: int = 4
    blur_pixels: float = 0.5
    dose: float = 0.5
    read_noise: float = 4.0
    contrast: float = 0.8
    line_noise: float = 3.0

    @property
    def scale(self) -> tuple[int, int, int]:
        """Good voxels per crappified voxel along ``(z, y, x)``."""
        return (1, self.factor, self.factor)

    def __call__(
        self, stack: np.ndarray, voxel_size_um: Sequence[float] = (1, 1, 1), seed: int = 0
    ) -> np.ndarray:
        """The crappified ``(Z, Y, X)`` stack, float32 in the good stack's grey levels.

        Parameters
        ----------
        stack
            Good ``(Z, Y, X)`` stack (any real dtype); Y and X are cropped to multiples of
            ``factor``.
        voxel_size_um
            Unused (the blur is in pixels); accepted so every crappifier is called alike.
        seed
            Seed of the noise.

        Returns
        -------
        numpy.ndarray
            float32 ``(Z, Y // factor, X // factor)``, not below 0.
        """
        rng = np.random.default_rng(seed)
        f = int(self.factor)
        image = np.asarray(stack, np.float32)
        z, y, x = image.shape
        image = image[:, : y - y % f, : x - x % f]
        sigma = self.blur_pixels * f
        if sigma > 0:
            image = ndimage.gaussian_filter(image, (0, sigma, sigma), mode="reflect")
        image = image.reshape(z, y // f, f, x // f, f).mean(axis=(2, 4))
        mean = image.mean()
        image = mean + (image - mean) * self.contrast
        counts = rng.poisson(np.clip(image, 0, None) * self.dose).astype(np.float32)
        image = counts / self.dose + rng.normal(0, self.read_noise, image.shape).astype(np.float32)
        image += rng.normal(0, self.line_noise, (z, image.shape[1], 1)).astype(np.float32)
        return np.clip(image, 0, None)


Crappifier = TwoPhotonCrappifier | EMCrappifier

#: The presets of ``napari-spines crappify --preset``.
PRESETS: dict[str, Crappifier] = {
    "2p-low-photon": TwoPhotonCrappifier(),
    "2p-very-low-photon": TwoPhotonCrappifier(photon_fraction=0.03, read_noise=3.0),
    "em-4x": EMCrappifier(),
    "em-2x": EMCrappifier(factor=2),
}


def preset(name: str, **overrides: Any) -> Crappifier:
    """A preset crappifier, with any of its parameters overridden.

    Parameters
    ----------
    name
        A key of `PRESETS`.
    **overrides
        Parameters of that crappifier to change (None values are ignored).

    Returns
    -------
    TwoPhotonCrappifier or EMCrappifier

    Raises
    ------
    ValueError
        An unknown preset, or a parameter the preset's crappifier does not have.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    base = PRESETS[name]
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - set(base.__dataclass_fields__)
    if unknown:
        raise ValueError(f"preset {name!r} has no parameter {', '.join(sorted(unknown))}")
    return replace(base, **given)


def crappified_voxel_size(
    crappifier: Crappifier, voxel_size_um: Sequence[float]
) -> tuple[float, float, float]:
    """The voxel size of a crappified stack: the good one times the crappifier's scale.

    Parameters
    ----------
    crappifier
        The crappifier used.
    voxel_size_um
        The good stack's ``(z, y, x)`` voxel size in µm.

    Returns
    -------
    tuple of float
    """
    return tuple(float(v) * s for v, s in zip(voxel_size_um, crappifier.scale, strict=True))  # type: ignore[return-value]


def _blurred(
    image: np.ndarray, blur_um: Sequence[float], voxel_size_um: Sequence[float]
) -> np.ndarray:
    """``image`` blurred by a Gaussian of ``blur_um`` (µm) per axis; itself when no blur."""
    sigma = [b / v for b, v in zip(blur_um, voxel_size_um, strict=True)]
    if not any(sigma):
        return image
    return ndimage.gaussian_filter(image, sigma, mode="reflect")
