"""Train a restoration model on pairs made by crappifying good stacks, and export its package.

Each training example is a random crop of a good stack, crappified with a fresh seed (so the
network never sees the same noise twice), read back onto the good grid by linear interpolation
exactly as the engine reads an input, and normalised with the statistics the engine will use
on a whole crappified stack. The network is a `build_unet` that predicts the correction to its
input (residual learning), trained on the squared error (what PSNR measures). Checkpoints are
chosen by PSNR on validation pairs, restored through `restore`, the path a user's stack takes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.inference import normalisation_stats, read_resampled, source_coords
from napari_spines.models.spec import Normalisation
from napari_spines.progress import ProgressCallback
from napari_spines.restoration.crappify import Crappifier, crappified_voxel_size, preset
from napari_spines.restoration.quality import quality
from napari_spines.training.export import TrainedModel, save_checkpoint

logger = logging.getLogger(__name__)

NORMALISATION = Normalisation(kind="percentile", low=1.0, high=99.8)


@dataclass(frozen=True)
class Recipe:
    """How one kind of restoration model is built and trained.

    Parameters
    ----------
    name, description
        The package's name and one line on what it does.
    preset
        The crappifier preset (`~napari_spines.restoration.crappify.PRESETS`) making the pairs.
    pools, kernels
        The U-Net's poolings and per-level kernels (`build_unet`).
    crop
        Training crop on the good grid ``(z, y, x)``; a multiple of the pooling and the scale.
    tile
        The package's default tile on the output grid.
    batch_size
        Crops per step.
    """

    name: str
    description: str
    preset: str
    pools: tuple[tuple[int, int, int], ...]
    kernels: tuple[tuple[int, int, int], ...]
    crop: tuple[int, int, int]
    tile: tuple[int, int, int]
    batch_size: int


#: The built-in restoration models, by modality.
RECIPES = {
    "two-photon": Recipe(
        "restore-2p",
        "Two-photon stacks imaged with few photons, denoised on the same grid: 3D U-Net "
        "predicting the correction to its input.",
        "2p-low-photon",
        ((1, 2, 2),) * 3,
        ((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)),
        (8, 96, 96),
        (24, 384, 384),
        4,
    ),
    "em": Recipe(
        "restore-em",
        "EM sections scanned with 4x larger pixels, restored to 4x finer pixels in y and x: "
        "2D U-Net on the input read onto the fine grid, predicting the correction to it.",
        "em-4x",
        ((1, 2, 2),) * 3,
        ((1, 3, 3),) * 4,
        (1, 128, 128),
        (1, 512, 512),
        8,
    ),
}


@dataclass(frozen=True)
class GoodStack:
    """A good stack to crop from, with the normalisation of its crappified whole."""

    image: np.ndarray
    voxel_size_um: tuple[float, float, float]
    offset: float
    gain: float


def good_stack(
    image: np.ndarray, voxel_size_um: Sequence[float], crappifier: Crappifier
) -> GoodStack:
    """Prepare a good ``(Z, Y, X)`` stack: float32, and the engine's statistics of its crappy form.

    Parameters
    ----------
    image
        The good stack.
    voxel_size_um
        Its voxel size in µm.
    crappifier
        The crappifier the pairs are made with.

    Returns
    -------
    GoodStack
    """
    image = np.asarray(image, np.float32)
    voxel = tuple(float(v) for v in voxel_size_um)
    offset, gain = normalisation_stats(crappifier(image, voxel, seed=0), NORMALISATION, False)
    return GoodStack(image, voxel, float(offset[0]), float(gain[0]))  # type: ignore[arg-type]


def on_good_grid(crappy: np.ndarray, scale: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """``crappy`` read onto the good grid ``shape`` as the engine reads it (linear, edges aligned).

    Parameters
    ----------
    crappy
        ``(Z, Y, X)`` crappified stack.
    scale
        Good voxels per crappy voxel.
    shape
        The good grid's shape.

    Returns
    -------
    numpy.ndarray
        float32 of ``shape``.
    """
    coords = [
        source_coords(np.arange(n, dtype=np.float64), float(s), m) if s != 1 else np.arange(n)
        for n, s, m in zip(shape, scale, crappy.shape, strict=True)
    ]
    return read_resampled(crappy, coords)


def training_example(
    stacks: Sequence[GoodStack],
    crappifier: Crappifier,
    crop: Sequence[int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One normalised ``(input, target, mask)`` example, each ``(1, *crop)``, with random flips.

    Parameters
    ----------
    stacks
        The good stacks (`good_stack`).
    crappifier
        Makes the input from the crop.
    crop
        Crop size on the good grid.
    rng
        Chooses the stack, the crop, the flips and the noise.

    Returns
    -------
    tuple of numpy.ndarray
        float32 input and target, and an all-ones mask (the loss weights every voxel).
    """
    stack = stacks[rng.integers(len(stacks))]
    size = [min(c, n) for c, n in zip(crop, stack.image.shape, strict=True)]
    start = [rng.integers(n - c + 1) for c, n in zip(size, stack.image.shape, strict=True)]
    good = stack.image[tuple(slice(s, s + c) for s, c in zip(start, size, strict=True))]
    for axis in (1, 2):
        if rng.random() < 0.5:
            good = np.flip(good, axis)
    crappy = crappifier(good, stack.voxel_size_um, seed=int(rng.integers(2**31)))
    image = on_good_grid(crappy, crappifier.scale, good.shape)
    good = good[tuple(slice(0, n) for n in image.shape)]
    norm = [(a - stack.offset) * stack.gain for a in (image, good)]
    return norm[0][None], norm[1][None].astype(np.float32), np.ones((1, *image.shape), np.float32)


def squared_error(prediction: Any, target: Any, mask: Any) -> Any:
    """Mean squared error over the masked voxels: what PSNR measures.

    Parameters
    ----------
    prediction, target, mask
        Torch tensors of one shape.

    Returns
    -------
    torch.Tensor
        The scalar loss.
    """
    return ((prediction - target) ** 2 * mask).sum() / mask.sum().clamp(min=1)


def residual(net: Any) -> Any:
    """``net`` predicting a correction: its module returns ``x + net(x)``.

    Parameters
    ----------
    net
        A torch module mapping ``(B, 1, Z, Y, X)`` to ``(B, 1, Z, Y, X)``.

    Returns
    -------
    torch.nn.Module
    """
    import torch

    class Residual(torch.nn.Module):
        """The input plus the network's correction of it."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.net(x)

    return Residual()


def restoration_spec(
    recipe: Recipe,
    voxel_size_um: Sequence[float],
    name: str | None = None,
    metrics: dict | None = None,
    training: dict | None = None,
) -> dict:
    """model.yaml content of a restoration model (weights added on export).

    Parameters
    ----------
    recipe
        The model's recipe.
    voxel_size_um
        Voxel size of the good stacks it was trained on (its output's).
    name
        Package name; default the recipe's.
    metrics, training
        The ``metrics`` and ``training`` mappings to record.

    Returns
    -------
    dict
    """
    from napari_spines.training.unet import covering_halo, size_multiple

    crappifier = preset(recipe.preset)
    return {
        "format_version": 1,
        "name": name or recipe.name,
        "version": "0.1.0",
        "task": "restoration",
        "description": recipe.description,
        "license": "BSD-3-Clause",
        "authors": ["napari-spines developers"],
        "training": training or {},
        "input": {
            "axes": "zyx",
            "channels": 1,
            "voxel_size_um": list(crappified_voxel_size(crappifier, voxel_size_um)),
            "normalisation": {"kind": "percentile", "low": NORMALISATION.low, "high": 99.8},
        },
        "tiling": {
            "tile": list(recipe.tile),
            "multiple": list(size_multiple(recipe.pools)),
            "halo": covering_halo(recipe.pools, recipe.kernels),
        },
        "outputs": [
            {
                "name": "restored",
                "channels": 1,
                "description": "restored intensities (normalised; the engine maps them back)",
                "voxel_size_um": [float(v) for v in voxel_size_um],
            }
        ],
        "postprocessing": {"crappifier": recipe.preset},
        "metrics": metrics or {},
    }


def validation_pairs(
    stacks: Sequence[tuple[np.ndarray, Sequence[float]]], crappifier: Crappifier, seed: int = 1
) -> list[tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]:
    """``(crappy, good, crappy voxel size)`` for each good stack, the good one cropped to fit.

    Parameters
    ----------
    stacks
        ``(good stack, voxel size)`` pairs.
    crappifier
        Makes the crappy stacks.
    seed
        Seed of the noise (stack ``i`` gets ``seed + i``).

    Returns
    -------
    list of tuple
    """
    pairs = []
    for i, (good, voxel) in enumerate(stacks):
        crappy = crappifier(np.asarray(good, np.float32), voxel, seed=seed + i)
        shape = [n * s for n, s in zip(crappy.shape, crappifier.scale, strict=True)]
        fitted = np.asarray(good, np.float32)[tuple(slice(0, n) for n in shape)]
        if crappifier.scale[0] > 1:  # z undersampling: the kept slices are the ones compared
            fitted = fitted[:: crappifier.scale[0]]
        pairs.append((crappy, fitted, crappified_voxel_size(crappifier, voxel)))
    return pairs


def evaluate(
    model: Any, pairs: Sequence[tuple[np.ndarray, np.ndarray, Sequence[float]]]
) -> dict[str, float]:
    """Mean PSNR and SSIM of ``model``'s restorations of the crappy stacks of ``pairs``.

    Parameters
    ----------
    model
        A restoration model: name, path, or ready model.
    pairs
        From `validation_pairs`.

    Returns
    -------
    dict
        ``psnr_db`` and ``ssim``.
    """
    from napari_spines.restoration.restore import restore

    scores = []
    for crappy, good, voxel in pairs:
        restored = restore(crappy, "ZYX", model, voxel).image
        if restored.shape != good.shape:  # z undersampled: compare the acquired slices
            restored = restored[tuple(slice(0, n) for n in good.shape)]
        scores.append(quality(restored, good))
    return {
        "psnr_db": round(float(np.mean([q.psnr for q in scores])), 3),
        "ssim": round(float(np.mean([q.ssim for q in scores])), 4),
    }


def train_restoration(
    train: Sequence[tuple[np.ndarray, Sequence[float]]],
    validate: Sequence[tuple[np.ndarray, Sequence[float]]],
    out: Path,
    recipe: Recipe,
    minutes: float = 15.0,
    width: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    validate_every: int = 100,
    device: str = "auto",
    name: str | None = None,
    training: dict | None = None,
    progress: ProgressCallback | None = None,
) -> TrainedModel:
    """Train on crappified crops of ``train``; keep the checkpoint best on ``validate``; export.

    Parameters
    ----------
    train, validate
        ``(good ZYX stack, voxel size µm)`` pairs; validation chooses the checkpoint only.
    out
        Run folder: ``log.jsonl``, ``best.pt`` and the package ``out/<name>``.
    recipe
        What to build (`RECIPES`).
    minutes, width, lr, seed, validate_every, device
        Time budget, U-Net width, peak learning rate, seed, steps between validations, and the
        torch device.
    name
        Package name; default the recipe's.
    training
        The ``training`` mapping of model.yaml (data, command).
    progress
        ``(seconds spent, budget)``; may raise `Cancelled`.

    Returns
    -------
    TrainedModel
        The package, and its validation PSNR and SSIM in a line.

    Raises
    ------
    ValueError
        No training stack, or a budget too short for one step.
    """
    import torch

    from napari_spines.training.batches import example_batches, resolve_device
    from napari_spines.training.export import export_package
    from napari_spines.training.loop import timed_steps
    from napari_spines.training.network import TrainingNetwork, engine_spec
    from napari_spines.training.unet import build_unet

    if not train or not validate:
        raise ValueError(
            "restoration training needs at least one training and one validation stack"
        )
    device = resolve_device(device)
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    crappifier = preset(recipe.preset)
    stacks = [good_stack(image, voxel, crappifier) for image, voxel in train]
    pairs = validation_pairs(validate, crappifier)
    voxel = stacks[0].voxel_size_um
    spec = restoration_spec(recipe, voxel, name, training=training)
    net = residual(build_unet(1, 1, width, recipe.pools, recipe.kernels)).to(device)
    network = TrainingNetwork(net, engine_spec(spec, normalised=False), sigmoid=False)

    def example(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        return training_example(stacks, crappifier, recipe.crop, rng)

    batches = example_batches(example, recipe.batch_size, seed, 0, device)
    best: dict[str, Any] = {"psnr_db": -np.inf}
    with open(out / "log.jsonl", "a") as log:
        for step, loss, last in timed_steps(
            net, batches, squared_error, lr, minutes, started, progress=progress
        ):
            if step % validate_every and not last:
                continue
            net.eval()
            scores = evaluate(network, pairs)
            net.train()
            record = {
                "step": step,
                "minutes": (time.monotonic() - started) / 60,
                "loss": float(loss),
                **scores,
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
            logger.info(
                "step %d loss %.4f validation PSNR %.2f dB", step, float(loss), scores["psnr_db"]
            )
            if scores["psnr_db"] > best["psnr_db"]:
                best = {**scores, "step": step}
                save_checkpoint(
                    {"state_dict": net.state_dict(), "width": width, **best}, out / "best.pt"
                )
    if "step" not in best:
        raise ValueError(f"{minutes} minutes were too short for one training step")
    state = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state["state_dict"])
    spec["metrics"] = {
        "validation": {
            "data": "validation pairs (crappified with seed 1)",
            **{k: best[k] for k in ("psnr_db", "ssim", "step")},
        }
    }
    package = export_package(net.cpu().eval(), out / spec["name"], spec, (1, 1, *recipe.crop))
    return TrainedModel(
        package, f"validation PSNR {best['psnr_db']:.2f} dB, SSIM {best['ssim']:.3f}"
    )
