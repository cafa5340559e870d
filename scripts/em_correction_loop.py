"""The correction loop for EM: proofread sections fine-tune em-affinity; score unseen sections.

    python scripts/em_correction_loop.py --data ../shared/data/em --work runs/em-loop

ISBI 2012 has 20 annotated sections, and the shipped em-affinity was trained on 0–14 and chosen
on 15–19, so no ISBI section is unseen by it. The loop therefore nests its own split:

1. a base em-affinity is trained on ISBI 0–9 (and gala 0–34, as shipped), its checkpoint and
   threshold chosen on ISBI 10–12 (and gala 35–49) (``--base`` skips this with a package);
2. ISBI 13–16, with their labels as a proofreader would leave them (the annotation), are saved
   in a store (``add_labels``, the box naming the sections); ``--store-from 10`` saves 10–16,
   as a proofreader who also corrected the sections the base was chosen on;
3. ``finetune`` fine-tunes the base on the store, choosing on the store's own held-out part
   (``--holdout``, ``--patience``, ``--validate-every``, ``--lr`` as ``napari-spines finetune``;
   ``--replay`` mixes the base's own ISBI 0–9 into the crops, as ``finetune --replay``);
4. both models segment ISBI 17–19, which neither training nor any choice saw, through
   ``segment_image`` at their own thresholds; the adapted Rand error per section is printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def scores(package: Path, image: np.ndarray, labels: np.ndarray) -> dict:
    """Mean adapted Rand error of ISBI sections at the package's threshold, and at its best."""
    from napari_spines.models import open_package
    from napari_spines.segmentation.metrics import mean_score, score_per_section
    from napari_spines.segmentation.pipeline import segment_image

    opened = open_package(package)
    threshold = float(opened.spec.postprocessing.get("threshold", 0.5))
    segmentation = segment_image(image, "ZYX", opened)
    by_threshold = {
        t: mean_score(score_per_section(labels, segmentation.labels(t))).adapted_rand_error
        for t in sorted({threshold, *(round(0.05 * i, 2) for i in range(8, 20))})
    }
    best = min(by_threshold, key=by_threshold.__getitem__)
    return {
        "threshold": threshold,
        "adapted_rand_error": round(by_threshold[threshold], 4),
        "best_threshold (oracle)": best,
        "best_adapted_rand_error (oracle)": round(by_threshold[best], 4),
    }


def main() -> None:
    """Run the loop; print the figures."""
    import tifffile

    from napari_spines.training import affinity, em_data
    from napari_spines.training.finetune import finetune
    from napari_spines.training.store import add_labels

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--base", type=Path, help="a base package trained on ISBI 0-9 only")
    parser.add_argument("--base-minutes", type=float, default=20.0)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--store-from", type=int, default=13, choices=range(10, 17))
    parser.add_argument("--holdout", type=float, default=0.25)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--validate-every", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument(
        "--replay",
        action="store_true",
        help="mix the base's own ISBI 0-9 (a replay store) into the fine-tuning crops",
    )
    parser.add_argument("--replay-share", type=float, default=0.5)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    isbi = args.data / "isbi2012"
    image_path = isbi / "isbi2012_train_image.tif"
    image = tifffile.imread(image_path)
    labels = em_data.section_labels(tifffile.imread(isbi / "isbi2012_train_membranes.tif"))

    base = args.base
    if base is None:
        # nested: 13-19 stay unseen by the base, its checkpoint and its threshold
        split = em_data.Split(isbi_train=tuple(range(10)), isbi_validate=(10, 11, 12))
        started = time.monotonic()
        trained = affinity.train_and_export(
            args.data,
            args.work / "base",
            minutes=args.base_minutes,
            command="ISBI 0-9",
            split=split,
        )
        base = trained.package
        print(f"base trained in {(time.monotonic() - started) / 60:.1f} min: {trained.summary}")

    store = args.work / "store"
    entry = add_labels(
        store,
        image,
        labels,
        affinity.VOXEL_SIZE_UM,
        box=(args.store_from, 0, 0, 17, 512, 512),
        source=image_path,
        counts={"sections proofread": 17 - args.store_from},
    )
    print(f"store entry {entry.id}: ISBI sections {args.store_from}-16")
    replay = None
    if args.replay:  # what the base trained on, saved as a store of its own
        replay = args.work / "replay-store"
        old = add_labels(
            replay,
            image,
            labels,
            affinity.VOXEL_SIZE_UM,
            box=(0, 0, 0, 10, 512, 512),
            source=image_path,
            counts={"sections the base trained on": 10},
        )
        print(f"replay store entry {old.id}: ISBI sections 0-9")
    started = time.monotonic()
    tuned = finetune(
        store,
        str(base),
        args.work / "finetuned",
        minutes=args.minutes,
        lr=args.lr,
        holdout=args.holdout,
        validate_every=args.validate_every,
        patience=args.patience,
        replay=replay,
        replay_share=args.replay_share,
    )
    print(f"fine-tuned in {(time.monotonic() - started) / 60:.1f} min: {tuned.summary}")
    unseen = slice(17, 20)
    figures = {
        name: scores(package, image[unseen], labels[unseen])
        for name, package in (("before", base), ("after", tuned.package))
    }
    print(json.dumps({"ISBI 17-19 (unseen)": figures}, indent=2))


if __name__ == "__main__":
    main()
