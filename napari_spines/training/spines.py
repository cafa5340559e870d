r"""Train the spine-head detector ``spine-2p``: a 3D U-Net with a spine and a dendrite channel.

Data: annotated sessions (stack + ``_spines.csv`` + ``_dendrites.csv``, see
`napari_spines.spines.evaluate`) and synthetic stacks. Real annotations are sparse, made only along
the traced dendrites, so on real data the loss sees only voxels within `MASK_UM` of a traced
centre line: elsewhere unannotated real spines would be taught as background.

The network sees the stack at `VOXEL_SIZE_UM` (y and x at half the usual 0.12 µm) and predicts:

- channel 0, spine heads: a Gaussian blob around each annotated head (`HEAD_SIGMA_UM`);
- channel 1, dendrite shaft: voxels within `SHAFT_RADIUS_UM` of a traced centre line.

The second channel makes the network learn where the dendrite is, so it can tell spine heads
from the shaft and from debris.

Run::

    napari-spines train spines --data ../shared/data/two_photon/rr30a \\
        --train rr30a_tp0 rr30a_tp1 --validate rr30a_tp2 --minutes 60 --out runs/spine-2p
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from napari_spines.inference import normalisation_stats, read_resampled, source_coords
from napari_spines.io import read_volumes
from napari_spines.models.spec import Normalisation
from napari_spines.progress import ProgressCallback
from napari_spines.spines.evaluate import (
    AnnotatedSession,
    load_session,
    score_on_session,
    session_files,
)
from napari_spines.training.export import TrainedModel, load_weights, save_checkpoint

logger = logging.getLogger(__name__)

VOXEL_SIZE_UM = (1.0, 0.24, 0.24)
HEAD_SIGMA_UM = (0.6, 0.3, 0.3)
SHAFT_RADIUS_UM = 0.7
MASK_UM = 5.0
NORMALISATION = Normalisation(kind="percentile", low=1.0, high=99.8)
POOLS = ((1, 2, 2), (1, 2, 2), (2, 2, 2))
CROP = (16, 96, 96)
#: Range of the random in-plane magnification of training crops.
SCALE_RANGE = (0.8, 1.25)
#: Besides the stack itself, the engine also runs the exported model on it flipped along these
#: axes and averages (the package's ``test_time_flips``). One flip (x) took 36.9 s for detect on
#: a 70 x 1024 x 1024 stack on 2 cores with the old, smaller halo; three (y, x, both) took 68.7 s
#: (docs/performance.md).
TTA_FLIPS = ("x",)


@dataclass
class TrainingVolume:
    """A stack at the model's voxel size with its targets and loss masks (all float32 ZYX).

    ``mask`` weighs the head channel's loss (0: unknown; above 1: a known negative that must
    count as much as a head), and the shaft channel's too unless ``shaft_mask`` is given.
    """

    image: np.ndarray
    heads: np.ndarray
    shaft: np.ndarray
    mask: np.ndarray
    centres: np.ndarray  # voxels to centre crops on (traced dendrite points)
    shaft_mask: np.ndarray | None = None


def to_model_space(volume: np.ndarray, voxel_size_um: Sequence[float]) -> tuple[np.ndarray, tuple]:
    """Normalise and resample a stack exactly as the inference engine will.

    Parameters
    ----------
    volume
        A ``(Z, Y, X)`` stack.
    voxel_size_um
        Its voxel size (z, y, x) in µm.

    Returns
    -------
    image : numpy.ndarray
        float32 stack at `VOXEL_SIZE_UM`, normalised by the percentiles of ``volume``; axes
        within 5 % of the model's voxel size are not resampled.
    factors : tuple of float
        Model voxels per data voxel on each axis (data voxel size / model voxel size).
    """
    offset, gain = normalisation_stats(volume, NORMALISATION, channel_axis=False)
    factors = [v / m for v, m in zip(voxel_size_um, VOXEL_SIZE_UM, strict=True)]
    shape = [max(1, round(n * f)) for n, f in zip(volume.shape, factors, strict=True)]
    coords = [
        source_coords(np.arange(m, dtype=np.float64), f, n) if abs(f - 1) > 0.05 else np.arange(n)
        for m, f, n in zip(shape, factors, volume.shape, strict=True)
    ]
    image = (read_resampled(volume, coords) - offset[0]) * gain[0]
    return image.astype(np.float32), tuple(factors)


def points_to_model(points: np.ndarray, factors: Sequence[float]) -> np.ndarray:
    """Voxel coordinates in the data's grid → in the model's grid.

    Parameters
    ----------
    points
        ``(N, 3)`` voxel coordinates (z, y, x) in the data's grid.
    factors
        Model voxels per data voxel (`to_model_space`'s).

    Returns
    -------
    numpy.ndarray
        float64 ``(N, 3)`` coordinates in the model's grid; voxel edges stay edges, so a
        voxel's centre maps to the centre of the region it covers.

    Examples
    --------
    >>> points_to_model(np.array([[0, 0, 0], [10, 10, 10]]), (1.0, 0.5, 0.5)).tolist()
    [[0.0, -0.25, -0.25], [10.0, 4.75, 4.75]]
    """
    return (np.asarray(points, float) + 0.5) * np.asarray(factors) - 0.5


def head_targets(shape: Sequence[int], heads: np.ndarray) -> np.ndarray:
    """Max of anisotropic Gaussians (σ = `HEAD_SIGMA_UM`) at the head positions (model voxels).

    Parameters
    ----------
    shape
        Target shape (Z, Y, X) in model voxels.
    heads
        ``(N, 3)`` head positions (z, y, x) in model voxels; heads whose ±3σ box lies outside the
        volume are skipped.

    Returns
    -------
    numpy.ndarray
        float32 of ``shape``, up to 1 at each head, 0 outside the ±3σ box of every head.
    """
    target = np.zeros(shape, np.float32)
    sigma = np.asarray(HEAD_SIGMA_UM) / np.asarray(VOXEL_SIZE_UM)
    radius = np.ceil(3 * sigma).astype(int)
    for point in heads:
        centre = np.round(point).astype(int)
        lo = np.maximum(centre - radius, 0)
        hi = np.minimum(centre + radius + 1, shape)
        if np.any(hi <= lo):
            continue
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        d2 = sum(((g - p) / s) ** 2 for g, p, s in zip(grids, point, sigma, strict=True))
        region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        target[region] = np.maximum(target[region], np.exp(-0.5 * d2))
    return target


def distance_to_points_um(shape: Sequence[int], points: np.ndarray) -> np.ndarray:
    """Distance in µm from every voxel to the nearest of ``points`` (model voxels).

    Parameters
    ----------
    shape
        Volume shape (Z, Y, X) in model voxels.
    points
        ``(N, 3)`` points (z, y, x) in model voxels, rounded and clipped into the volume.

    Returns
    -------
    numpy.ndarray
        float32 of ``shape``: distances in µm, at `VOXEL_SIZE_UM`.
    """
    seeds = np.ones(shape, bool)
    idx = np.clip(np.round(points).astype(int), 0, np.asarray(shape) - 1)
    seeds[tuple(idx.T)] = False
    return ndi.distance_transform_edt(seeds, sampling=VOXEL_SIZE_UM).astype(np.float32)


def real_volume(session: AnnotatedSession) -> TrainingVolume:
    """A real annotated session prepared for training.

    Parameters
    ----------
    session
        An annotated session (`load_session`).

    Returns
    -------
    TrainingVolume
        At `VOXEL_SIZE_UM`: head targets at all annotated heads (``spines`` and ``bad_spines``),
        the shaft within `SHAFT_RADIUS_UM` and the loss mask within `MASK_UM` of the traced
        dendrite points, which are also the crop centres.
    """
    volume = read_volumes(session.stack)[0]
    image, factors = to_model_space(np.asarray(volume.data), session.voxel_size_um)
    dendrites = points_to_model(session.dendrites, factors)
    distance = distance_to_points_um(image.shape, dendrites)
    heads = points_to_model(np.concatenate([session.spines, session.bad_spines]), factors)
    return TrainingVolume(
        image,
        head_targets(image.shape, heads),
        (distance <= SHAFT_RADIUS_UM).astype(np.float32),
        (distance <= MASK_UM).astype(np.float32),
        dendrites,
    )


def synthetic_volume(seed: int, shape: Sequence[int] = (24, 160, 160)) -> TrainingVolume:
    """A synthetic stack generated directly at the model's voxel size, fully annotated.

    Parameters
    ----------
    seed
        Seed of `synthetic_two_photon`; even seeds draw two dendrites, odd ones three.
    shape
        Stack shape (Z, Y, X) in model voxels.

    Returns
    -------
    TrainingVolume
        With the loss mask 1 everywhere, and every 50th shaft voxel as a crop centre.
    """
    from napari_spines.synthetic import synthetic_two_photon

    sample = synthetic_two_photon(
        shape=tuple(shape), voxel_size_um=VOXEL_SIZE_UM, seed=seed, n_dendrites=2 + seed % 2
    )
    image, _ = to_model_space(sample.image.astype(np.float32), VOXEL_SIZE_UM)
    shaft = sample.dendrite_mask.astype(np.float32)
    centres = np.argwhere(sample.dendrite_mask)[::50].astype(float)
    return TrainingVolume(
        image, head_targets(image.shape, sample.spines), shaft, np.ones_like(image), centres
    )


def random_crop(
    volume: TrainingVolume, rng: np.random.Generator, crop: Sequence[int] = CROP
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An augmented crop near a dendrite: image (1, z, y, x), targets (2, ...), mask (2, ...).

    The crop is turned by a random in-plane angle and scaled by `SCALE_RANGE` (dendrites run
    in every direction and spines differ in size), flipped, and its intensities are varied by a
    gain, an offset, a gamma and noise.

    Parameters
    ----------
    volume
        The training volume.
    rng
        Draws the centre (a crop centre of ``volume``, jittered by σ = 1, 8, 8 voxels) and every
        augmentation.
    crop
        Crop shape (Z, Y, X) in model voxels.

    Returns
    -------
    tuple of numpy.ndarray
        float32 image ``(1, *crop)``, targets ``(2, *crop)`` (heads, shaft) and masks
        ``(2, *crop)`` (the volume's mask and shaft mask, 0 outside the volume).
    """
    centre = volume.centres[rng.integers(len(volume.centres))] + rng.normal(0, [1, 8, 8])
    coords = rotated_grid(centre, crop, rng.uniform(0, 2 * np.pi), rng.uniform(*SCALE_RANGE))
    image = ndi.map_coordinates(volume.image, coords, order=1, mode="mirror")
    heads, shaft = (
        ndi.map_coordinates(a, coords, order=1, mode="mirror") for a in (volume.heads, volume.shaft)
    )
    mask = ndi.map_coordinates(volume.mask, coords, order=0, mode="constant")
    shaft_mask = (
        mask
        if volume.shaft_mask is None
        else ndi.map_coordinates(volume.shaft_mask, coords, order=0, mode="constant")
    )
    if rng.random() < 0.5:
        image, heads, shaft, mask, shaft_mask = (
            np.flip(a, 0) for a in (image, heads, shaft, mask, shaft_mask)
        )
    low = image.min()
    image = low + (image - low) ** rng.uniform(0.7, 1.4) if np.ptp(image) > 0 else image
    image = image * rng.uniform(0.6, 1.5) + rng.uniform(-0.1, 0.1)
    image = image + rng.normal(0, rng.uniform(0, 0.08), image.shape)
    targets = np.stack([heads, shaft])
    masks = np.stack([mask, shaft_mask])
    return (
        np.ascontiguousarray(image[None], np.float32),
        np.ascontiguousarray(targets),
        np.ascontiguousarray(masks),
    )


@dataclass
class SpineExamples:
    """Makes random training crops; a class, not a closure, so worker processes can be sent it.

    Parameters
    ----------
    volumes
        Real volumes first, then synthetic ones.
    n_real
        How many of ``volumes`` are real; they give three crops in four.
    """

    volumes: list[TrainingVolume]
    n_real: int

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """One augmented crop and its targets.

        Parameters
        ----------
        rng
            Draws the volume, the crop and its augmentation.

        Returns
        -------
        tuple of numpy.ndarray
            What `random_crop` returns.
        """
        real = rng.random() < 0.75 or len(self.volumes) == self.n_real
        pick = rng.integers(self.n_real) if real else rng.integers(self.n_real, len(self.volumes))
        return random_crop(self.volumes[pick], rng)


def rotated_grid(
    centre: Sequence[float], crop: Sequence[int], angle: float, scale: float
) -> np.ndarray:
    """Source coordinates ``(3, *crop)`` of a crop turned in-plane and magnified.

    The crop is centred on ``centre`` (whole slices in z), turned by ``angle`` radians and
    magnified by ``scale`` (> 1: structures look bigger).

    Parameters
    ----------
    centre
        Crop centre (z, y, x) in source voxels.
    crop
        Crop shape (Z, Y, X).
    angle
        In-plane rotation in radians.
    scale
        In-plane magnification.

    Returns
    -------
    numpy.ndarray
        float32 ``(3, *crop)`` source coordinates, for `scipy.ndimage.map_coordinates`.
    """
    offsets = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in crop], indexing="ij")
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    z = np.round(centre[0] - (crop[0] - 1) / 2) + offsets[0] + (crop[0] - 1) / 2  # whole slices
    y = centre[1] + cos * offsets[1] - sin * offsets[2]
    x = centre[2] + sin * offsets[1] + cos * offsets[2]
    return np.stack([z, y, x]).astype(np.float32)


def loss_fn(logits: Any, targets: Any, masks: Any, head_weight: float = 20.0) -> Any:
    """Masked BCE; head voxels weigh up to ``1 + head_weight`` so rare peaks are not ignored.

    Parameters
    ----------
    logits
        Network outputs ``(B, 2, Z, Y, X)`` (torch, before the sigmoid).
    targets, masks
        Targets and loss masks of the same shape (`random_crop`'s, batched).
    head_weight
        Extra weight of the head channel, times its target.

    Returns
    -------
    torch.Tensor
        Scalar: the weighted sum of the cross-entropy over the sum of the weights.
    """
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    weights = masks.clone()
    weights[:, 0] = weights[:, 0] * (1 + head_weight * targets[:, 0])
    return (bce * weights).sum() / weights.sum().clamp(min=1)


@dataclass
class ValidationVolume:
    """A session's stack in model space, cropped to its traced dendrites plus a margin."""

    session: AnnotatedSession
    image: np.ndarray
    start: np.ndarray
    factors: tuple


def validation_volume(session: AnnotatedSession, margin_um: float = 8.0) -> ValidationVolume:
    """Prepare a session once for repeated validation.

    Parameters
    ----------
    session
        The validation session (`load_session`).
    margin_um
        Margin in µm kept around the bounding box of the traced dendrites.

    Returns
    -------
    ValidationVolume
        The normalised crop at `VOXEL_SIZE_UM`, its start in model voxels and the factors
        of `to_model_space`.
    """
    volume = read_volumes(session.stack)[0]
    image, factors = to_model_space(np.asarray(volume.data), session.voxel_size_um)
    dendrites = points_to_model(session.dendrites, factors)
    margin = np.ceil(margin_um / np.asarray(VOXEL_SIZE_UM)).astype(int)
    start = np.maximum(np.floor(dendrites.min(0)).astype(int) - margin, 0)
    stop = np.minimum(np.ceil(dendrites.max(0)).astype(int) + margin + 1, image.shape)
    region = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    return ValidationVolume(session, np.ascontiguousarray(image[region]), start, factors)


def validate(
    net: Any,
    val: ValidationVolume,
    thresholds: Sequence[float] = tuple(round(0.15 + 0.05 * i, 2) for i in range(11)),
) -> dict:
    """Best F1 over thresholds of the network's head channel on a validation volume.

    Parameters
    ----------
    net
        The torch U-Net in training (logits out); in eval mode for the prediction, then back in
        train mode.
    val
        The validation volume (`validation_volume`).
    thresholds
        Head-probability thresholds of `find_peaks` to try, by default 0.15 to 0.65.

    Returns
    -------
    dict
        ``threshold``, ``f1``, ``precision`` and ``recall`` at the best threshold, and ``all``:
        threshold → F1.
    """
    from napari_spines.models import run_model
    from napari_spines.spines.detect import find_peaks
    from napari_spines.training.network import TrainingNetwork, engine_spec

    net.eval()
    # already normalised and at the model's voxel size
    heat = run_model(TrainingNetwork(net, engine_spec(model_spec())), val.image, "ZYX").outputs[0]
    net.train()
    scores = {}
    for threshold in thresholds:
        coords, _ = find_peaks(heat, VOXEL_SIZE_UM, threshold, 1.0)
        data_coords = (coords + val.start + 0.5) / np.asarray(val.factors) - 0.5
        scores[threshold] = score_on_session(data_coords, val.session)
    best = max(scores, key=lambda t: scores[t].f1)
    return {
        "threshold": float(best),
        "f1": scores[best].f1,
        "precision": scores[best].precision,
        "recall": scores[best].recall,
        "all": {t: s.f1 for t, s in scores.items()},
    }


def model_spec(metrics: dict | None = None, command: str = "", threshold: float = 0.5) -> dict:
    """model.yaml content of spine-2p (weights added on export).

    Parameters
    ----------
    metrics
        The ``metrics`` mapping to record; None: empty.
    command
        The command line that trained the model (``training.command``).
    threshold
        Default head-probability threshold (``postprocessing.threshold``).

    Returns
    -------
    dict
        The mapping `export_package` completes with ``weights``.
    """
    from napari_spines.training.unet import covering_halo, size_multiple

    return {
        "format_version": 1,
        "name": "spine-2p",
        "version": "0.1.2",
        "task": "spine-detection",
        "description": "Spine heads in two-photon stacks of dendrites: 3D U-Net with a spine "
        "head and a dendrite shaft channel, averaged over a flip of x.",
        "license": "BSD-3-Clause",
        "authors": ["napari-spines developers"],
        "training": {
            "data": [
                "rr30a_tp0, rr30a_tp1 (PyMapManager-Data, MIT)",
                "synthetic two-photon stacks (napari_spines.synthetic)",
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
        # the halo covers the receptive field, so the tile size changes no heatmap voxel; one
        # tile spans a stack of up to 76 slices in z (docs/performance.md, "Tile size does not
        # change results")
        "tiling": {
            "tile": [112, 256, 256],
            "multiple": list(size_multiple(POOLS)),
            "halo": covering_halo(POOLS),
        },
        "outputs": [
            {"name": "heatmap", "channels": 1, "description": "spine-head probability"},
            {"name": "dendrite", "channels": 1, "description": "dendrite-shaft probability"},
        ],
        # between_slices_ratio 0.5 was chosen on the training sessions rr30a_tp0 + tp1
        # (mean best F1 0.653 against 0.637 without; flat over 0.2-0.6), see docs/spines.md
        "postprocessing": {
            "threshold": threshold,
            "min_distance_um": 1.0,
            "max_dendrite_distance_um": 4.0,
            "between_slices_ratio": 0.5,
        },
        "metrics": metrics or {},
    }


def train(
    data: Path,
    train_names: Sequence[str],
    validate_name: str,
    out: Path,
    minutes: float = 60.0,
    width: int = 8,
    batch_size: int = 4,
    lr: float = 2e-3,
    synthetic: int = 8,
    validate_every: int = 400,
    seed: int = 0,
    start_from: Path | None = None,
    kernels: Sequence[Sequence[int]] | None = None,
    device: str = "auto",
    workers: int = 0,
    progress: ProgressCallback | None = None,
) -> Path:
    """Train, validating on ``validate_name``; keep the best checkpoint; return its path.

    Each validation appends a line to ``log.jsonl``; ``best.pt`` is the checkpoint of the best
    F1 (`validate`).

    Parameters
    ----------
    data
        Folder of the sessions (``NAME.tif``, ``NAME_spines.csv``, ``NAME_dendrites.csv``).
    train_names
        Sessions to train on, e.g. ``["rr30a_tp0", "rr30a_tp1"]``.
    validate_name
        Session that chooses the checkpoint, e.g. ``"rr30a_tp2"``.
    out
        Run folder for ``best.pt`` and ``log.jsonl``; created when missing.
    minutes, width, batch_size, lr, seed, device, workers
        As in `napari_spines.training.affinity.train`.
    validate_every
        Validate every this many steps, and after the last.
    synthetic
        Number of synthetic stacks (`synthetic_volume`); when there are any, a quarter of the
        crops come from them.
    start_from
        A spine-2p package (or a checkpoint) whose weights training continues from (its width
        and kernels then override ``width`` and ``kernels``); None: random initial weights.
    kernels
        Each level's convolution size (`build_unet`); None: 3×3×3.
    progress
        ``(seconds spent, seconds of the budget)`` callback (`timed_steps`); a cancel keeps the
        best checkpoint saved so far.

    Returns
    -------
    pathlib.Path
        ``out/best.pt``.

    Raises
    ------
    ValueError
        If the budget ends before the first step, or ``device`` asks for CUDA and torch sees no
        GPU.
    """
    import torch

    from napari_spines.training.batches import example_batches, resolve_device
    from napari_spines.training.loop import timed_steps
    from napari_spines.training.unet import build_unet

    device = resolve_device(device)
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    volumes = [real_volume(load_session(data / f"{n}.tif")) for n in train_names]
    n_real = len(volumes)
    volumes += [synthetic_volume(1000 + i) for i in range(synthetic)]
    validation = validation_volume(load_session(data / f"{validate_name}.tif"))
    logger.info("data ready in %.0f s", time.monotonic() - started)
    base = None
    if start_from is not None:
        state = load_weights(Path(start_from))
        width, kernels = unet_layout(state)
        base = str(start_from)
    net = build_unet(1, 2, width=width, pools=POOLS, kernels=kernels)
    if start_from is not None:
        net.load_state_dict(state)
    net.to(device)
    kernels = unet_layout(net.state_dict())[1]

    batches = example_batches(SpineExamples(volumes, n_real), batch_size, seed, workers, device)
    best = -1.0
    with open(out / "log.jsonl", "a") as log:
        for step, loss, last in timed_steps(
            net, batches, loss_fn, lr, minutes, started, progress=progress
        ):
            if step % validate_every != 0 and not last:
                continue
            result = validate(net, validation)
            record = {
                "step": step,
                "minutes": (time.monotonic() - started) / 60,
                "loss": loss.item(),
                **result,
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
            logger.info(
                "step %d loss %.4f val F1 %.3f at %.1f",
                step,
                float(loss),
                result["f1"],
                result["threshold"],
            )
            if result["f1"] > best:
                best = result["f1"]
                save_checkpoint(
                    {
                        "state_dict": net.state_dict(),
                        "width": width,
                        "kernels": kernels,
                        "step": step,
                        "validation": result,
                        "base_model": base,
                    },
                    out / "best.pt",
                )
    if best < 0:
        raise ValueError(
            f"{minutes} minutes were too short for one training step (the data "
            f"took {time.monotonic() - started:.0f} s to prepare)"
        )
    return out / "best.pt"


def check_sessions(data: Path, names: Sequence[str]) -> None:
    """Raise ValueError unless every session has its stack and both tables in ``data``.

    Parameters
    ----------
    data
        Folder of the sessions.
    names
        Session names: the stacks' file names without ``.tif``.

    Raises
    ------
    ValueError
        Naming the first missing file.
    """
    for name in names:
        for path in session_files(data / f"{name}.tif"):
            if not path.exists():
                raise ValueError(
                    f"{path}: no such file (a session is NAME.tif with "
                    f"NAME_spines.csv and NAME_dendrites.csv)"
                )


def train_and_export(
    data: Path,
    train_names: Sequence[str],
    validate_name: str,
    out: Path,
    command: str = "",
    progress: ProgressCallback | None = None,
    **options: Any,
) -> TrainedModel:
    """Check the sessions, `train`, `export` the best checkpoint and `calibrate` it.

    Parameters
    ----------
    data, train_names, validate_name, out
        See `train`; the package is ``out/spine-2p``.
    command
        The training command line, recorded in model.yaml.
    progress
        See `train`; then ``(0, 0)`` (busy, no count) while exporting and calibrating.
    **options
        Further keyword arguments of `train`.

    Returns
    -------
    TrainedModel
        The package and one line of its F1, precision and recall on ``validate_name`` at the
        calibrated threshold.

    Raises
    ------
    ValueError
        If a session file is missing (`check_sessions`), or from `train`.
    """
    check_sessions(data, [*train_names, validate_name])
    checkpoint = train(data, train_names, validate_name, out, progress=progress, **options)
    if progress is not None:
        progress(0, 0)  # exporting and scoring: no count to show
    package = export(checkpoint, out / "spine-2p", command=command)
    measured = calibrate(package, load_session(data / f"{validate_name}.tif"))
    return TrainedModel(
        package,
        f"{validate_name}: F1 {measured['f1']} (precision "
        f"{measured['precision']}, recall {measured['recall']}) at "
        f"threshold {measured['threshold']}",
    )


def unet_layout(state: dict) -> tuple[int, list[list[int]]]:
    """(width, each level's kernel size) of a `build_unet` state dict, read off its weights.

    Parameters
    ----------
    state
        A `build_unet` state dict, e.g. from `load_weights`.

    Returns
    -------
    width : int
        Channels of the finest level.
    kernels : list of list of int
        Each level's convolution size (z, y, x), finest first.
    """
    levels = sorted(
        int(k.split(".")[1]) for k in state if k.startswith("down.") and k.endswith(".0.weight")
    )
    kernels = [list(state[f"down.{i}.0.weight"].shape[2:]) for i in levels]
    return int(state["down.0.0.weight"].shape[0]), kernels


def export(
    checkpoint: Path, folder: Path, command: str = "", flips: Sequence[str] = TTA_FLIPS
) -> Path:
    """Export a checkpoint as the spine-2p package: sigmoid outputs, averaged over ``flips``.

    The checkpoint's validation scores and base model go into the model.yaml.

    Parameters
    ----------
    checkpoint
        A ``best.pt`` written by `train`.
    folder
        Package folder; created when missing, existing weights are replaced.
    command
        The training command line, recorded in model.yaml.
    flips
        Test-time flips, axes flipped together (the package's ``test_time_flips``): the engine
        runs them one after another, so a tile's activations are held once.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    import torch

    from napari_spines.training.export import export_package, flip_averaged
    from napari_spines.training.unet import build_unet

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    weights = state["state_dict"]
    width, kernels = unet_layout(weights)
    net = build_unet(1, 2, width=width, pools=POOLS, kernels=kernels)
    net.load_state_dict(weights)

    validation = state["validation"]
    metrics = {
        "validation": {
            "data": "rr30a_tp2, within 4 µm of traced dendrites, 1.0 µm one-to-one matching",
            "f1": round(validation["f1"], 3),
            "precision": round(validation["precision"], 3),
            "recall": round(validation["recall"], 3),
            "threshold": validation["threshold"],
            "step": state["step"],
        }
    }
    spec = model_spec(metrics, command, validation["threshold"])
    spec["training"]["base_model"] = state.get("base_model")
    spec["test_time_flips"] = list(flips)
    return export_package(flip_averaged(net, ()).eval(), folder, spec, (1, 1, 16, 64, 64))


def calibrate(
    package_dir: Path,
    session: AnnotatedSession,
    thresholds: Sequence[float] = tuple(round(0.1 + 0.05 * i, 2) for i in range(15)),
) -> dict:
    """Score an exported package through `detect_spines`' pipeline on a session; record it.

    The best threshold becomes the package's default, and its precision, recall and F1 (with the
    F1 at every threshold tried) go into ``metrics.validation`` of its model.yaml.

    Parameters
    ----------
    package_dir
        A spine-2p package folder; its model.yaml is rewritten.
    session
        The annotated session to score on (`train_and_export` passes the validation session).
    thresholds
        Heatmap thresholds to try, by default 0.1 to 0.8 in steps of 0.05.

    Returns
    -------
    dict
        The ``metrics.validation`` written: ``f1``, ``precision``, ``recall`` and ``threshold``
        of the best, ``f1_by_threshold``, the scored ``data`` and the ``training_step``.
    """
    from napari_spines.models import open_package
    from napari_spines.models.spec import write_spec
    from napari_spines.spines.detection import predict_heatmaps

    package = open_package(package_dir)
    spec = package.spec
    volume = read_volumes(session.stack)[0]
    maps = predict_heatmaps(volume.data, volume.axes, package, volume.voxel_size_um)
    post = spec.postprocessing
    scores = {
        t: score_on_session(maps.postprocessed({**post, "threshold": t}).coords, session)
        for t in thresholds
    }
    best = max(scores, key=lambda t: scores[t].f1)
    validation = {
        "data": f"{session.stack.stem}, within 4 µm of traced dendrites, 1.0 µm one-to-one "
        "matching, through napari-spines detect",
        "f1": round(scores[best].f1, 3),
        "precision": round(scores[best].precision, 3),
        "recall": round(scores[best].recall, 3),
        "threshold": best,
        "f1_by_threshold": {str(t): round(s.f1, 3) for t, s in scores.items()},
        "training_step": spec.metrics.get("validation", {}).get("step"),
    }
    write_spec(
        package_dir / "model.yaml",
        dataclasses.replace(
            spec,
            postprocessing={**post, "threshold": best},
            metrics={**spec.metrics, "validation": validation},
        ),
    )
    return validation
