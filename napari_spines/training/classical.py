"""The field's classical spine detector, difference of Gaussians, as a fixed-weight network.

Shipped as the built-in model ``spine-dog`` so that it runs through the same engine, widget and
command line as the learned models, and can be compared with them on the same data.

Build (needs the ``torch`` extra)::

    python -m napari_spines.training.classical napari_spines/models/builtin/spine-dog
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: Voxel size the detector runs at: xy downsampled 2× from the usual 0.12 µm two-photon pixels.
VOXEL_SIZE_UM = (1.0, 0.24, 0.24)
#: Inner Gaussian (µm): about a spine head's radius in xy, the optical section in z.
SIGMA_SMALL_UM = (0.9, 0.35, 0.35)
#: Outer Gaussian: 1.6× the inner one, the usual DoG ratio approximating a Laplacian of Gaussian.
SIGMA_RATIO = 1.6


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    """Normalised 1D Gaussian over ±3σ (at least one tap each side).

    Parameters
    ----------
    sigma_px
        Standard deviation in voxels (> 0).

    Returns
    -------
    numpy.ndarray
        float32 taps, ``2 * max(1, ceil(3 * sigma_px)) + 1`` of them, summing to 1.

    Examples
    --------
    >>> k = gaussian_kernel(0.3)  # narrow: the one tap each side is kept
    >>> len(k), [round(float(t), 3) for t in k]
    (3, [0.004, 0.992, 0.004])
    """
    radius = max(1, math.ceil(3 * sigma_px))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma_px) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def sigmas_px(scale: float = 1.0) -> tuple[float, float, float]:
    """The inner (``scale=1``) or outer (``scale=SIGMA_RATIO``) sigma in model voxels.

    Parameters
    ----------
    scale
        Factor on `SIGMA_SMALL_UM` (µm).

    Returns
    -------
    tuple of float
        Sigma (z, y, x) in voxels of `VOXEL_SIZE_UM`.

    Examples
    --------
    >>> [round(s, 3) for s in sigmas_px()]
    [0.9, 1.458, 1.458]
    >>> [round(s, 3) for s in sigmas_px(SIGMA_RATIO)]
    [1.44, 2.333, 2.333]
    """
    return tuple(s * scale / v for s, v in zip(SIGMA_SMALL_UM, VOXEL_SIZE_UM, strict=True))


def halo_px() -> tuple[int, int, int]:
    """Receptive-field radius of the outer Gaussian, per axis."""
    return tuple(len(gaussian_kernel(s)) // 2 for s in sigmas_px(SIGMA_RATIO))


def build_network() -> Any:
    """A torch module: separable inner blur minus separable outer blur, zero-padded."""
    import torch

    class SeparableBlur(torch.nn.Module):
        def __init__(self, sigmas: tuple[float, float, float]) -> None:
            super().__init__()
            self.convs = torch.nn.ModuleList()
            for axis, sigma in enumerate(sigmas):
                kernel = torch.from_numpy(gaussian_kernel(sigma))
                size = [1, 1, 1]
                size[axis] = len(kernel)
                conv = torch.nn.Conv3d(
                    1, 1, tuple(size), padding=tuple(s // 2 for s in size), bias=False
                )
                conv.weight.data = kernel.reshape(1, 1, *size)
                conv.weight.requires_grad_(False)
                self.convs.append(conv)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for conv in self.convs:
                x = conv(x)
            return x

    class DifferenceOfGaussians(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = SeparableBlur(sigmas_px(1.0))
            self.outer = SeparableBlur(sigmas_px(SIGMA_RATIO))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) - self.outer(x)

    return DifferenceOfGaussians().eval()


def spec() -> dict:
    """model.yaml content of ``spine-dog`` (weights are added on export)."""
    halo = halo_px()
    return {
        "format_version": 1,
        "name": "spine-dog",
        "version": "1.0.0",
        "task": "spine-detection",
        "description": "Difference-of-Gaussians blob response: the classical spine-head "
        "detector, as a baseline for the learned models (not a probability).",
        "license": "BSD-3-Clause",
        "authors": ["napari-spines developers"],
        "training": {
            "data": [],
            "command": "python -m napari_spines.training.classical FOLDER",
            "base_model": None,
            "fine_tune_data": [],
        },
        "input": {
            "axes": "zyx",
            "channels": 1,
            "voxel_size_um": list(VOXEL_SIZE_UM),
            "normalisation": {"kind": "percentile", "low": 1.0, "high": 99.8},
        },
        "tiling": {"tile": [80, 128, 128], "multiple": [1, 1, 1], "halo": list(halo)},
        "outputs": [
            {
                "name": "heatmap",
                "channels": 1,
                "description": "inner minus outer Gaussian blur of the normalised stack; "
                "spine heads are local maxima",
            }
        ],
        # the best mean F1 on rr30a_tp0 and tp1 over 0.01-0.12, through napari-spines detect
        "postprocessing": {"threshold": 0.03, "min_distance_um": 1.0},
        "metrics": {},
    }


def main(argv: list[str] | None = None) -> int:
    """Export ``spine-dog`` into the folder given as the only argument.

    Parameters
    ----------
    argv
        Command-line arguments: the package folder only; None: ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 once the package is written, 2 (after printing the usage) for any other
        number of arguments.
    """
    from napari_spines.training.export import export_package

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__)
        return 2
    folder = export_package(build_network(), Path(args[0]), spec(), (1, 1, 16, 64, 64))
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
