"""An affinity model's default settings per mode, from its recipe's cross-validation.

The weights that ship are trained once more, on all the training sections, so no section is
left to choose their settings on without choosing and reporting on the same data. The settings
come from the cross-validation instead (`napari_spines.training.em_folds`): each fold chose its
own on an inner block, and the shipped value is the median of those choices (the lower of the
two middle ones for an even number of folds, so it is a value some fold chose). Per volume kind
the way of segmenting (agglomeration or mutex watershed) is the one with the lower
cross-validated error:

- ISBI's choices become mode "2d" (serial sections, scored per section);
- gala's become mode "3d" (isotropic, scored in 3D);
- ISBI's agglomeration threshold also becomes the top-level one (modes without their own).
"""

from __future__ import annotations

from pathlib import Path
from statistics import median_low
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from napari_spines.training.em_data import Split

#: volume of the cross-validation → the mode its choices are for
MODE_OF = {"isbi": "2d", "gala": "3d"}


def _mean(report: dict, volume: str) -> float:
    return float(report["summary"][f"{volume}_mean"])


def fold_medians(report: dict, volume: str) -> dict[str, float]:
    """Median over folds of each setting a fold chose for ``volume``.

    Parameters
    ----------
    report
        A ``cross_validation*.json`` report.
    volume
        ``"isbi"`` or ``"gala"``.

    Returns
    -------
    dict
        ``threshold``, ``in_plane_scale`` and ``min_size``.

    Examples
    --------
    >>> folds = [{"isbi": {"threshold": t, "in_plane_scale": 1.0, "min_size": m}}
    ...          for t, m in [(0.45, 100), (0.4, 100), (0.4, 400), (0.4, 100)]]
    >>> fold_medians({"folds": folds}, "isbi")
    {'threshold': 0.4, 'in_plane_scale': 1.0, 'min_size': 100}
    """
    chosen = [fold[volume] for fold in report["folds"]]
    return {
        key: median_low(c[key] for c in chosen)
        for key in ("threshold", "in_plane_scale", "min_size")
    }


def shipped_settings(reports: dict[str, dict]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-mode settings and the cross-validated figures behind them.

    Parameters
    ----------
    reports
        ``{"agglomeration": report, "mutex_watershed": report}``: the same folds' packages
        segmented each way (either may be absent).

    Returns
    -------
    tuple of dict
        ``postprocessing`` entries (``threshold`` and ``modes``) and ``metrics.cross_validation``.

    Raises
    ------
    ValueError
        Without an agglomeration report (the top-level threshold comes from it).
    """
    if "agglomeration" not in reports:
        raise ValueError("the agglomeration's cross-validation is needed for the threshold")
    modes: dict[str, dict] = {}
    figures: dict[str, Any] = {}
    for volume, mode in MODE_OF.items():
        scored = {m: r for m, r in reports.items() if f"{volume}_mean" in r["summary"]}
        method = min(scored, key=lambda m: _mean(scored[m], volume))
        chosen = fold_medians(scored[method], volume)
        settings: dict[str, Any] = {"threshold": chosen["threshold"]}
        if chosen["in_plane_scale"] != 1:
            settings["in_plane_scale"] = chosen["in_plane_scale"]
        if method == "mutex_watershed":  # the agglomeration then merges nothing by default
            settings = {"method": method, "bias": chosen["threshold"], "threshold": 0.0}
            settings["min_size"] = chosen["min_size"]
        settings["chosen_on"] = (
            f"median of the {len(scored[method]['folds'])} cross-validation folds' choices; "
            f"{method} was better than "
            + ", ".join(f"{m} ({_mean(r, volume):.3f})" for m, r in scored.items() if m != method)
            + f" with {_mean(scored[method], volume):.3f} on {volume}"
        )
        modes[mode] = settings
        figures[volume] = {
            m: {
                key: value
                for key, value in r["summary"].items()
                if key.startswith(volume) and key != "isbi_per_section"
            }
            | (
                {"per_section": list(r["summary"]["isbi_per_section"].values())}
                if volume == "isbi"
                else {}
            )
            for m, r in scored.items()
        }
        figures[volume]["shipped"] = method
    threshold = fold_medians(reports["agglomeration"], "isbi")["threshold"]
    return {"threshold": threshold, "modes": modes}, figures


def score_defaults(package_dir: Path, data: Path, split: Split | None = None) -> dict[str, dict]:
    """Adapted Rand errors of a package at its default settings on the shipped validation data.

    Those sections (ISBI 15–19 per section in "2d", gala 35–49 in "3d") chose the shipped
    weights' checkpoint, so these are validation figures, not held-out ones.

    Parameters
    ----------
    package_dir
        An affinity package folder.
    data
        Folder with ``isbi2012/`` and ``gala/``.
    split
        Scores its ``isbi_validate`` and ``gala_validate`` sections instead (`validation_stacks`).

    Returns
    -------
    dict
        Per stack: its mode, adapted Rand error and, per section, the errors.
    """
    from napari_spines.models import open_package
    from napari_spines.segmentation.metrics import (
        mean_score,
        score_per_section,
        score_segmentation,
    )
    from napari_spines.segmentation.pipeline import segment_image
    from napari_spines.training.em_data import SHIPPED_SPLIT, validation_stacks

    package = open_package(package_dir)
    scores: dict[str, dict] = {}
    stacks = validation_stacks(data, split or SHIPPED_SPLIT)
    for name, (image, labels, per_section, mode) in stacks.items():
        mode = mode or "2d"
        predicted = segment_image(image, "ZYX", package, mode=mode).labels()
        if per_section:
            sections = score_per_section(labels, predicted)
            error = mean_score(sections).adapted_rand_error
            extra = {"per_section": [round(s.adapted_rand_error, 4) for s in sections]}
        else:
            error, extra = score_segmentation(labels, predicted).adapted_rand_error, {}
        scores[name] = {"mode": mode, "adapted_rand_error": round(error, 4), **extra}
    return scores


def settings_of_package(package_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The per-mode settings and cross-validated figures an affinity package's card holds.

    For weights trained again with the same recipe (e.g. on every section): they take the
    settings the cross-validation gave the earlier weights.

    Parameters
    ----------
    package_dir
        An affinity package whose model.yaml has ``postprocessing.modes`` and
        ``metrics.cross_validation`` (as `write_shipped_settings` writes them).

    Returns
    -------
    tuple of dict
        As `shipped_settings`.

    Raises
    ------
    ValueError
        If the card lacks either.
    """
    from napari_spines.models.spec import read_spec

    spec = read_spec(Path(package_dir) / "model.yaml")
    cross_validation = spec.metrics.get("cross_validation")
    if not spec.postprocessing.get("modes") or not cross_validation:
        raise ValueError(f"{package_dir}: its model.yaml has no cross-validated settings")
    postprocessing = {key: spec.postprocessing[key] for key in ("threshold", "modes")}
    return postprocessing, cross_validation


def write_shipped_settings(
    package_dir: Path,
    settings: tuple[dict[str, Any], dict[str, Any]],
    data: Path,
    trained_on_them: bool = False,
) -> dict:
    """Write settings into a package's model.yaml, then its `score_defaults`.

    Parameters
    ----------
    package_dir
        The affinity package folder whose model.yaml is rewritten.
    settings
        ``postprocessing`` and ``metrics.cross_validation`` entries, from `shipped_settings`
        or `settings_of_package`.
    data
        Folder with ``isbi2012/`` and ``gala/``.
    trained_on_them
        True when the weights trained on the scored sections (``--every-section``): the
        scores go to ``metrics.training_sections``, a check that the package reproduces, not
        an accuracy; else to ``metrics.validation``.

    Returns
    -------
    dict
        The ``postprocessing`` and ``metrics`` written.
    """
    import dataclasses

    from napari_spines.models.spec import read_spec, write_spec

    card = package_dir / "model.yaml"
    postprocessing, cross_validation = settings
    spec = read_spec(card)
    spec = dataclasses.replace(
        spec,
        postprocessing={**spec.postprocessing, **postprocessing},
        metrics={**spec.metrics, "cross_validation": cross_validation},
    )
    write_spec(card, spec)
    if trained_on_them:
        key, through = (
            "training_sections",
            (
                "napari-spines segment at the package's defaults, on sections it trained on: a "
                "check that it reproduces, not its accuracy (see cross_validation)"
            ),
        )
    else:
        key, through = (
            "validation",
            (
                "napari-spines segment at the package's defaults; these sections chose the "
                "checkpoint, the settings come from the cross-validation"
            ),
        )
    scores = {"through": through, **score_defaults(package_dir, data)}
    spec = dataclasses.replace(spec, metrics={**spec.metrics, key: scores})
    write_spec(card, spec)
    return {"postprocessing": spec.postprocessing, "metrics": spec.metrics}
