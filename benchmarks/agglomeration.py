"""Agglomeration speed and accuracy on the same affinities: ours, plain waterz, skimage.

Run:  .venv/bin/python benchmarks/agglomeration.py [--data ../shared/data/em] [--json OUT]

The affinities are the built-in ``em-affinity`` model's on held-out real data (ISBI 2012
sections 15-19, gala sections 35-49), computed once; every method then gets the same array:

- **napari-spines**: seeded-watershed fragments, then waterz agglomeration by the mean or a
  quantile (50 %, the median: em-affinity's default; 75 %) of the affinities, run once to the
  end with its merge history kept; a threshold is a lookup-table relabel.
- **waterz**: ``waterz.agglomerate`` with its own zwatershed fragments, by the mean or the
  median, one call per threshold sweep (how it is usually run).
- **mutex watershed** (``mwatershed``): every channel the model predicts (em-affinity 0.3.0:
  nearest-neighbour and long-range), each edge weighted ``affinity - bias``; per section ("2d",
  no z-edges) on ISBI, in 3D on gala. One call per bias; then again with the specks it leaves
  absorbed by their neighbours (``min_size``, `MIN_SIZES`), and then on the nearest-neighbour
  channels only. ``segment``'s default on serial sections is the absorbed mutex watershed's
  fragments under our agglomeration (its threshold 0: no merge), so that row is the default.
- **skimage**: a seeded watershed of the boundary map (seeds: connected components of voxels
  whose mean affinity is above a threshold), no agglomeration.

ISBI is scored per section (its labels are 2D), gala in 3D; the best threshold of each method
is reported, with its time. Mvoxels/s is the volume's voxel count over that time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))
#: The mutex watershed's ``min_size`` in 3D and per section: what the cross-validation's inner
#: blocks chose for the long-range recipe on gala and on ISBI (docs/segmentation.md).
MIN_SIZES = (400, 100)


def score(truth: np.ndarray, labels: np.ndarray, per_section: bool) -> float:
    """Adapted Rand error, per section (mean) or in 3D."""
    from napari_spines.segmentation.metrics import (
        mean_score,
        score_per_section,
        score_segmentation,
    )

    result = (
        mean_score(score_per_section(truth, labels))
        if per_section
        else score_segmentation(truth, labels)
    )
    return result.adapted_rand_error


def ours(
    affinities: np.ndarray, mode: str, quantile: int | None
) -> tuple[float, Callable[[float], np.ndarray]]:
    """Seconds to build the hierarchy, and the relabel function."""
    from napari_spines.segmentation.pipeline import segment_affinities

    started = time.perf_counter()
    segmentation = segment_affinities(affinities, mode=mode, quantile=quantile)
    return time.perf_counter() - started, segmentation.labels


def waterz_sweep(
    affinities: np.ndarray, quantile: int | None
) -> tuple[float, dict[float, np.ndarray]]:
    """waterz with its own fragments: one call, every threshold."""
    import waterz

    from napari_spines.segmentation.agglomeration import _quiet_stdout, scoring_function

    started = time.perf_counter()
    with _quiet_stdout():
        results = {
            t: seg.copy()
            for t, seg in zip(
                THRESHOLDS,
                waterz.agglomerate(
                    np.ascontiguousarray(affinities),
                    list(THRESHOLDS),
                    scoring_function=scoring_function(quantile),
                ),
                strict=True,
            )
        }
    return time.perf_counter() - started, results


def mutex(
    affinities: np.ndarray,
    bias: float,
    offsets: list,
    per_section: bool,
    min_size: int = 0,
) -> np.ndarray:
    """Mutex watershed of the channels at ``offsets`` (the first ones), at one bias."""
    from napari_spines.segmentation.mutex import mutex_watershed

    mode = "2d" if per_section else "3d"
    return mutex_watershed(affinities[: len(offsets)], offsets, bias, mode, min_size)


def skimage_watershed(affinities: np.ndarray, seed_affinity: float) -> np.ndarray:
    """Seeded watershed of the in-plane boundary map; seeds are confident cell interiors."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from napari_spines.segmentation.affinities import boundary_map

    boundaries = boundary_map(affinities)
    seeds, _ = ndi.label(boundaries < 1 - seed_affinity)
    return watershed(boundaries, seeds)


def stacks(data: Path) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """em-affinity's affinities (every channel) of its validation stacks: name → (affinities,
    truth, 2D).
    """
    from napari_spines.segmentation.pipeline import predict_affinities
    from napari_spines.training.em_data import validation_stacks

    return {
        name: (predict_affinities(image, "ZYX", every_channel=True), labels, per_section)
        for name, (image, labels, per_section, _) in validation_stacks(data).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data/em")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    from napari_spines.models import find_model
    from napari_spines.segmentation.affinities import NEAREST

    offsets = [tuple(o) for o in find_model("em-affinity").spec.outputs[0].offsets]
    rows = []
    for name, (every_channel, truth, per_section) in stacks(args.data).items():
        affinities = every_channel[:3]
        mvox = truth.size / 1e6
        for quantile in (None, 50, 75):
            for mode in ("2d", "2d+z", "3d"):
                seconds, labels = ours(affinities, mode, quantile)
                errors = {t: score(truth, labels(t), per_section) for t in THRESHOLDS}
                started = time.perf_counter()
                labels(0.5)
                relabel = time.perf_counter() - started
                best = min(errors, key=errors.get)
                score_name = "mean" if quantile is None else f"q{quantile}"
                rows.append(
                    {
                        "stack": name,
                        "method": f"napari-spines ({mode}, {score_name})",
                        "threshold": best,
                        "arand": errors[best],
                        "seconds": seconds,
                        "relabel_seconds": relabel,
                        "mvoxels_per_s": mvox / seconds,
                    }
                )
        for quantile in (None, 50):
            seconds, segmentations = waterz_sweep(affinities, quantile)
            errors = {t: score(truth, s, per_section) for t, s in segmentations.items()}
            best = min(errors, key=errors.get)
            score_name = "mean" if quantile is None else f"q{quantile}"
            rows.append(
                {
                    "stack": name,
                    "method": f"waterz (zwatershed fragments, {score_name})",
                    "threshold": best,
                    "arand": errors[best],
                    "seconds": seconds,
                    "relabel_seconds": None,
                    "mvoxels_per_s": mvox / seconds,
                }
            )
        size = MIN_SIZES[per_section]
        channels = f"{len(offsets)} channels" if len(offsets) > 3 else "nearest neighbours"
        for method, run in (
            (f"mutex watershed (mwatershed, {channels})", partial(mutex, offsets=offsets)),
            (
                f"mutex watershed, {channels}, segments under {size} voxels absorbed",
                partial(mutex, offsets=offsets, min_size=size),
            ),
            (
                f"mutex watershed, nearest neighbours, segments under {size} voxels absorbed",
                partial(mutex, offsets=list(NEAREST), min_size=size),
            ),
            ("skimage seeded watershed", lambda a, t, per_section: skimage_watershed(a[:3], t)),
        ):
            timed = {}
            for t in THRESHOLDS:
                started = time.perf_counter()
                labels = run(every_channel, t, per_section=per_section)
                timed[t] = (time.perf_counter() - started, score(truth, labels, per_section))
            best = min(timed, key=lambda t: timed[t][1])
            rows.append(
                {
                    "stack": name,
                    "method": method,
                    "threshold": best,
                    "arand": timed[best][1],
                    "seconds": timed[best][0],
                    "relabel_seconds": None,
                    "mvoxels_per_s": mvox / timed[best][0],
                }
            )
    print(
        "| stack | method | best threshold | adapted Rand error | time (s) | Mvoxel/s | "
        "relabel (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        relabel = "" if r["relabel_seconds"] is None else f"{r['relabel_seconds']:.3f}"
        print(
            f"| {r['stack']} | {r['method']} | {r['threshold']} | {r['arand']:.4f} | "
            f"{r['seconds']:.2f} | {r['mvoxels_per_s']:.2f} | {relabel} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
