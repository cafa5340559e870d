r"""Train the EM affinity model ``em-affinity``: a 3D U-Net predicting z, y, x affinities.

Data (`napari_spines.training.em_data`; see ``../shared/data/README.md``): ISBI 2012 sections
0–14 train and 15–19 validate, its z-affinities unknown and masked out of the loss; gala
sections 0–34 (dense 3D ids) train and 35–49 validate; and synthetic EM volumes.

The network sees every volume on its own grid (no resampling); the targets are computed per crop
with `labels_to_affinities`, after flips and transposes, so augmentations never break them.

Run::

    napari-spines train affinities --data ../shared/data/em --minutes 60 --out runs/em-affinity
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from napari_spines.progress import ProgressCallback
from napari_spines.segmentation.affinities import NEAREST, labels_to_affinities, pair_mask
from napari_spines.training.em_data import (
    NORMALISATION,
    SHIPPED_SPLIT,
    LabelledVolume,
    Split,
    check_data,
    contiguous_runs,
    gala_depth,
    load_gala,
    load_isbi,
    sections,
    synthetic_volume,
    validation_stacks,
)
from napari_spines.training.export import TrainedModel, load_weights, save_checkpoint
from napari_spines.training.section_defects import section_defects

logger = logging.getLogger(__name__)

#: ISBI 2012: 50 nm sections of 4 nm pixels. The model runs on each stack's own grid.
VOXEL_SIZE_UM = (0.05, 0.004, 0.004)
#: Three in-plane poolings: z context comes from the 3×3×3 convolutions only, so the model
#: accepts any number of sections, a single one included.
POOLS = ((1, 2, 2), (1, 2, 2), (1, 2, 2))
#: In-plane convolutions at the three fine levels, 3×3×3 at the coarsest: on ISBI this learnt
#: membranes about seven times faster per step than 3×3×3 everywhere (adapted Rand error 0.11
#: after 600 steps, against 0.18 after 1400), because sections 50 nm apart are barely aligned.
KERNELS = ((1, 3, 3), (1, 3, 3), (1, 3, 3), (3, 3, 3))
CROP = (4, 192, 192)
#: The package's tile (halo included): with the long-range halo of 80 pixels, 384 in y and x
#: predict ISBI's 20 sections 2.2 times as fast as 256, for 1.7 GB instead of 1.1 GB at peak,
#: and the same affinities to the bit (benchmarks/tile_sizes.py, docs/performance.md).
TILE = (16, 384, 384)
#: How the network makes affinities: itself (3D U-Net), from a 2D interior map, or itself
#: with long-range affinities as well (the cross-validation segments those by mutex watershed).
RECIPES = ("affinities", "boundary", "long-range")
#: The recipe that won the cross-validation (docs/segmentation.md), em-affinity 0.3.0's.
DEFAULT_RECIPE = "long-range"
#: The long-range recipe's offsets: the nearest neighbours first, then 2 sections back and 3, 9
#: and 27 pixels back in y and x (within the network's in-plane receptive field, 51 pixels).
LONG_RANGE_OFFSETS = (
    *NEAREST,
    (-2, 0, 0),
    *((0, -d, 0) for d in (3, 9, 27)),
    *((0, 0, -d) for d in (3, 9, 27)),
)
#: Fraction of training crops warped by `elastic_deform`: 15 ISBI sections overfit without it.
ELASTIC_CHANCE = 0.5
#: Merges are scored by the median affinity of the boundary between two segments, not its
#: mean: a faint stretch of membrane then cannot pull two cells together. On ISBI 15–19 (the
#: same model, per section) this scored 0.045 against 0.062 for the mean.
QUANTILE = 50
#: Thresholds that choose a checkpoint: the agglomeration's, and the mutex watershed's biases.
VALIDATION_THRESHOLDS = ((0.6, 0.7, 0.75, 0.8, 0.85), (0.3, 0.4, 0.5, 0.6, 0.7))


def recipe_offsets(recipe: str) -> tuple[tuple[int, int, int], ...]:
    """The offsets of a recipe's affinities: `LONG_RANGE_OFFSETS`, or `NEAREST` for the others.

    Parameters
    ----------
    recipe
        One of `RECIPES`.

    Returns
    -------
    tuple of (int, int, int)
    """
    return LONG_RANGE_OFFSETS if recipe == "long-range" else NEAREST


def recipe_network(recipe: str, width: int) -> Any:
    """The untrained U-Net of a recipe (`RECIPES`): an affinity channel per offset, or interior.

    Parameters
    ----------
    recipe
        ``"affinities"`` and ``"long-range"`` (`KERNELS`), or ``"boundary"`` (`KERNELS_2D`,
        in-plane only).
    width
        Channels of the finest level.

    Returns
    -------
    torch.nn.Module
    """
    from napari_spines.training.boundary import KERNELS_2D
    from napari_spines.training.unet import build_unet

    if recipe == "boundary":
        return build_unet(1, 1, width=width, pools=POOLS, kernels=KERNELS_2D)
    channels = len(recipe_offsets(recipe))
    return build_unet(1, channels, width=width, pools=POOLS, kernels=KERNELS)


def recipe_of(state: dict) -> str:
    """The recipe a U-Net state dict was trained with, from its output channels.

    Parameters
    ----------
    state
        A state dict (`load_weights`).

    Returns
    -------
    str
        ``"boundary"`` (one channel), ``"long-range"`` (one per `LONG_RANGE_OFFSETS`), else
        ``"affinities"``.
    """
    channels = int(state["head.weight"].shape[0])
    return {1: "boundary", len(LONG_RANGE_OFFSETS): "long-range"}.get(channels, "affinities")


def random_crop(
    volume: LabelledVolume,
    rng: np.random.Generator,
    crop: Sequence[int] = CROP,
    offsets: Sequence[Sequence[int]] = NEAREST,
    defects: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An augmented crop: (image (1, Z, Y, X), affinities (C, ...), loss mask (C, ...)).

    Flips along every axis and a y/x transpose; an elastic in-plane warp (`elastic_deform`, in
    `ELASTIC_CHANCE` of the crops); with ``defects``, missing and misaligned sections
    (`section_defects`); intensity gain and offset jitter, blur and noise. Volumes smaller
    than the crop are padded, and the padding is masked.

    Parameters
    ----------
    volume
        The labelled volume to crop.
    rng
        Draws the crop's place and every augmentation.
    crop
        Crop shape (Z, Y, X) in voxels; the y/x transpose needs Y == X.
    offsets
        The affinities' offsets, one channel each (`labels_to_affinities`).
    defects
        Add serial-section defects (`napari_spines.training.section_defects`).

    Returns
    -------
    tuple of numpy.ndarray
        float32 image ``(1, *crop)``, float32 affinities ``(len(offsets), *crop)``
        (`labels_to_affinities`) and float32 loss mask of the same shape: 1 where a voxel and
        its partner are both in the crop and not padding (`pair_mask`), 0 for the channels
        that cross sections where ``volume.z_known`` is False.
    """
    shape = volume.image.shape
    starts = [int(rng.integers(0, max(n - c, 0) + 1)) for n, c in zip(shape, crop, strict=True)]
    region = tuple(slice(s, s + c) for s, c in zip(starts, crop, strict=True))
    image, labels = volume.image[region], volume.labels[region]
    valid = np.ones(image.shape, bool)
    pad = [(0, c - n) for n, c in zip(image.shape, crop, strict=True)]
    image, labels, valid = (np.pad(a, pad) for a in (image, labels, valid))
    for axis in range(3):
        if rng.random() < 0.5:
            image, labels, valid = (np.flip(a, axis) for a in (image, labels, valid))
    if crop[1] == crop[2] and rng.random() < 0.5:
        image, labels, valid = (np.swapaxes(a, 1, 2) for a in (image, labels, valid))
    if rng.random() < ELASTIC_CHANCE:
        image, labels, valid = elastic_deform(rng, image, labels, valid)
    if defects:
        image, labels, valid = section_defects(rng, image, labels, valid)
    image = image * rng.uniform(0.8, 1.2) + rng.uniform(-0.15, 0.15)
    if rng.random() < 0.3:
        image = ndi.gaussian_filter(image, (0, *[rng.uniform(0.5, 1.5)] * 2))
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(0.02, 0.1), image.shape).astype(np.float32)
    affinities = labels_to_affinities(np.ascontiguousarray(labels), offsets)
    mask = pair_mask(valid, offsets)
    if not volume.z_known:
        mask[[c for c, o in enumerate(offsets) if o[0] != 0]] = 0
    return (np.ascontiguousarray(image[None], np.float32), affinities, mask)


@dataclass
class AffinityExamples:
    """Makes random training crops; a class, not a closure, so worker processes can be sent it.

    Parameters
    ----------
    volumes
        The labelled volumes crops are cut from.
    chances
        Probability of each volume being drawn.
    offsets
        Affinity offsets of the targets.
    interiors
        Return interior targets (the boundary recipe) instead of affinities.
    defects
        Add missing and misaligned sections (`random_crop`).
    """

    volumes: list[LabelledVolume]
    chances: np.ndarray
    offsets: Sequence[tuple[int, int, int]]
    interiors: bool = False
    defects: bool = False

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """One crop: image, targets and loss mask.

        Parameters
        ----------
        rng
            Draws the volume, the crop and its augmentation.

        Returns
        -------
        tuple of numpy.ndarray
            Image, targets and mask.
        """
        from napari_spines.training.boundary import interior_targets

        volume = self.volumes[rng.choice(len(self.volumes), p=self.chances)]
        image, affinities, mask = random_crop(
            volume, rng, offsets=self.offsets, defects=self.defects
        )
        if self.interiors:
            return (image, *interior_targets(affinities, mask))
        return image, affinities, mask


def elastic_deform(
    rng: np.random.Generator,
    image: np.ndarray,
    *labels: np.ndarray,
    spacing: int = 32,
    amplitude: float = 4.0,
) -> tuple[np.ndarray, ...]:
    """Warp every section by one smooth random in-plane displacement (same for all of them).

    Displacements of about ``amplitude`` pixels vary over ``spacing`` pixels; the image is
    interpolated linearly, the label arrays by nearest neighbour, so they stay aligned.

    Parameters
    ----------
    rng
        Draws the displacements.
    image
        ``(Z, Y, X)`` image.
    *labels
        Arrays of the image's shape (labels, masks) to warp alike.
    spacing
        Distance in pixels between the knots of the random displacement field.
    amplitude
        Standard deviation in pixels of the displacement at each knot.

    Returns
    -------
    tuple of numpy.ndarray
        The warped image, then the warped ``labels`` in their order, each of its input's shape
        and dtype (edges mirrored).
    """
    shape = image.shape[1:]
    knots = [n // spacing + 2 for n in shape]
    coarse = [rng.normal(0, amplitude, knots) for _ in range(2)]
    # each pixel's place on the coarse grid: a smooth (cubic) interpolation of the knots
    on_knots = np.meshgrid(
        *[np.linspace(0, k - 1, n) for n, k in zip(shape, knots, strict=True)], indexing="ij"
    )
    shifts = [ndi.map_coordinates(c, on_knots, order=3) for c in coarse]
    coords = np.mgrid[: shape[0], : shape[1]].astype(np.float32) + np.stack(shifts)

    def warp(array: np.ndarray, order: int) -> np.ndarray:
        return np.stack(
            [ndi.map_coordinates(section, coords, order=order, mode="mirror") for section in array]
        )

    return (warp(image, 1), *(warp(a, 0) for a in labels))


def loss_fn(logits: Any, targets: Any, masks: Any) -> Any:
    """Class-balanced binary cross-entropy over the masked affinities.

    Parameters
    ----------
    logits
        Network outputs ``(B, 3, Z, Y, X)`` (torch, before the sigmoid).
    targets, masks
        Affinities and loss mask of the same shape (`random_crop`'s, batched).

    Returns
    -------
    torch.Tensor
        Scalar: positive and negative masked affinities weigh half each (the positive fraction
        clamped to 0.05–0.95), summed over the number of masked-in affinities.
    """
    import torch.nn.functional as F

    positives = (targets * masks).sum() / masks.sum().clamp(min=1)
    positives = positives.clamp(0.05, 0.95)
    weights = masks * (targets * 0.5 / positives + (1 - targets) * 0.5 / (1 - positives))
    loss = F.binary_cross_entropy_with_logits(logits, targets, weight=weights, reduction="sum")
    return loss / masks.sum().clamp(min=1)


def validation_scores(
    net: Any,
    volumes: Sequence[LabelledVolume],
    thresholds: Sequence[float] | None = None,
    recipe: str = "affinities",
) -> dict:
    """Validation loss and adapted Rand error of whole held-out volumes (no augmentation).

    ``validation_loss``: mean masked, balanced cross-entropy. ``adapted_rand_error``: the mean
    over volumes of the error of `segment_affinities` at its best of ``thresholds``, per section
    where z is unknown ("2d"), in 3D otherwise. The network runs through the engine, tiled as
    its exported package will be (the volumes are normalised already).

    Parameters
    ----------
    net
        The torch U-Net in training (logits out, in whichever mode the caller set).
    volumes
        The held-out volumes; `train` passes ISBI 15–19 and gala 35–49.
    thresholds
        Affinity thresholds of `segment_affinities` to try, or the mutex watershed's biases
        for the long-range recipe; None: `VALIDATION_THRESHOLDS` of the recipe.
    recipe
        One of `RECIPES`: the long-range recipe is segmented by `mutex_watershed`.

    Returns
    -------
    dict
        ``validation_loss`` and ``adapted_rand_error`` (floats), and ``adapted_rand_errors``:
        each volume's best error, rounded to 4 digits.
    """
    import torch

    from napari_spines.models import run_model
    from napari_spines.segmentation.metrics import (
        mean_score,
        score_per_section,
        score_segmentation,
    )
    from napari_spines.segmentation.mutex import mutex_watershed
    from napari_spines.segmentation.pipeline import segment_affinities
    from napari_spines.training.network import TrainingNetwork, engine_spec

    if thresholds is None:
        thresholds = VALIDATION_THRESHOLDS[recipe == "long-range"]
    network = TrainingNetwork(net, engine_spec(model_spec(recipe=recipe)))
    offsets = recipe_offsets(recipe)
    losses, errors = [], []
    for volume in volumes:
        affinities = run_model(network, volume.image, "ZYX").outputs
        targets = labels_to_affinities(volume.labels, offsets)
        mask = pair_mask(np.ones(volume.labels.shape, bool), offsets)
        if not volume.z_known:
            mask[[c for c, o in enumerate(offsets) if o[0] != 0]] = 0
        probs = torch.from_numpy(affinities).clamp(1e-6, 1 - 1e-6)
        losses.append(
            float(loss_fn(torch.logit(probs), torch.from_numpy(targets), torch.from_numpy(mask)))
        )
        mode = "3d" if volume.z_known else "2d"
        if recipe == "long-range":
            segmentations = [mutex_watershed(affinities, offsets, t, mode) for t in thresholds]
        else:
            hierarchy = segment_affinities(affinities, mode, quantile=QUANTILE)
            segmentations = [hierarchy.labels(t) for t in thresholds]
        errors.append(
            min(
                (
                    score_segmentation(volume.labels, labels)
                    if volume.z_known
                    else mean_score(score_per_section(volume.labels, labels))
                ).adapted_rand_error
                for labels in segmentations
            )
        )
    return {
        "validation_loss": float(np.mean(losses)),
        "adapted_rand_error": float(np.mean(errors)),
        "adapted_rand_errors": [round(e, 4) for e in errors],
    }


def train(
    data: Path,
    out: Path,
    minutes: float = 60.0,
    width: int = 12,
    batch_size: int = 2,
    lr: float = 2e-3,
    synthetic: int = 2,
    validate_every: int = 200,
    seed: int = 0,
    start_from: Path | None = None,
    device: str = "auto",
    workers: int = 0,
    extra: Sequence[LabelledVolume] = (),
    split: Split = SHIPPED_SPLIT,
    recipe: str | None = None,
    defects: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Train on ISBI 0–14, gala 0–34 and synthetic volumes; return the best checkpoint's path.

    Every validation writes ``step_N.pt`` and a line of ``log.jsonl``; ``best.pt`` is the
    checkpoint of the lowest validation adapted Rand error (ISBI 15–19 and gala 35–49, see
    `validation_scores`; 15 ISBI sections overfit, so the best comes well before the end),
    ``last.pt`` the last one. ``split`` changes which sections train and validate.

    Parameters
    ----------
    data
        Folder with ``isbi2012/`` and ``gala/`` (`check_data`), e.g. ``../shared/data/em``.
    out
        Run folder for the checkpoints and ``log.jsonl`` (appended to); created when missing.
    minutes
        Time budget in minutes, counted from the call (loading the data included).
    width
        Channels of the U-Net's finest level (`build_unet`).
    batch_size
        Crops per step.
    lr
        Peak learning rate (cosine decay to 0, `timed_steps`).
    synthetic
        Number of synthetic EM volumes to train on as well (`synthetic_volume`).
    validate_every
        Validate and save a checkpoint every this many steps, and after the last.
    seed
        Seed of torch and of the crop generators.
    start_from
        A checkpoint (its step count goes on) or an em-affinity package whose weights training
        starts from, of the same ``width``; None: random initial weights.
    device
        ``auto``, ``cpu`` or ``cuda`` (`resolve_device`).
    workers
        Processes that make the augmented crops (`example_batches`); 0: this one.
    extra
        The user's own labelled stacks (`user_volume`); half of the training crops come from
        them. Checkpoints are still chosen on the split's validation sections.
    split
        The ISBI and gala sections to train on and to choose checkpoints on.
    recipe
        ``"affinities"``: the 3D U-Net predicts z, y, x affinities (em-affinity's recipe);
        ``"boundary"``: a 2D U-Net predicts cell interior per section, and the affinities
        are derived from it (`napari_spines.training.boundary`); ``"long-range"``: the 3D
        U-Net predicts `LONG_RANGE_OFFSETS`, checkpoints are chosen by `mutex_watershed`.
        None: that of ``start_from`` (`recipe_of`), else `DEFAULT_RECIPE`.
    defects
        Augment with missing and misaligned sections
        (`napari_spines.training.section_defects`).
    progress
        ``(seconds spent, seconds of the budget)`` callback (`timed_steps`); a cancel keeps the
        checkpoints saved so far.

    Returns
    -------
    pathlib.Path
        ``out/best.pt``.

    Raises
    ------
    ValueError
        If the budget ends before the first step, ``device`` asks for CUDA and torch sees no
        GPU, the recipe is unknown, or ``start_from`` was trained with another recipe.
    """
    import torch

    from napari_spines.training.batches import example_batches, resolve_device
    from napari_spines.training.boundary import boundary_affinities
    from napari_spines.training.loop import timed_steps

    device = resolve_device(device)
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    gala = load_gala(data / "gala", split.gala_train)
    volumes = [load_isbi(data / "isbi2012", split.isbi_train), *gala]
    volumes += [synthetic_volume(2000 + i) for i in range(synthetic)]
    # ISBI most often: its 2D membranes are the hardest to learn; gala teaches z-affinities
    gala_sizes = np.array([v.labels.size for v in gala], float)
    chances = np.concatenate(
        [[0.75], 0.2 * gala_sizes / gala_sizes.sum(), [0.05 / max(synthetic, 1)] * synthetic]
    )
    chances /= chances.sum()
    if extra:  # the user's stacks: half the crops, shared by voxel count
        sizes = np.array([v.labels.size for v in extra], float)
        chances = np.concatenate([chances / 2, sizes / sizes.sum() / 2])
        volumes += list(extra)
    choosing = bool(split.isbi_validate or split.gala_validate)
    validation = (
        [
            load_isbi(data / "isbi2012", split.isbi_validate),
            *load_gala(data / "gala", split.gala_validate),
        ]
        if choosing
        else []
    )
    logger.info("data ready in %.0f s", time.monotonic() - started)
    start = None if start_from is None else load_weights(Path(start_from))
    if recipe is None:
        recipe = DEFAULT_RECIPE if start is None else recipe_of(start)
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}; got {recipe!r}")
    if start is not None and recipe_of(start) != recipe:
        raise ValueError(
            f"{start_from} was trained with the {recipe_of(start)} recipe, not {recipe}: "
            f"leave the recipe out, or start from a {recipe} model"
        )
    net = recipe_network(recipe, width)
    scored = boundary_affinities(net) if recipe == "boundary" else net
    offsets = recipe_offsets(recipe)
    step_offset = 0
    if start is not None:  # a checkpoint (its steps go on) or an em-affinity package
        net.load_state_dict(start)
        if not Path(start_from).is_dir():
            step_offset = int(torch.load(start_from, map_location="cpu", weights_only=True)["step"])
    net.to(device)

    example = AffinityExamples(volumes, chances, offsets, recipe == "boundary", defects)
    batches = example_batches(example, batch_size, seed, workers, device)
    best = math.inf
    checkpoint: dict | None = None
    with open(out / "log.jsonl", "a") as log:
        for step, loss, last in timed_steps(
            net, batches, loss_fn, lr, minutes, started, step_offset, progress
        ):
            if step % validate_every == 0 or last:
                scores: dict[str, Any] = {}
                if choosing:  # else the latest checkpoint is the best one
                    net.eval()
                    scores = validation_scores(scored, validation, recipe=recipe)
                    net.train()
                record = {
                    "step": step,
                    "minutes": round((time.monotonic() - started) / 60, 2),
                    "loss": loss.item(),
                    **scores,
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                logger.info(
                    "step %d loss %.4f validation %s adapted Rand error %s",
                    step,
                    loss.item(),
                    scores.get("validation_loss", "-"),
                    scores.get("adapted_rand_errors", "- (no section chooses)"),
                )
                checkpoint = {
                    "state_dict": net.state_dict(),
                    "width": width,
                    "recipe": recipe,
                    "trained_on": {"isbi": list(split.isbi_train), "gala": list(split.gala_train)},
                    "step": step,
                    "validation_loss": scores.get("validation_loss"),
                    "adapted_rand_error": scores.get("adapted_rand_error"),
                }
                save_checkpoint(checkpoint, out / f"step_{step}.pt")
                if not choosing or scores["adapted_rand_error"] < best:
                    best = scores.get("adapted_rand_error", best)
                    save_checkpoint(checkpoint, out / "best.pt")
    if checkpoint is None:
        raise ValueError(f"{minutes} minutes were too short for one training step")
    save_checkpoint(checkpoint, out / "last.pt")
    return out / "best.pt"


def model_spec(
    metrics: dict | None = None,
    command: str = "",
    threshold: float = 0.5,
    recipe: str = "affinities",
    trained_on: dict[str, Sequence[int]] | None = None,
) -> dict:
    """The model.yaml content of em-affinity (without weights).

    Parameters
    ----------
    metrics
        The ``metrics`` mapping to record; None: empty.
    command
        The command line that trained the model (``training.command``).
    threshold
        Default affinity threshold (``postprocessing.threshold``).
    recipe
        One of `RECIPES`: sets the description and the halo.
    trained_on
        ``{"isbi": sections, "gala": sections}`` it trained on (``training.data``); None:
        those of `SHIPPED_SPLIT`.

    Returns
    -------
    dict
        The mapping `export_package` completes with ``weights``.
    """
    from napari_spines.training.boundary import KERNELS_2D
    from napari_spines.training.unet import receptive_field, size_multiple

    # a flipped axis's affinities are shifted by their offset after flipping back, and a
    # boundary model's affinities compare each voxel with its previous neighbour on every axis
    flipped = {dim - 2 for dims in TTA_FLIPS for dim in dims}
    offsets = recipe_offsets(recipe)
    shifts = [
        max(abs(o[axis]) for o in offsets) * (axis in flipped) + (recipe == "boundary")
        for axis in range(3)
    ]
    kernels = KERNELS_2D if recipe == "boundary" else KERNELS
    radius = receptive_field(POOLS, kernels)
    multiple = size_multiple(POOLS)
    halo = [-(-(r + s) // m) * m for r, s, m in zip(radius, shifts, multiple, strict=True)]
    description = {
        "affinities": "Nearest-neighbour z, y, x affinities of serial-section and FIB-SEM EM: "
        "3D U-Net with in-plane pooling.",
        "boundary": "z, y, x affinities of EM from a 2D U-Net's cell-interior map of each "
        "section (the smaller interior probability of two neighbours).",
        "long-range": "Nearest-neighbour and long-range affinities of serial-section and "
        "FIB-SEM EM (3D U-Net with in-plane pooling); where its settings for a mode say so, "
        "segment makes fragments of all of them by the mutex watershed, else of the "
        "nearest-neighbour ones, and agglomerates them (docs/segmentation.md).",
    }[recipe]
    if trained_on is None:
        trained_on = {"isbi": SHIPPED_SPLIT.isbi_train, "gala": SHIPPED_SPLIT.gala_train}
    postprocessing: dict[str, Any] = {
        "threshold": threshold,
        "quantile": QUANTILE,
        "agglomeration": f"{QUANTILE} % quantile (median) affinity (waterz)",
    }
    return {
        "format_version": 1,
        "name": "em-affinity",
        "version": "0.3.0" if recipe == "long-range" else "0.2.0",
        "task": "affinities",
        "description": description,
        "license": "BSD-3-Clause",
        "authors": ["napari-spines developers"],
        "training": {
            "data": [
                f"ISBI 2012 training volume, sections {sections(trained_on['isbi'])} "
                "(z-affinities masked)",
                f"gala example volume, sections {sections(trained_on['gala'])} (dense 3D ids)",
                "synthetic EM volumes (napari_spines.synthetic)",
            ],
            "command": command,
            "base_model": None,
            "fine_tune_data": [],
        },
        "input": {
            "axes": "zyx",
            "channels": 1,
            "voxel_size_um": list(VOXEL_SIZE_UM),
            "normalisation": {
                "kind": NORMALISATION.kind,
                "low": NORMALISATION.low,
                "high": NORMALISATION.high,
            },
        },
        "tiling": {
            "tile": list(TILE),
            "multiple": list(size_multiple(POOLS)),
            "halo": halo,
        },
        "outputs": [
            {
                "name": "affinities",
                "channels": len(offsets),
                "description": "affinity of each voxel to its previous z, y and x neighbour"
                + ("" if recipe != "long-range" else ", then to the voxels at the longer offsets"),
                "offsets": [list(o) for o in offsets],
            }
        ],
        "postprocessing": postprocessing,
        "metrics": metrics or {},
    }


#: Test-time flips (dims of (batch, channel, z, y, x)) the exported model averages over.
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((4,), (3,), (3, 4))


def flip_averaged(
    net: Any,
    flips: Sequence[tuple[int, ...]] = TTA_FLIPS,
    offsets: Sequence[Sequence[int]] = NEAREST,
) -> Any:
    """``net`` with a sigmoid, averaged over its affinities of flipped inputs.

    A flip turns "affinity to the previous voxel" into "affinity to the next one", so after
    flipping back, each channel is shifted along the flipped axis by its offset to mean the
    same again.

    Parameters
    ----------
    net
        The torch U-Net (logits out).
    flips
        Dims of (batch, channel, z, y, x) to flip, one tuple per extra prediction.
    offsets
        The offset of each output channel.

    Returns
    -------
    torch.nn.Module
        Maps ``(B, 1, Z, Y, X)`` to the mean of the ``len(flips) + 1`` affinity predictions
        ``(B, 3, Z, Y, X)``.
    """
    from functools import partial

    from napari_spines.training.export import flip_averaged as averaged

    return averaged(net, flips, partial(shift_flipped_affinities, offsets=offsets))


def shift_flipped_affinities(
    out: Any, dims: tuple[int, ...], offsets: Sequence[Sequence[int]] = NEAREST
) -> Any:
    """Shift each channel of flipped-back affinities along the flipped axes (see above).

    Parameters
    ----------
    out
        Affinities ``(B, C, Z, Y, X)`` (torch) of a flipped input, flipped back.
    dims
        The dims that were flipped: 2, 3, 4 for z, y, x.
    offsets
        The offset of each of the ``C`` channels.

    Returns
    -------
    torch.Tensor
        Same shape; along each of ``dims``, a channel whose offset is ``-d`` on that axis
        moves ``d`` voxels towards the end, its first plane repeated.
    """
    import torch

    channels = list(torch.unbind(out, dim=1))
    for channel, offset in enumerate(offsets):
        for dim in dims:
            d = abs(int(offset[dim - 2]))  # dims 2, 3, 4 are z, y, x
            if d == 0:
                continue
            c = channels[channel]
            # the first plane d times, by concatenation: an expand to a shape would be traced
            # as the export's constant shape and break the exported model on other tiles
            first = [c.narrow(dim - 1, 0, 1)] * d
            channels[channel] = torch.cat(
                [*first, c.narrow(dim - 1, 0, c.shape[dim - 1] - d)], dim=dim - 1
            )
    return torch.stack(channels, dim=1)


def export(
    checkpoint: Path, folder: Path, command: str = "", flips: Sequence[tuple[int, ...]] = TTA_FLIPS
) -> Path:
    """Export a checkpoint as the em-affinity package (sigmoid outputs averaged over flips).

    Parameters
    ----------
    checkpoint
        A checkpoint written by `train`.
    folder
        Package folder; created when missing, existing weights are replaced.
    command
        The training command line, recorded in model.yaml.
    flips
        Test-time flips averaged over (`flip_averaged`).

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    import torch

    from napari_spines.training.boundary import boundary_affinities
    from napari_spines.training.export import export_package

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    recipe = state.get("recipe", "affinities")
    net = recipe_network(recipe, int(state["width"]))
    net.load_state_dict(state["state_dict"])
    if recipe == "boundary":
        net = boundary_affinities(net)
    training: dict[str, Any] = {"step": int(state["step"])}
    if state.get("validation_loss") is not None:  # None: trained on every section
        training["validation_loss"] = round(float(state["validation_loss"]), 4)
    metrics = {"training": {**training, "test_time_flips": [list(f) for f in flips]}}
    return export_package(
        flip_averaged(net, flips, recipe_offsets(recipe)).eval(),
        folder,
        model_spec(metrics, command, recipe=recipe, trained_on=state.get("trained_on")),
        (1, 1, 8, 64, 64),
    )


def train_and_export(
    data: Path,
    out: Path,
    command: str = "",
    progress: ProgressCallback | None = None,
    **options: Any,
) -> TrainedModel:
    """Check the data, `train`, `export` the best checkpoint, `evaluate` it, set its "3d" mode.

    The "3d" settings are chosen on the gala validation sections
    (`napari_spines.training.mode_settings.record_3d_settings`). A split without validation
    sections (`EVERY_SECTION`) exports the last checkpoint and scores nothing.

    Parameters
    ----------
    data, out
        See `train`; the package is ``out/em-affinity``.
    command
        The training command line, recorded in model.yaml.
    progress
        See `train`; then ``(0, 0)`` (busy, no count) while exporting and scoring.
    **options
        Further keyword arguments of `train`.

    Returns
    -------
    TrainedModel
        The package and one line of its adapted Rand errors on ISBI 15–19 and gala 35–49 at
        its chosen threshold.

    Raises
    ------
    ValueError
        If a data file is missing (`check_data`), or from `train`.
    """
    from napari_spines.training.mode_settings import record_3d_settings

    check_data(data)
    checkpoint = train(data, out, progress=progress, **options)
    if progress is not None:
        progress(0, 0)  # exporting and scoring: no count to show
    package = export(checkpoint, out / "em-affinity", command=command)
    split = options.get("split", SHIPPED_SPLIT)
    if not (split.isbi_validate or split.gala_validate):
        return TrainedModel(
            package,
            "trained on every section, so none is left to score it or to choose its settings: "
            "write them from a cross-validation with scripts/em_shipped_settings.py",
        )
    measured = evaluate(package, data, split=split)
    gala_block = contiguous_runs([z for z in split.gala_validate if z < gala_depth(data)])[0]
    chosen = record_3d_settings(package, data, gala_block)["chosen"]
    scores = [
        f"{name}: adapted Rand error {score['adapted_rand_error']}"
        for name, score in measured.items()
        if isinstance(score, dict) and "linked" not in name
    ]
    in_3d = f"3d: sections upsampled {chosen['in_plane_scale']:g}×, threshold {chosen['threshold']}"
    return TrainedModel(
        package, f"{'; '.join(scores)} at threshold {measured['threshold']}; {in_3d}"
    )


def leave_one_section_out(errors: np.ndarray) -> float:
    """Mean error of each section at the threshold best for the other sections.

    ``errors[i, j]`` is the error of section ``j`` at the ``i``-th threshold. Unlike the best
    threshold's mean, this figure does not choose the threshold on the section it scores.

    Parameters
    ----------
    errors
        ``(thresholds, sections)`` array, at least two sections.

    Returns
    -------
    float
        The mean over sections.

    Examples
    --------
    >>> errors = np.array([[0.1, 0.5], [0.3, 0.2]])  # 2 thresholds x 2 sections
    >>> round(leave_one_section_out(errors), 4), round(float(errors.mean(axis=1).min()), 4)
    (0.4, 0.25)
    """
    n = errors.shape[1]
    chosen = [int(np.argmin(np.delete(errors, j, axis=1).mean(axis=1))) for j in range(n)]
    return float(np.mean([errors[i, j] for j, i in enumerate(chosen)]))


def evaluate(
    package_dir: Path,
    data: Path,
    thresholds: Sequence[float] = tuple(round(0.05 * i, 2) for i in range(2, 20)),
    split: Split = SHIPPED_SPLIT,
) -> dict:
    """Score a package through `segment_image` on the held-out stacks at every threshold.

    ISBI is scored per section (its labels are 2D), gala in 3D. The threshold with the lowest
    adapted Rand error on ISBI becomes the package's default; the figures go into
    ``metrics.validation`` of its model.yaml, with ISBI's per-section errors and its
    `leave_one_section_out` error. ISBI is also scored with sections linked ("2d+z"), to show
    what its unlearnt z-affinities do.

    Parameters
    ----------
    package_dir
        An em-affinity package folder; its model.yaml is rewritten.
    data
        Folder with ``isbi2012/`` and ``gala/`` (`validation_stacks`).
    thresholds
        Affinity thresholds to score, by default 0.1 to 0.95 in steps of 0.05.
    split
        Whose validation sections are scored (`validation_stacks`).

    Returns
    -------
    dict
        The ``metrics.validation`` written: the chosen ``threshold``, how it was scored
        (``through``), and per stack its scores at that threshold, its own best threshold and
        error, and its errors by threshold.
    """
    import dataclasses

    from napari_spines.models import open_package
    from napari_spines.models.spec import write_spec
    from napari_spines.segmentation.metrics import (
        mean_score,
        score_per_section,
        score_segmentation,
    )
    from napari_spines.segmentation.pipeline import segment_affinities, segment_image

    package = open_package(package_dir)
    quantile = package.spec.postprocessing.get("quantile")
    runs = []
    stacks = validation_stacks(data, split)
    for name, (image, labels, per_section, mode) in stacks.items():
        segmentation = segment_image(image, "ZYX", package, mode=mode)
        runs.append((name, segmentation, labels, per_section))
        if per_section:
            linked = segment_affinities(segmentation.affinities, "2d+z", quantile=quantile)
            runs.append((f"{name}, sections linked (2d+z)", linked, labels, per_section))
    results: dict[str, dict] = {}
    sections: dict[str, np.ndarray] = {}
    for name, segmentation, labels, per_section in runs:
        by_threshold, by_section = {}, []
        for t in thresholds:
            predicted = segmentation.labels(t)
            if per_section:
                scores = score_per_section(labels, predicted)
                by_section.append([s.adapted_rand_error for s in scores])
                by_threshold[t] = mean_score(scores)
            else:
                by_threshold[t] = score_segmentation(labels, predicted)
        results[name] = by_threshold
        if per_section:
            sections[name] = np.array(by_section)
    isbi_name = next(iter(stacks))
    isbi = results[isbi_name]
    best = min(thresholds, key=lambda t: isbi[t].adapted_rand_error)
    agglomeration = "mean" if quantile is None else f"{quantile} % quantile"
    validation: dict[str, Any] = {
        "threshold": best,
        "through": f"napari-spines segment: fragments, waterz {agglomeration} affinity "
        f"agglomeration; ISBI per section, gala in 3D",
    }
    for name, by_threshold in results.items():
        own_best = min(thresholds, key=lambda t: by_threshold[t].adapted_rand_error)
        validation[name] = {
            **by_threshold[best].as_dict(),
            "best_threshold": own_best,
            "best_adapted_rand_error": round(by_threshold[own_best].adapted_rand_error, 4),
            "adapted_rand_error_by_threshold": {
                str(t): round(s.adapted_rand_error, 4) for t, s in by_threshold.items()
            },
        }
    errors = sections[isbi_name]
    validation[isbi_name]["adapted_rand_error_per_section"] = [
        round(float(e), 4) for e in errors[list(thresholds).index(best)]
    ]
    validation[isbi_name]["leave_one_section_out"] = round(leave_one_section_out(errors), 4)
    spec = package.spec
    write_spec(
        package_dir / "model.yaml",
        dataclasses.replace(
            spec,
            postprocessing={**spec.postprocessing, "threshold": best},
            metrics={**spec.metrics, "validation": validation},
        ),
    )
    return validation
