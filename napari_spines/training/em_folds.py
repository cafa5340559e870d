"""Nested cross-validation of the EM affinity recipe over blocks of ISBI and gala sections.

Each fold holds out a block of ISBI sections and a block of gala sections as its test data. On
the rest, the network is trained, its checkpoint is chosen, and the agglomeration thresholds
are chosen (one for per-section "2d" on ISBI, one for "3d" on gala) on an inner validation
block. Only then is the test block segmented, at those thresholds. No choice sees it, so the
test figures are what a user gets on sections of the same acquisition that nothing was tuned
on.

Run::

    python scripts/em_cross_validation.py --data ../shared/data/em --out runs/em-cv --minutes 14
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.training.affinity import GALA_SECTIONS, Split

logger = logging.getLogger(__name__)

N_FOLDS = 4
ISBI_SECTIONS = 20
#: Sections of the inner validation block, taken from the start of the next fold's block.
INNER_ISBI = 3
INNER_GALA = 8
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(8, 20))  # 0.4 to 0.95
#: In-plane upsampling of gala's sections to choose from ("3d" mode's ``in_plane_scale``).
GALA_SCALES = (1.0, 1.5, 2.0, 2.5)


@dataclass(frozen=True)
class Fold:
    """One outer fold: its test blocks, and the split that trains and chooses without them."""

    index: int
    isbi_test: tuple[int, ...]
    gala_test: tuple[int, ...]
    split: Split


def blocks(n: int, k: int) -> list[tuple[int, ...]]:
    """``range(n)`` cut into ``k`` blocks of consecutive indices, as even as they can be.

    Parameters
    ----------
    n, k
        Number of indices and of blocks.

    Returns
    -------
    list of tuple of int

    Examples
    --------
    >>> blocks(10, 3)
    [(0, 1, 2, 3), (4, 5, 6), (7, 8, 9)]
    """
    return [tuple(int(i) for i in b) for b in np.array_split(np.arange(n), k)]


def nested_folds(
    n_folds: int = N_FOLDS,
    isbi_sections: int = ISBI_SECTIONS,
    gala_sections: int = GALA_SECTIONS,
) -> list[Fold]:
    """The outer folds: block ``k`` is tested; the next block's start validates; the rest trains.

    Parameters
    ----------
    n_folds
        Number of blocks of each volume.
    isbi_sections, gala_sections
        Number of sections of each volume.

    Returns
    -------
    list of Fold
        Within a fold, test, inner validation and training sections are disjoint; over the
        folds, every section is tested once.
    """
    isbi, gala = blocks(isbi_sections, n_folds), blocks(gala_sections, n_folds)
    folds = []
    for k in range(n_folds):
        after = (k + 1) % n_folds
        isbi_inner, gala_inner = isbi[after][:INNER_ISBI], gala[after][:INNER_GALA]
        split = Split(
            isbi_train=tuple(z for z in range(isbi_sections) if z not in isbi[k] + isbi_inner),
            isbi_validate=isbi_inner,
            gala_train=tuple(z for z in range(gala_sections) if z not in gala[k] + gala_inner),
            gala_validate=gala_inner,
        )
        folds.append(Fold(k, isbi[k], gala[k], split))
    return folds


def errors_by_threshold(
    package: Any,
    image: np.ndarray,
    labels: np.ndarray,
    mode: str,
    thresholds: Sequence[float] = THRESHOLDS,
    in_plane_scale: float = 1.0,
) -> np.ndarray:
    """Adapted Rand errors of a segmentation at each threshold: per section in "2d", else 3D.

    The stack is segmented as `segment_image` does, on its own grid upsampled by
    ``in_plane_scale`` in y and x.

    Parameters
    ----------
    package
        An opened affinity model package (`napari_spines.models.open_package`).
    image, labels
        A raw ``(Z, Y, X)`` stack and its instance labels (0 ignored).
    mode
        ``"2d"``: scored per section; any other mode: scored as one volume.
    thresholds
        Agglomeration thresholds.
    in_plane_scale
        Upsampling of the sections before the network.

    Returns
    -------
    numpy.ndarray
        ``(thresholds, sections)`` in "2d", ``(thresholds, 1)`` otherwise.
    """
    from napari_spines.segmentation.metrics import score_per_section, score_segmentation
    from napari_spines.segmentation.pipeline import predict_affinities, segment_affinities

    z, y, x = package.spec.network_voxel_size_um
    voxel = None if in_plane_scale == 1 else (z, y * in_plane_scale, x * in_plane_scale)
    affinities = predict_affinities(image, "ZYX", package, voxel)
    quantile = package.spec.postprocessing.get("quantile")
    segmentation = segment_affinities(affinities, mode, quantile=quantile)
    rows = []
    for t in thresholds:
        predicted = segmentation.labels(t)
        if mode == "2d":
            rows.append([s.adapted_rand_error for s in score_per_section(labels, predicted)])
        else:
            rows.append([score_segmentation(labels, predicted).adapted_rand_error])
    return np.array(rows)


def fold_stacks(data: Path, isbi: Sequence[int], gala: Sequence[int]) -> dict[str, tuple]:
    """ISBI sections (scored per section, "2d") and a gala block ("3d").

    Parameters
    ----------
    data
        Folder with ``isbi2012/`` and ``gala/``.
    isbi, gala
        Section indices; gala's must be consecutive.

    Returns
    -------
    dict
        ``"isbi"`` and ``"gala"``: ``(image, labels, mode)``.
    """
    import tifffile

    from napari_spines.training.affinity import section_labels

    picked, block = list(isbi), list(gala)
    folder, gala_folder = data / "isbi2012", data / "gala"
    return {
        "isbi": (
            tifffile.imread(folder / "isbi2012_train_image.tif")[picked],
            section_labels(tifffile.imread(folder / "isbi2012_train_membranes.tif")[picked]),
            "2d",
        ),
        "gala": (
            tifffile.imread(gala_folder / "gala_train_image.tif")[block],
            tifffile.imread(gala_folder / "gala_train_labels.tif")[block],
            "3d",
        ),
    }


def score_fold(
    package: Path,
    data: Path,
    fold: Fold,
    thresholds: Sequence[float] = THRESHOLDS,
    gala_scales: Sequence[float] = GALA_SCALES,
) -> dict:
    """Choose each mode's settings on the fold's inner validation; score its test blocks.

    ISBI ("2d") gets a threshold; gala ("3d") a threshold and an in-plane scale.

    Parameters
    ----------
    package
        The fold's exported package (trained and checkpoint-chosen without its test blocks).
    data
        Folder with ``isbi2012/`` and ``gala/``.
    fold
        The fold.
    thresholds
        Thresholds to choose from.
    gala_scales
        In-plane scales to choose from for gala.

    Returns
    -------
    dict
        Per volume: the chosen settings, the test errors at them (ISBI per section), and the
        test's own best threshold and error at the chosen scale, which no figure may be
        reported as (an oracle).
    """
    from napari_spines.models import open_package

    opened = open_package(package)
    inner = fold_stacks(data, fold.split.isbi_validate, fold.split.gala_validate)
    test = fold_stacks(data, fold.isbi_test, fold.gala_test)
    result: dict[str, Any] = {}
    for name, scales in (("isbi", (1.0,)), ("gala", tuple(gala_scales))):
        image, labels, mode = inner[name]
        choices = {
            scale: errors_by_threshold(opened, image, labels, mode, thresholds, scale).mean(1)
            for scale in scales
        }
        scale = min(choices, key=lambda s: choices[s].min())
        chosen = int(np.argmin(choices[scale]))
        image, labels, mode = test[name]
        errors = errors_by_threshold(opened, image, labels, mode, thresholds, scale)
        oracle = int(np.argmin(errors.mean(1)))
        result[name] = {
            "threshold": thresholds[chosen],
            "in_plane_scale": scale,
            "inner_errors": {str(s): round(float(e.min()), 4) for s, e in choices.items()},
            "test_errors": [round(float(e), 4) for e in errors[chosen]],
            "oracle_threshold": thresholds[oracle],
            "oracle_error": round(float(errors[oracle].mean()), 4),
        }
    return result


def cross_validate(
    data: Path,
    out: Path,
    minutes: float,
    folds: Sequence[Fold] | None = None,
    thresholds: Sequence[float] = THRESHOLDS,
    **options: Any,
) -> dict:
    """Train, choose and test every fold; write ``out/cross_validation.json``.

    A fold whose ``fold_K/result.json`` exists is not run again, and one whose package was
    exported is scored without training again, so an interrupted run goes on.

    Parameters
    ----------
    data
        Folder with ``isbi2012/`` and ``gala/`` (`check_data`).
    out
        Run folder; fold ``K`` trains in ``out/fold_K``.
    minutes
        Training budget per fold.
    folds
        The folds; default `nested_folds`.
    thresholds
        Agglomeration thresholds to choose from.
    **options
        Further keyword arguments of `napari_spines.training.affinity.train`.

    Returns
    -------
    dict
        ``folds`` (each fold's sections, training step chosen, thresholds and test errors) and
        ``summary``: per ISBI section and per gala block the test error, with means and spread.
    """
    from napari_spines.training.affinity import check_data, export, train

    check_data(data)
    results = []
    for fold in folds if folds is not None else nested_folds():
        folder = out / f"fold_{fold.index}"
        done = folder / "result.json"
        if done.exists():
            results.append(json.loads(done.read_text()))
            continue
        package = folder / "em-affinity"
        if not (package / "model.yaml").exists():
            checkpoint = train(data, folder, minutes=minutes, split=fold.split, **options)
            export(checkpoint, package, command=f"fold {fold.index}")
        result = {
            "fold": fold.index,
            "isbi_test": list(fold.isbi_test),
            "gala_test": [fold.gala_test[0], fold.gala_test[-1]],
            "split": {key: list(value) for key, value in asdict(fold.split).items()},
            "minutes": minutes,
            **score_fold(package, data, fold, thresholds),
        }
        logger.info("fold %d: %s", fold.index, result)
        folder.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(result, indent=1))
        results.append(result)
    isbi = np.array([e for r in results for e in r["isbi"]["test_errors"]])
    gala = np.array([r["gala"]["test_errors"][0] for r in results])
    summary = {
        "isbi_per_section": {
            str(z): e
            for r in results
            for z, e in zip(r["isbi_test"], r["isbi"]["test_errors"], strict=True)
        },
        "isbi_mean": round(float(isbi.mean()), 4),
        "isbi_fold_means": [round(float(np.mean(r["isbi"]["test_errors"])), 4) for r in results],
        "isbi_sd": round(float(isbi.std()), 4),
        "gala_per_block": [round(float(e), 4) for e in gala],
        "gala_mean": round(float(gala.mean()), 4),
    }
    report = {"folds": results, "summary": summary}
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross_validation.json").write_text(json.dumps(report, indent=1))
    return report


def choose_3d_settings(
    package: Path,
    data: Path,
    blocks: Sequence[Sequence[int]],
    thresholds: Sequence[float] = THRESHOLDS,
    scales: Sequence[float] = GALA_SCALES,
) -> dict:
    """Choose a package's "3d" in-plane scale and threshold on gala, cross-validated by block.

    Each block is scored at the settings best on the other blocks, so its figure is on data
    that the choice did not see; the settings to ship are then chosen on all the blocks.

    Parameters
    ----------
    package
        An affinity model package.
    data
        Folder with ``gala/``.
    blocks
        Runs of consecutive gala sections (at least two blocks), e.g. those the package's
        checkpoint was chosen on and that it never trained on.
    thresholds, scales
        The settings to choose from.

    Returns
    -------
    dict
        ``held_out``: per block its sections, the settings chosen on the others, its error at
        them and its own best error (an oracle); ``chosen``: ``threshold`` and
        ``in_plane_scale`` best over all blocks.
    """
    from napari_spines.models import open_package

    opened = open_package(package)
    errors = {}  # (scale, block) -> errors by threshold
    for b, block in enumerate(blocks):
        image, labels, mode = fold_stacks(data, [0], block)["gala"]
        for scale in scales:
            errors[scale, b] = errors_by_threshold(opened, image, labels, mode, thresholds, scale)[
                :, 0
            ]

    def best(chosen_on: Sequence[int]) -> tuple[float, int]:
        return min(
            ((s, t) for s in scales for t in range(len(thresholds))),
            key=lambda st: np.mean([errors[st[0], b][st[1]] for b in chosen_on]),
        )

    held_out = []
    for b, block in enumerate(blocks):
        scale, t = best([o for o in range(len(blocks)) if o != b])
        held_out.append(
            {
                "sections": [block[0], block[-1]],
                "in_plane_scale": scale,
                "threshold": thresholds[t],
                "error": round(float(errors[scale, b][t]), 4),
                "oracle_error": round(float(min(errors[s, b].min() for s in scales)), 4),
            }
        )
    scale, t = best(range(len(blocks)))
    return {
        "held_out": held_out,
        "chosen": {"in_plane_scale": scale, "threshold": thresholds[t]},
        "errors": {
            f"scale {s}, block {b}": [round(float(e), 4) for e in errors[s, b]] for s, b in errors
        },
    }


def record_3d_settings(package: Path, data: Path, sections: Sequence[int]) -> dict:
    """Choose a package's "3d" settings on two halves of gala ``sections``; write model.yaml.

    Parameters
    ----------
    package
        The affinity package; ``postprocessing.modes.3d`` of its model.yaml is rewritten.
    data
        Folder with ``gala/``.
    sections
        Consecutive gala sections the package never trained on (its validation sections).

    Returns
    -------
    dict
        The `choose_3d_settings` report.
    """
    import dataclasses

    from napari_spines.models import open_package
    from napari_spines.models.spec import write_spec

    run = list(sections)
    half = len(run) // 2
    report = choose_3d_settings(package, data, [run[:half], run[half:]])
    held_out = ", ".join(
        f"{h['sections'][0]}-{h['sections'][1]}: {h['error']}" for h in report["held_out"]
    )
    chosen_on = (
        f"gala sections {run[0]}-{run[-1]} (never trained on); each half scored at the "
        f"settings best on the other, adapted Rand error {held_out}"
    )
    spec = open_package(package).spec
    modes = {**(spec.postprocessing.get("modes") or {})}
    modes["3d"] = {**report["chosen"], "chosen_on": chosen_on}
    postprocessing = {**spec.postprocessing, "modes": modes}
    write_spec(
        Path(package) / "model.yaml", dataclasses.replace(spec, postprocessing=postprocessing)
    )
    return report
