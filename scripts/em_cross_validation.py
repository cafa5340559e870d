"""Nested cross-validation of em-affinity's recipe: every figure on sections no choice saw.

    python scripts/em_cross_validation.py --data ../shared/data/em --out runs/em-cv-affinities \
        --minutes 10 --recipe affinities
    python scripts/em_cross_validation.py --data ../shared/data/em --out runs/em-cv-boundary \
        --minutes 10 --recipe boundary
    python scripts/em_cross_validation.py --data ../shared/data/em --out runs/em-cv-long-range \
        --minutes 10 --recipe long-range

Four folds. Each holds out a block of 5 ISBI sections and a block of 12-13 gala sections; the
network trains on the rest but for an inner validation block (3 ISBI and 8 gala sections from
the next fold's block), which chooses its checkpoint and both thresholds ("2d" on ISBI, "3d" on
gala). Then the held-out blocks are segmented. Prints the table for docs/segmentation.md and
writes ``OUT/cross_validation.json``. About ``4 × (minutes + 2)`` minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from napari_spines.training.affinity import DEFAULT_RECIPE, RECIPES
from napari_spines.training.em_folds import cross_validate


def main() -> None:
    """Run the folds; print per-fold and per-section figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with isbi2012/, gala/")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--minutes", type=float, default=10.0, help="training per fold")
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        default=DEFAULT_RECIPE,
        help=f"one of the training recipes (default: {DEFAULT_RECIPE})",
    )
    parser.add_argument(
        "--method",
        choices=("agglomeration", "mutex_watershed"),
        help="segment the folds' packages this way instead of as each says (scores the "
        "packages of an earlier run again, without training)",
    )
    parser.add_argument(
        "--min-size",
        type=int,
        nargs="+",
        default=[0],
        help="the mutex watershed's smallest segments to choose from (voxels)",
    )
    parser.add_argument(
        "--only", choices=("isbi", "gala"), help="score one of the two volumes, not both"
    )
    parser.add_argument(
        "--continue-from",
        type=Path,
        help="an earlier run folder: each fold trains on from its last checkpoint",
    )
    parser.add_argument(
        "--defects",
        action="store_true",
        help="augment with missing and misaligned sections (training.section_defects)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("onnx_ir", "onnxscript", "torch"):  # the exporter's logs
        logging.getLogger(name).setLevel(logging.WARNING)
    report = cross_validate(
        args.data,
        args.out,
        args.minutes,
        method=args.method,
        min_sizes=args.min_size,
        volumes=(args.only,) if args.only else ("isbi", "gala"),
        continue_from=args.continue_from,
        recipe=args.recipe,
        defects=args.defects,
    )
    print(
        "| fold | ISBI test sections | 2d threshold, min size (chosen) | ISBI error per section | "
        "mean | gala test block | 3d scale, threshold, min size (chosen) | gala error |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in report["folds"]:
        isbi_cells, gala_cells = ["", "", ""], ["", ""]
        if "isbi" in r:
            isbi = r["isbi"]
            errors = ", ".join(f"{e:.3f}" for e in isbi["test_errors"])
            mean = sum(isbi["test_errors"]) / len(isbi["test_errors"])
            isbi_cells = [f"{isbi['threshold']}, {isbi.get('min_size', 0)}", errors, f"{mean:.3f}"]
        if "gala" in r:
            gala = r["gala"]
            gala_cells = [
                f"{gala['in_plane_scale']:g}×, {gala['threshold']}, {gala.get('min_size', 0)}",
                f"{gala['test_errors'][0]:.3f}",
            ]
        print(
            f"| {r['fold']} | {r['isbi_test'][0]}-{r['isbi_test'][-1]} | "
            f"{' | '.join(isbi_cells)} | {r['gala_test'][0]}-{r['gala_test'][1]} | "
            f"{' | '.join(gala_cells)} |"
        )
    print(report["summary"])


if __name__ == "__main__":
    main()
