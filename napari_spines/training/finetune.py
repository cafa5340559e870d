"""Fine-tune a model on the corrections in a training store; write a new model package.

``napari-spines finetune --store DIR --model NAME|PATH -o OUTDIR`` and the Fine-tune widget
run `finetune`. It starts from the model's weights, learns from the newest version of each
store entry of the model's task (`napari_spines.training.corrections` says what a correction
means for the loss), holds part of every entry out, validates on it as it goes, keeps the best
weights (the model as it was counts too, so fine-tuning never makes the held-out score worse)
and stops early when the score stops improving. The package it writes records its lineage
(base model and its weights' sha256, the store entries and theirs, the held-out scores) and
its threshold, chosen on the held-out parts through the same pipeline as ``detect`` and
``segment``; the registry lists it from then on.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.progress import ProgressCallback, raise_if_cancelled
from napari_spines.training.store import TASK_OF_MODEL, load_store, model_record

logger = logging.getLogger(__name__)

#: Heatmap thresholds tried on the held-out parts (spines).
SPINE_THRESHOLDS = tuple(round(0.1 + 0.05 * i, 2) for i in range(15))
#: Affinity thresholds tried on the held-out parts (labels).
AFFINITY_THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
Validation = Callable[[dict], None]


@dataclass(frozen=True)
class FineTuned:
    """The package written, the held-out figures before and after, and one line on them."""

    package: Path
    before: dict
    after: dict
    summary: str


def finetune(
    store: str | Path,
    model: str | Path,
    out: str | Path,
    minutes: float = 10.0,
    device: str = "auto",
    lr: float | None = None,
    holdout: float = 0.25,
    validate_every: int | None = None,
    patience: int = 4,
    name: str | None = None,
    seed: int = 0,
    replay: str | Path | None = None,
    replay_share: float = 0.5,
    command: str = "",
    register: bool = True,
    progress: ProgressCallback | None = None,
    on_validation: Validation | None = None,
) -> FineTuned:
    """Fine-tune ``model`` on the store's entries of its task; write the package to ``out``.

    Parameters
    ----------
    store
        The training store folder.
    model
        A registered model name or a package path: a spine-detection (U-Net) or an affinity
        model with torch weights.
    out
        The new package's folder (replaced whole if it exists); ``finetune.jsonl`` in it logs
        every validation.
    minutes
        Time budget, data preparation included.
    device
        ``auto``, ``cpu`` or ``cuda``.
    lr
        Peak learning rate; None: 5e-4 for spines, 2e-4 for affinities.
    holdout
        Fraction of each entry held out for validation.
    validate_every
        Steps between validations; None: 80 for spines, 25 for affinities.
    patience
        Stop after this many validations without improvement.
    name
        The new model's name; None: the base name with ``-finetuned``.
    seed
        Seed of torch and of the crops.
    replay
        Another store, of data the model learnt from before (its training stacks saved with
        ``training add``, or earlier corrections): its entries of the task are mixed into the
        training crops against forgetting. Nothing of it is held out or chooses.
    replay_share
        The share of the training crops cut from ``replay``.
    command
        The command line, recorded in model.yaml.
    register
        Remember the package so the registry lists it (`napari_spines.models.registry`).
    progress
        ``(seconds spent, seconds of the budget)``; may raise `Cancelled` (nothing is written).
    on_validation
        Gets each validation record (``step``, ``loss``, ``f1`` or ``adapted_rand_error``).

    Returns
    -------
    FineTuned

    Raises
    ------
    ValueError
        A model that cannot be fine-tuned, a store with no entry of its task, a torch that is
        not installed, or a budget too short for one step.
    """
    from napari_spines.models import find_model
    from napari_spines.training.choices import NEEDS_TORCH

    try:
        import torch  # noqa: F401
    except ImportError:
        raise ValueError(NEEDS_TORCH) from None
    package = find_model(str(model))
    task = TASK_OF_MODEL.get(package.spec.task)
    if task is None:
        raise ValueError(
            f"model {package.spec.name!r} is a {package.spec.task} model; fine-tuning works for "
            "spine-detection and affinities models"
        )
    if "torch" not in package.runtimes:
        raise ValueError(f"model {package.spec.name!r} has no torch weights to fine-tune")
    from napari_spines.training.export import load_weights

    if "down.0.0.weight" not in load_weights(package.root):
        raise ValueError(
            f"model {package.spec.name!r} is not a napari-spines U-Net; fine-tuning works for "
            "the U-Nets napari-spines trains (spine-2p, em-affinity and their fine-tuned "
            "versions)"
        )
    contents = load_store(store)
    for problem in contents.problems:
        logger.warning("%s", problem)
    entries = contents.latest(task)
    if not entries:
        raise ValueError(
            f"{store}: the store holds no {task} entries (save corrections with the Training "
            f"data widget or `napari-spines training add`)"
        )
    replayed = _replay_entries(replay, task, replay_share)
    run = _SpineRun if task == "spines" else _LabelsRun
    options = {"lr": lr, "validate_every": validate_every}
    options = {k: v for k, v in options.items() if v}
    job = run(package, entries, device, holdout, seed, replayed, replay_share, **options)
    started = time.monotonic()
    out = Path(out)
    records: list[dict] = []

    def report(record: dict) -> None:
        records.append(record)
        logger.info("%s", json.dumps(record))
        if on_validation is not None:
            on_validation(record)

    before, after, state = job.train(minutes, started, patience, progress, report)
    raise_if_cancelled(progress)  # a Cancel during the last validation: nothing is written
    if progress is not None:
        progress(0, 0)  # exporting and choosing the threshold: no count to show
    lineage = {
        "base_model": model_record(package),
        "store": str(Path(store).resolve()),
        "fine_tune_data": [
            {"id": e.id, "sha256": e.digest, "source": e.record.get("source", {}).get("path")}
            for e in entries
        ],
        "command": command,
    }
    if replayed:
        lineage["replay_data"] = {
            "store": str(Path(replay).resolve()),
            "share": replay_share,
            "entries": [{"id": e.id, "sha256": e.digest} for e in replayed],
        }
    job.export(state, out, name or f"{package.spec.name}-finetuned", lineage, before, after)
    if after is before:  # no weights beat the base's on the held-out parts: keep its threshold
        chosen = {
            "threshold": package.spec.postprocessing.get("threshold"),
            "f1": before.get("f1", float("nan")),
            "adapted_rand_error": before.get("adapted_rand_error"),
            "kept": "the base model's weights and threshold",
        }
        _update_spec(out, {"threshold": chosen["threshold"]}, {"kept": chosen["kept"]})
    else:
        chosen = job.choose_threshold(out)
    with open(out / "finetune.jsonl", "w") as log:
        for record in records:
            log.write(json.dumps(record) + "\n")
    if register:
        from napari_spines.models.registry import register_package

        register_package(out)
    summary = (
        f"no step beat the base on the held-out parts; kept {chosen['kept']}"
        if "kept" in chosen
        else job.summary(before, after, chosen)
    )
    return FineTuned(out, before, after, summary)


def _replay_entries(replay: str | Path | None, task: str, share: float) -> list:
    """The replay store's newest entries of ``task``; [] without a store.

    Raises
    ------
    ValueError
        A share outside (0, 1), or a replay store with no entry of the task.
    """
    if replay is None:
        return []
    if not 0 < share < 1:
        raise ValueError(f"the replay share must lie between 0 and 1, got {share}")
    contents = load_store(replay)
    for problem in contents.problems:
        logger.warning("%s", problem)
    entries = contents.latest(task)
    if not entries:
        raise ValueError(f"{replay}: the replay store holds no {task} entries")
    return entries


def _mixed(chances: np.ndarray, replayed: np.ndarray, share: float) -> np.ndarray:
    """Draw chances of the store's items then the replay's: ``share`` of them replayed."""
    if not len(replayed):
        return chances / chances.sum()
    return np.concatenate(
        [(1 - share) * chances / chances.sum(), share * replayed / replayed.sum()]
    )


def _version(base: str) -> str:
    """The fine-tuned model's version: the base's with a timestamp, e.g. ``0.1.2+ft.2026…``."""
    return f"{base}+ft.{datetime.datetime.now():%Y%m%d%H%M%S}"


class _SpineRun:
    """Fine-tuning of a spine-detection U-Net (2 outputs: heads, shaft)."""

    def __init__(
        self,
        package: Any,
        entries: Sequence[Any],
        device: str,
        holdout: float,
        seed: int,
        replay: Sequence[Any] = (),
        share: float = 0.0,
        lr: float = 5e-4,
        validate_every: int = 80,
    ) -> None:
        import torch

        from napari_spines.models import run_model
        from napari_spines.training.batches import resolve_device
        from napari_spines.training.corrections import spine_sample
        from napari_spines.training.export import load_weights
        from napari_spines.training.network import TrainingNetwork, engine_spec
        from napari_spines.training.spines import POOLS, model_spec, unet_layout
        from napari_spines.training.unet import build_unet

        self.package, self.lr, self.every, self.seed = package, lr, validate_every, seed
        self.device = resolve_device(device)
        torch.manual_seed(seed)
        state = load_weights(package.root)
        width, kernels = unet_layout(state)
        self.net = build_unet(1, 2, width=width, pools=POOLS, kernels=kernels)
        self.net.load_state_dict(state)
        self.net.eval()
        network = TrainingNetwork(self.net, engine_spec(model_spec()))

        def predict_shaft(image: np.ndarray) -> np.ndarray:
            return run_model(network, image, "ZYX").outputs[1]

        self.samples = [spine_sample(e, predict_shaft, holdout) for e in entries]
        self.validations = [s.held_out for s in self.samples if s.held_out is not None]
        self.replayed = [spine_sample(e, predict_shaft, 0) for e in replay]  # nothing held out
        self.share = share
        self.net.to(self.device)

    def score(self) -> dict:
        """Pooled F1 (best threshold) of the network's peaks on every held-out part."""
        from napari_spines.models import run_model
        from napari_spines.spines.detect import find_peaks
        from napari_spines.spines.evaluate import score_on_session
        from napari_spines.spines.metrics import DetectionScore
        from napari_spines.training.network import TrainingNetwork, engine_spec
        from napari_spines.training.spines import VOXEL_SIZE_UM, model_spec

        self.net.eval()
        network = TrainingNetwork(self.net, engine_spec(model_spec()))
        totals = {t: np.zeros(3, int) for t in SPINE_THRESHOLDS}
        for val in self.validations:
            heat = run_model(network, val.image, "ZYX").outputs[0]
            for t in SPINE_THRESHOLDS:
                coords, _ = find_peaks(heat, VOXEL_SIZE_UM, t, 1.0)
                data = (coords + val.start + 0.5) / np.asarray(val.factors) - 0.5
                s = score_on_session(data, val.session)
                totals[t] += (s.true_positives, s.false_positives, s.false_negatives)
        self.net.train()
        scores = {t: DetectionScore(*map(int, v)) for t, v in totals.items()}
        best = max(scores, key=lambda t: scores[t].f1)
        return {
            "f1": round(scores[best].f1, 4),
            "precision": round(scores[best].precision, 4),
            "recall": round(scores[best].recall, 4),
            "threshold": best,
        }

    def train(
        self,
        minutes: float,
        started: float,
        patience: int,
        progress: ProgressCallback | None,
        report: Validation,
    ) -> tuple[dict, dict, dict]:
        """Train; return (held-out before, held-out of the kept weights, kept state dict)."""
        from napari_spines.training.spines import loss_fn, random_crop

        if not self.validations:
            raise ValueError(
                "no entry has enough heads (8) to hold some out for validation: save more "
                "corrections first"
            )
        samples = self.samples + self.replayed
        chances = _mixed(
            np.array([s.train_heads for s in self.samples], float) + 1,
            np.array([s.train_heads for s in self.replayed], float) + 1,
            self.share,
        )

        def example(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
            return random_crop(samples[rng.choice(len(samples), p=chances)].train, rng)

        better = lambda new, old: new["f1"] > old["f1"]  # noqa: E731
        return _keep_best(
            self, example, 4, loss_fn, better, minutes, started, patience, progress, report
        )

    def export(
        self, state: dict, out: Path, name: str, lineage: dict, before: dict, after: dict
    ) -> None:
        """Write the package: the kept weights, with the base model's test-time flips."""
        from napari_spines.training.export import export_package, flip_averaged
        from napari_spines.training.spines import POOLS, TTA_FLIPS, unet_layout
        from napari_spines.training.unet import build_unet

        width, kernels = unet_layout(state)
        net = build_unet(1, 2, width=width, pools=POOLS, kernels=kernels)
        net.load_state_dict({k: v.cpu() for k, v in state.items()})
        spec = _derived_spec(self.package, name, lineage)
        spec["metrics"] = {
            "fine_tuning": {
                "held_out": "the last quarter of each store entry's heads, 1.0 µm matching",
                "before": before,
                "after": after,
            }
        }
        # the engine runs the flips (an older base had them inside its graph)
        spec["test_time_flips"] = spec.get("test_time_flips") or list(TTA_FLIPS)
        export_package(flip_averaged(net, ()).eval(), out, spec, (1, 1, 16, 64, 64))

    def choose_threshold(self, out: Path) -> dict:
        """Score the package through detect's pipeline on the held-out parts; keep the best."""
        from napari_spines.models import open_package
        from napari_spines.spines.detection import predict_heatmaps
        from napari_spines.spines.evaluate import score_on_session
        from napari_spines.spines.metrics import DetectionScore

        package = open_package(out)
        post = package.spec.postprocessing
        totals = {t: np.zeros(3, int) for t in SPINE_THRESHOLDS}
        for sample in self.samples:
            val = sample.held_out
            if val is None:
                continue
            from napari_spines.training.corrections import read_entry_image

            image = read_entry_image(sample.entry)
            factors = np.asarray(val.factors)
            start = np.maximum(np.floor(val.start / factors), 0).astype(int)
            stop = np.ceil((val.start + val.image.shape) / factors).astype(int)
            crop = image[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))]
            maps = predict_heatmaps(crop, "ZYX", package, sample.entry.voxel_size_um)
            for t in SPINE_THRESHOLDS:
                coords = maps.postprocessed({**post, "threshold": t}).coords + start
                s = score_on_session(coords, val.session)
                totals[t] += (s.true_positives, s.false_positives, s.false_negatives)
        scores = {t: DetectionScore(*map(int, v)) for t, v in totals.items()}
        best = max(scores, key=lambda t: scores[t].f1)
        chosen = {
            "through": "napari-spines detect on the held-out parts",
            "threshold": best,
            "f1": round(scores[best].f1, 3),
            "precision": round(scores[best].precision, 3),
            "recall": round(scores[best].recall, 3),
            "f1_by_threshold": {str(t): round(s.f1, 3) for t, s in scores.items()},
        }
        _update_spec(out, {"threshold": best}, {"held_out_detect": chosen})
        return chosen

    @staticmethod
    def summary(before: dict, after: dict, chosen: dict) -> str:
        """One line on the held-out figures."""
        return (
            f"held-out F1 {before['f1']:.3f} before, {after['f1']:.3f} after fine-tuning "
            f"(network peaks); through detect: F1 {chosen['f1']:.3f} at threshold "
            f"{chosen['threshold']}"
        )


class _LabelsRun:
    """Fine-tuning of an affinity U-Net on proofread labels."""

    def __init__(
        self,
        package: Any,
        entries: Sequence[Any],
        device: str,
        holdout: float,
        seed: int,
        replay: Sequence[Any] = (),
        share: float = 0.0,
        lr: float = 2e-4,
        validate_every: int = 25,
    ) -> None:
        import torch

        from napari_spines.training.affinity import recipe_network, recipe_of
        from napari_spines.training.batches import resolve_device
        from napari_spines.training.corrections import labels_volumes
        from napari_spines.training.export import load_weights

        self.package, self.lr, self.every, self.seed = package, lr, validate_every, seed
        self.device = resolve_device(device)
        torch.manual_seed(seed)
        state = load_weights(package.root)
        self.recipe = recipe_of(state)
        if self.recipe == "boundary":
            raise ValueError(
                f"{package.spec.name} derives its affinities from a 2D interior map; "
                "fine-tuning supports affinity networks (em-affinity's recipes) only"
            )
        self.width = int(state["down.0.0.weight"].shape[0])
        self.net = recipe_network(self.recipe, self.width)
        self.net.load_state_dict(state)
        pairs = [labels_volumes(e, holdout) for e in entries]
        self.volumes = [train for train, _ in pairs]
        self.validations = [held for _, held in pairs if held is not None]
        self.replayed = [labels_volumes(e, 0)[0] for e in replay]  # nothing held out
        self.share = share
        self.net.to(self.device)

    def score(self) -> dict:
        """Validation loss and adapted Rand error on the held-out parts (lower is better)."""
        from napari_spines.training.affinity import validation_scores

        self.net.eval()
        scores = validation_scores(self.net, self.validations, recipe=self.recipe)
        self.net.train()
        return {
            "adapted_rand_error": round(scores["adapted_rand_error"], 4),
            "validation_loss": round(scores["validation_loss"], 4),
        }

    def train(
        self,
        minutes: float,
        started: float,
        patience: int,
        progress: ProgressCallback | None,
        report: Validation,
    ) -> tuple[dict, dict, dict]:
        """Train; return (held-out before, held-out of the kept weights, kept state dict)."""
        from napari_spines.training.affinity import AffinityExamples, loss_fn, recipe_offsets

        if not self.validations:
            raise ValueError(
                "no entry is large enough to hold part of it out (4 sections, or 64 columns): "
                "save a larger region"
            )
        chances = _mixed(
            np.array([v.labels.size for v in self.volumes], float),
            np.array([v.labels.size for v in self.replayed], float),
            self.share,
        )
        volumes = self.volumes + self.replayed
        example = AffinityExamples(volumes, chances, recipe_offsets(self.recipe))
        better = lambda new, old: new["adapted_rand_error"] < old["adapted_rand_error"]  # noqa: E731
        return _keep_best(
            self, example, 2, loss_fn, better, minutes, started, patience, progress, report
        )

    def export(
        self, state: dict, out: Path, name: str, lineage: dict, before: dict, after: dict
    ) -> None:
        """Write the package: the kept weights, averaged over em-affinity's flips."""
        from napari_spines.training.affinity import (
            TTA_FLIPS,
            flip_averaged,
            recipe_network,
            recipe_offsets,
        )
        from napari_spines.training.export import export_package

        net = recipe_network(self.recipe, self.width)
        net.load_state_dict({k: v.cpu() for k, v in state.items()})
        spec = _derived_spec(self.package, name, lineage)
        spec["metrics"] = {
            "fine_tuning": {
                "held_out": "the last quarter of each store entry's sections",
                "before": before,
                "after": after,
            }
        }
        averaged = flip_averaged(net, TTA_FLIPS, recipe_offsets(self.recipe))
        export_package(averaged.eval(), out, spec, (1, 1, 8, 64, 64))

    def choose_threshold(self, out: Path) -> dict:
        """Segment the held-out parts with the package at every threshold; keep the best.

        The threshold is chosen per mode the held-out parts ran in ("3d" where the labels
        cross sections, else "2d"), among `AFFINITY_THRESHOLDS` and the mode's default (0 for
        mutex watershed fragments: no merge), and goes where that mode reads it: its own
        ``postprocessing.modes`` entry when it has one, else the top-level threshold.
        """
        from napari_spines.models import open_package
        from napari_spines.segmentation.metrics import (
            mean_score,
            score_per_section,
            score_segmentation,
        )
        from napari_spines.segmentation.pipeline import segment_image

        package = open_package(out)
        errors: dict[str, dict[float, list[float]]] = {}
        for volume in self.validations:
            mode = "3d" if volume.z_known else "2d"
            segmentation = segment_image(volume.image, "ZYX", package, mode=mode)
            candidates = sorted({*AFFINITY_THRESHOLDS, segmentation.threshold})
            by_threshold = errors.setdefault(mode, {t: [] for t in candidates})
            for t in by_threshold:
                predicted = segmentation.labels(t)
                score = (
                    score_segmentation(volume.labels, predicted)
                    if volume.z_known
                    else mean_score(score_per_section(volume.labels, predicted))
                )
                by_threshold[t].append(score.adapted_rand_error)
        postprocessing = dict(package.spec.postprocessing)
        modes = {m: dict(v) for m, v in (postprocessing.get("modes") or {}).items()}
        per_mode, all_errors = {}, []
        for mode, by_threshold in errors.items():
            mean = {t: float(np.mean(v)) for t, v in by_threshold.items()}
            best = min(mean, key=mean.__getitem__)
            all_errors += by_threshold[best]
            if mode in modes:
                modes[mode]["threshold"] = best
            else:
                postprocessing["threshold"] = best
            per_mode[mode] = {
                "threshold": best,
                "adapted_rand_error": round(mean[best], 4),
                "adapted_rand_error_by_threshold": {str(t): round(e, 4) for t, e in mean.items()},
            }
        first = next(iter(per_mode.values()))
        chosen = {
            "through": "napari-spines segment on the held-out parts",
            "threshold": first["threshold"],
            "adapted_rand_error": round(float(np.mean(all_errors)), 4),
            "modes": per_mode,
        }
        if modes:
            postprocessing["modes"] = modes
        _update_spec(out, postprocessing, {"held_out_segment": chosen})
        return chosen

    @staticmethod
    def summary(before: dict, after: dict, chosen: dict) -> str:
        """One line on the held-out figures."""
        return (
            f"held-out adapted Rand error {before['adapted_rand_error']:.4f} before, "
            f"{after['adapted_rand_error']:.4f} after fine-tuning; through segment: "
            f"{chosen['adapted_rand_error']:.4f} at threshold {chosen['threshold']}"
        )


def _keep_best(
    job: Any,
    example: Callable[[np.random.Generator], tuple[np.ndarray, ...]],
    batch_size: int,
    loss_fn: Callable[..., Any],
    better: Callable[[dict, dict], bool],
    minutes: float,
    started: float,
    patience: int,
    progress: ProgressCallback | None,
    report: Validation,
) -> tuple[dict, dict, dict]:
    """The loop both runs share: validate, train, keep the best weights, stop early.

    The model as it was (step 0) is the first candidate. Returns (held-out scores before,
    held-out scores of the kept weights, kept state dict); the second is the first object
    itself when no step did better.
    """
    from napari_spines.training.batches import example_batches
    from napari_spines.training.loop import timed_steps

    before = job.score()
    report({"step": 0, "minutes": 0.0, **before})
    best, kept, waited = before, copy.deepcopy(job.net.state_dict()), 0
    job.net.train()
    batches = example_batches(example, batch_size, job.seed, 0, job.device)
    for step, loss, last in timed_steps(
        job.net, batches, loss_fn, job.lr, minutes, started, progress=progress
    ):
        if step % job.every and not last:
            continue
        scores = job.score()
        minutes_spent = round((time.monotonic() - started) / 60, 2)
        report({"step": step, "minutes": minutes_spent, "loss": round(loss.item(), 5), **scores})
        if better(scores, best):
            best, kept, waited = scores, copy.deepcopy(job.net.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    return before, best, kept


def _derived_spec(package: Any, name: str, lineage: dict) -> dict:
    """The base package's model.yaml mapping, renamed, with the fine-tuning lineage."""
    spec = package.spec.to_dict()
    spec.pop("weights", None)
    spec["name"] = name
    spec["version"] = _version(package.spec.version)
    spec["description"] = (
        f"{package.spec.description.rstrip('.')}. Fine-tuned from {package.spec.name} "
        f"{package.spec.version} on {len(lineage['fine_tune_data'])} corrected store entries."
    )
    spec["training"] = {**spec.get("training", {}), **lineage}
    return spec


def _update_spec(folder: Path, postprocessing: dict, metrics: dict) -> None:
    """Merge into a package's model.yaml (rewritten atomically by `write_spec`)."""
    from napari_spines.models import open_package
    from napari_spines.models.spec import write_spec

    spec = open_package(folder).spec
    write_spec(
        folder / "model.yaml",
        dataclasses.replace(
            spec,
            postprocessing={**spec.postprocessing, **postprocessing},
            metrics={**spec.metrics, **metrics},
        ),
    )
