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

from napari_spines.training.em_data import GALA_SECTIONS, Split
from napari_spines.training.mode_settings import (
    GALA_SCALES,
    MUTEX_BIASES,
    THRESHOLDS,
    errors_by_threshold,
    gala_block,
    scoring_affinities,
)

logger = logging.getLogger(__name__)

N_FOLDS = 4
ISBI_SECTIONS = 20
#: Sections of the inner validation block, taken from the start of the next fold's block.
INNER_ISBI = 3
INNER_GALA = 8


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

    from napari_spines.training.em_data import section_labels

    folder = data / "isbi2012"
    picked = list(isbi)
    return {
        "isbi": (
            tifffile.imread(folder / "isbi2012_train_image.tif")[picked],
            section_labels(tifffile.imread(folder / "isbi2012_train_membranes.tif")[picked]),
            "2d",
        ),
        "gala": (*gala_block(data, gala), "3d"),
    }


def score_fold(
    package: Path,
    data: Path,
    fold: Fold,
    thresholds: Sequence[float] = THRESHOLDS,
    gala_scales: Sequence[float] = GALA_SCALES,
    method: str | None = None,
    min_sizes: Sequence[int] = (0,),
    volumes: Sequence[str] = ("isbi", "gala"),
) -> dict:
    """Choose each mode's settings on the fold's inner validation; score its test blocks.

    ISBI ("2d") gets a threshold; gala ("3d") a threshold and an in-plane scale; both a
    ``min_size`` when the mutex watershed segments.

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
    method
        How to segment (`errors_by_threshold`); None: as the package says.
    min_sizes
        The mutex watershed's ``min_size`` values to choose from.
    volumes
        Which of ``"isbi"`` and ``"gala"`` to score.

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
        if name not in volumes:
            continue
        image, labels, mode = inner[name]
        choices = {}
        for scale in scales:
            affinities = scoring_affinities(opened, image, scale)
            for size in min_sizes:
                choices[scale, size] = errors_by_threshold(
                    opened, image, labels, mode, thresholds, scale, method, size, affinities
                ).mean(1)
        scale, size = min(choices, key=lambda s: choices[s].min())
        chosen = int(np.argmin(choices[scale, size]))
        image, labels, mode = test[name]
        errors = errors_by_threshold(opened, image, labels, mode, thresholds, scale, method, size)
        oracle = int(np.argmin(errors.mean(1)))
        result[name] = {
            "threshold": thresholds[chosen],
            "in_plane_scale": scale,
            "min_size": size,
            "inner_errors": {
                f"{s:g}" if len(min_sizes) == 1 else f"{s:g}, {m}": round(float(e.min()), 4)
                for (s, m), e in choices.items()
            },
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
    thresholds: Sequence[float] | None = None,
    method: str | None = None,
    min_sizes: Sequence[int] = (0,),
    volumes: Sequence[str] = ("isbi", "gala"),
    continue_from: Path | None = None,
    **options: Any,
) -> dict:
    """Train, choose and test every fold; write ``out/cross_validation.json``.

    A fold whose ``fold_K/result.json`` exists is not run again, and one whose package was
    exported is scored without training again, so an interrupted run goes on. With a
    ``method``, the packages are segmented that way instead of as they say, and the results
    go to ``result_<method>.json`` and ``cross_validation_<method>.json``.

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
        Agglomeration thresholds (mutex watershed biases) to choose from; None: `THRESHOLDS`,
        or `MUTEX_BIASES` for the mutex watershed.
    method
        ``"agglomeration"`` or ``"mutex_watershed"`` (`errors_by_threshold`); None: the
        mutex watershed for the long-range recipe, else as each package says.
    min_sizes
        The mutex watershed's ``min_size`` values to choose from.
    volumes
        Which of ``"isbi"`` and ``"gala"`` to score; with one only, ``_<volume>`` is added to
        the file names.
    continue_from
        An earlier cross-validation run folder: fold ``K`` goes on training from its
        ``fold_K/last.pt`` (same sections), for ``minutes`` more.
    **options
        Further keyword arguments of `napari_spines.training.affinity.train`.

    Returns
    -------
    dict
        ``folds`` (each fold's sections, training step chosen, thresholds and test errors) and
        ``summary``: per ISBI section and per gala block the test error, with means and spread.
    """
    from napari_spines.training.affinity import DEFAULT_RECIPE, export, train
    from napari_spines.training.em_data import check_data

    check_data(data)
    scoring = method
    recipe = options.get("recipe") or DEFAULT_RECIPE
    if method is None and recipe == "long-range":  # what it was made for
        scoring = "mutex_watershed"
    if thresholds is None:
        thresholds = MUTEX_BIASES if scoring == "mutex_watershed" else THRESHOLDS
    suffix = ("" if method is None else f"_{method}") + (
        "" if len(volumes) == 2 else f"_{volumes[0]}"
    )
    results = []
    for fold in folds if folds is not None else nested_folds():
        folder = out / f"fold_{fold.index}"
        done = folder / f"result{suffix}.json"
        if done.exists():
            results.append(json.loads(done.read_text()))
            continue
        package = folder / "em-affinity"
        if not (package / "model.yaml").exists():
            if continue_from is not None:
                options["start_from"] = continue_from / f"fold_{fold.index}" / "last.pt"
            checkpoint = train(data, folder, minutes=minutes, split=fold.split, **options)
            export(checkpoint, package, command=f"fold {fold.index}")
        result = {
            "fold": fold.index,
            "isbi_test": list(fold.isbi_test),
            "gala_test": [fold.gala_test[0], fold.gala_test[-1]],
            "split": {key: list(value) for key, value in asdict(fold.split).items()},
            "minutes": minutes,
            **score_fold(
                package,
                data,
                fold,
                thresholds,
                method=scoring,
                min_sizes=min_sizes,
                volumes=volumes,
            ),
        }
        logger.info("fold %d: %s", fold.index, result)
        folder.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(result, indent=1))
        results.append(result)
    summary: dict[str, Any] = {}
    if "isbi" in volumes:
        isbi = np.array([e for r in results for e in r["isbi"]["test_errors"]])
        summary["isbi_per_section"] = {
            str(z): e
            for r in results
            for z, e in zip(r["isbi_test"], r["isbi"]["test_errors"], strict=True)
        }
        summary["isbi_mean"] = round(float(isbi.mean()), 4)
        summary["isbi_fold_means"] = [
            round(float(np.mean(r["isbi"]["test_errors"])), 4) for r in results
        ]
        summary["isbi_sd"] = round(float(isbi.std()), 4)
    if "gala" in volumes:
        gala = np.array([r["gala"]["test_errors"][0] for r in results])
        summary["gala_per_block"] = [round(float(e), 4) for e in gala]
        summary["gala_mean"] = round(float(gala.mean()), 4)
    report = {"folds": results, "summary": summary}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"cross_validation{suffix}.json").write_text(json.dumps(report, indent=1))
    return report
