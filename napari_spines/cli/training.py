"""The training commands: ``train spines``, ``train affinities`` and ``train restoration``.

``train restoration`` lives in `napari_spines.cli.restoration`, beside ``restore``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_spines.cli import restoration
from napari_spines.cli._common import (
    DefaultsFormatter,
    fail_with,
    non_negative_int,
    positive_float,
    positive_int,
    report_trained,
    show_training_log,
)

if TYPE_CHECKING:
    from napari_spines.training.export import TrainedModel


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``train`` with its models ``spines`` and ``affinities``."""
    train = commands.add_parser("train", help="train a built-in model on your data")
    what = train.add_subparsers(dest="what", metavar="MODEL", required=True)
    spines = what.add_parser(
        "spines",
        help="the spine-head detector (spine-2p)",
        formatter_class=DefaultsFormatter,
    )
    spines.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder of NAME.tif + NAME_spines.csv + NAME_dendrites.csv",
    )
    spines.add_argument(
        "--train",
        nargs="+",
        required=True,
        metavar="NAME",
        help="annotated sessions to train on, by NAME in --data (e.g. rr30a_tp0 rr30a_tp1)",
    )
    spines.add_argument(
        "--validate",
        required=True,
        metavar="NAME",
        help="the held-out session that chooses the checkpoint and the threshold",
    )
    spines.add_argument("--out", type=Path, required=True, help="run folder (log, checkpoint)")
    spines.add_argument("--minutes", type=positive_float, default=60.0, help="training time budget")
    spines.add_argument(
        "--width", type=positive_int, default=8, help="U-Net width of the first level"
    )
    spines.add_argument(
        "--synthetic", type=non_negative_int, default=8, help="synthetic stacks to mix in"
    )
    spines.add_argument(
        "--start-from",
        type=Path,
        metavar="PACKAGE",
        help="continue from a spine-2p package or checkpoint (fine-tuning)",
    )
    add_training_options(spines)
    spines.set_defaults(handler=train_spines)

    affinities = what.add_parser(
        "affinities",
        help="the EM affinity model (em-affinity)",
        formatter_class=DefaultsFormatter,
    )
    affinities.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder with isbi2012/ and gala/ (../shared/data/em)",
    )
    affinities.add_argument(
        "--out", type=Path, required=True, help="run folder (log, checkpoints, exported package)"
    )
    affinities.add_argument(
        "--minutes", type=positive_float, default=60.0, help="training time budget"
    )
    affinities.add_argument(
        "--width", type=positive_int, default=12, help="U-Net width of level one"
    )
    affinities.add_argument(
        "--synthetic", type=non_negative_int, default=2, help="synthetic EM volumes to mix in"
    )
    affinities.add_argument(
        "--start-from",
        type=Path,
        metavar="PACKAGE",
        help="continue from an em-affinity package or a training checkpoint (fine-tuning)",
    )
    affinities.add_argument(
        "--add",
        nargs=2,
        action="append",
        default=[],
        type=Path,
        metavar=("IMAGE", "LABELS"),
        help="also train on your own stack and its labels (e.g. proofread "
        "and saved by the Segmentation widget); repeatable",
    )
    affinities.add_argument(
        "--recipe",
        choices=("affinities", "boundary", "long-range"),
        default=None,
        help="long-range (em-affinity 0.3.0's): a 3D U-Net predicts the nearest-neighbour "
        "affinities and those 2 sections and 3, 9, 27 pixels away; affinities: the nearest "
        "ones only (em-affinity 0.2.0); boundary: a 2D U-Net predicts cell interior per "
        "section, and the affinities follow from it (see docs/segmentation.md) (default: "
        "that of --start-from, else long-range)",
    )
    affinities.add_argument(
        "--every-section",
        action="store_true",
        help="train on every ISBI (0-19) and gala (0-49) section and choose nothing on them: "
        "the package is the last checkpoint; take its settings from a cross-validation "
        "(scripts/em_shipped_settings.py)",
    )
    affinities.add_argument(
        "--section-defects",
        action="store_true",
        help="augment with missing and misaligned sections (serial-section defects)",
    )
    add_training_options(affinities)
    affinities.set_defaults(handler=train_affinities)
    restoration.add_train_parser(what)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """``--lr``, ``--seed``, ``--device`` and ``--workers`` of the ``train`` commands."""
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=2e-3,
        help="peak learning rate (cosine decay over --minutes)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seeds the weights and the crops: another seed is another run of the same recipe",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (a CUDA GPU when torch sees one), cpu or cuda"
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="processes making augmented crops (use several with a GPU)",
    )


def train_spines(args: argparse.Namespace) -> int:
    """Train spine-2p, then export the best checkpoint as a model package in the run folder."""
    from napari_spines.training.spines import train_and_export

    return run_training(
        train_and_export, args.data, args.train, args.validate, args.out, **shared_options(args)
    )


def train_affinities(args: argparse.Namespace) -> int:
    """Train em-affinity, export the best checkpoint and score it on the held-out sections."""
    from napari_spines.io import read_volumes
    from napari_spines.training.affinity import train_and_export
    from napari_spines.training.em_data import EVERY_SECTION, SHIPPED_SPLIT, user_volume

    extra = []
    for image_path, labels_path in args.add:
        try:
            image, labels = (
                np.asarray(read_volumes(p)[0].levels[0]) for p in (image_path, labels_path)
            )
            extra.append(user_volume(image, labels, name=labels_path.name))
        except ValueError as exc:  # VolumeReadError included
            return fail_with(exc)
    return run_training(
        train_and_export,
        args.data,
        args.out,
        extra=extra,
        recipe=args.recipe,
        split=EVERY_SECTION if args.every_section else SHIPPED_SPLIT,
        defects=args.section_defects,
        **shared_options(args),
    )


def shared_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options both ``train`` models take, as ``train_and_export`` keywords."""
    names = ("minutes", "width", "synthetic", "start_from", "lr", "seed", "device", "workers")
    return {name: getattr(args, name) for name in names}


def run_training(train_and_export: Callable[..., TrainedModel], *args: Any, **options: Any) -> int:
    """Run a ``train_and_export`` for a ``train`` command; report its package and figures."""
    if options.get("start_from") is not None:  # checked before minutes of loading data
        from napari_spines.training.export import load_weights

        try:
            load_weights(Path(options["start_from"]))
        except ValueError as exc:
            return fail_with(exc, "--start-from: ")
    show_training_log()
    try:
        trained = train_and_export(
            *args, command=" ".join(["napari-spines", *sys.argv[1:]]), **options
        )
    except ValueError as exc:
        return fail_with(exc)
    return report_trained(trained)
