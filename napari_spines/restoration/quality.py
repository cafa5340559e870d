"""Image quality of a restoration against the good stack: PSNR and SSIM (scikit-image)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quality:
    """PSNR (dB) and mean per-slice SSIM of a restored stack against the good one."""

    psnr: float
    ssim: float

    def row(self) -> dict[str, float]:
        """``{"psnr_db": ..., "ssim": ...}``, rounded for tables."""
        return {"psnr_db": round(self.psnr, 2), "ssim": round(self.ssim, 4)}


def quality(restored: np.ndarray, clean: np.ndarray) -> Quality:
    """PSNR over the whole stack and SSIM averaged over its ``Z`` slices.

    Both use the good stack's range (max − min) as the data range, so stacks of any dtype
    compare alike.

    Parameters
    ----------
    restored
        ``(Z, Y, X)`` or ``(Y, X)`` array, the shape of ``clean``.
    clean
        The good stack.

    Returns
    -------
    Quality

    Raises
    ------
    ValueError
        The shapes differ.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    restored = np.asarray(restored, np.float32)
    clean = np.asarray(clean, np.float32)
    if restored.shape != clean.shape:
        raise ValueError(f"shapes differ: restored {restored.shape}, clean {clean.shape}")
    data_range = float(clean.max() - clean.min()) or 1.0
    psnr = peak_signal_noise_ratio(clean, restored, data_range=data_range)
    slices = zip(np.atleast_3d(restored.T).T, np.atleast_3d(clean.T).T, strict=True)
    ssim = np.mean([structural_similarity(c, r, data_range=data_range) for r, c in slices])
    return Quality(float(psnr), float(ssim))
