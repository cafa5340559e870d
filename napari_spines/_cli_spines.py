"""The spine commands of ``napari-spines``: ``detect``, ``score`` and ``train spines``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_spines._cli_models import TextProgress
from napari_spines.cli import chosen_voxel_size, fail
from napari_spines.errors import first_line
from napari_spines.io import VolumeReadError, read_volumes
from napari_spines.io.points_csv import write_points_csv

if TYPE_CHECKING:
    from napari_spines.training.export import TrainedModel


def add_commands(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Register ``detect``, ``score`` and ``train``; return ``train``'s models."""
    detect = commands.add_parser("detect", help="find spine heads in a stack; write a CSV")
    detect.add_argument("image", type=Path, help="ZYX or TZYX stack")
    detect.add_argument("-o", "--output", required=True, type=Path, help="output .csv")
    detect.add_argument(
        "-m",
        "--model",
        default="spine-2p",
        help="spine-detection model name or path (spine-2p; spine-dog is the "
        "classical difference-of-Gaussians baseline)",
    )
    detect.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="voxel size in µm (default: from the file)",
    )
    detect.add_argument("--threshold", type=float, help="minimum score (default: the model's)")
    detect.add_argument("--runtime", choices=("auto", "onnx", "torch"), default="auto")
    detect.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")

    score = commands.add_parser(
        "score", help="score a spines CSV against an annotated session (precision, recall, F1)"
    )
    score.add_argument("spines", type=Path, help="spines .csv (from detect or Export CSV)")
    score.add_argument(
        "--session",
        required=True,
        type=Path,
        metavar="STACK.tif",
        help="annotated stack; STACK_spines.csv and STACK_dendrites.csv beside it",
    )
    score.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="ignore spines scoring below this (default: keep all)",
    )
    score.add_argument(
        "--within-um",
        type=float,
        default=4.0,
        help="score only within this distance of a traced dendrite",
    )
    score.add_argument(
        "--match-um",
        type=float,
        default=1.0,
        help="a detection matches an annotation within this distance",
    )

    train = commands.add_parser("train", help="train a built-in model on your data")
    what = train.add_subparsers(dest="what", metavar="MODEL", required=True)
    spines = what.add_parser("spines", help="the spine-head detector (spine-2p)")
    spines.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder of NAME.tif + NAME_spines.csv + NAME_dendrites.csv",
    )
    spines.add_argument("--train", nargs="+", required=True, metavar="NAME")
    spines.add_argument("--validate", required=True, metavar="NAME")
    spines.add_argument("--out", type=Path, required=True, help="run folder (log, checkpoint)")
    spines.add_argument("--minutes", type=float, default=60.0)
    spines.add_argument("--width", type=int, default=8, help="U-Net width of the first level")
    spines.add_argument("--synthetic", type=int, default=8, help="synthetic stacks to mix in")
    spines.add_argument(
        "--start-from",
        type=Path,
        metavar="PACKAGE",
        help="continue from a spine-2p package or checkpoint (fine-tuning)",
    )
    add_training_options(spines)
    return what


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """``--lr``, ``--device`` and ``--workers`` of the ``train`` commands."""
    parser.add_argument(
        "--lr", type=float, default=2e-3, help="peak learning rate (cosine decay over --minutes)"
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


def non_negative_int(text: str) -> int:
    """Parse an integer of 0 or more (an argparse ``type``)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def detect(args: argparse.Namespace) -> int:
    """Detect spines and write ``id,[t,]z,y,x,z_um,y_um,x_um,score``."""
    from napari_spines.models import ModelError
    from napari_spines.spines.detection import detect_spines

    if args.output.suffix.lower() != ".csv":
        return fail(f"{args.output}: output must be a .csv file")
    try:
        volume = read_volumes(args.image)[0]
    except VolumeReadError as exc:
        return fail(str(exc))
    voxel = chosen_voxel_size(volume, args.voxel_size)
    started = time.perf_counter()
    try:
        found = detect_spines(
            volume.levels[0],
            volume.axes,
            args.model,
            voxel,
            args.threshold,
            runtime=args.runtime,
            device=args.device,
            progress=TextProgress("detect"),
        )
    except (ValueError, ModelError) as exc:
        return fail(f"{args.image.name}: {exc}")
    write_points_csv(
        args.output,
        found.coords,
        found.voxel_size_um,
        {"id": range(1, len(found) + 1), "score": found.scores},
    )
    print(
        f"{len(found)} spines in {time.perf_counter() - started:.1f} s → {args.output}",
        file=sys.stderr,
    )
    return 0


def score(args: argparse.Namespace) -> int:
    """Print precision, recall and F1 of a spines CSV on an annotated session.

    Spines with status ``rejected`` (a reviewed export) are not counted as detections.
    """
    from napari_spines.io.points_csv import read_points_csv
    from napari_spines.spines.evaluate import counted_spines, load_session, score_on_session

    try:
        session = load_session(args.session)
        coords, _, properties = read_points_csv(args.spines)
    except (VolumeReadError, OSError, ValueError) as exc:
        return fail(first_line(exc))
    if coords.shape[1] != 3:
        return fail(
            f"{args.spines.name}: needs z, y, x columns (one time point), "
            f"not {coords.shape[1]} axes"
        )
    detections = counted_spines(coords, properties, args.min_score)
    result = score_on_session(detections, session, args.within_um, args.match_um)
    print(f"{args.spines.name} on {args.session.stem}: {result}")
    return 0


def train(args: argparse.Namespace) -> int:
    """Train spine-2p, then export the best checkpoint as a model package in the run folder."""
    from napari_spines.training.spines import train_and_export

    return run_training(
        train_and_export,
        args.data,
        args.train,
        args.validate,
        args.out,
        minutes=args.minutes,
        width=args.width,
        synthetic=args.synthetic,
        start_from=args.start_from,
        lr=args.lr,
        device=args.device,
        workers=args.workers,
    )


def run_training(train_and_export: Callable[..., TrainedModel], *args: Any, **options: Any) -> int:
    """Run a ``train_and_export`` for a ``train`` command; report its package and figures."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        trained = train_and_export(
            *args, command=" ".join(["napari-spines", *sys.argv[1:]]), **options
        )
    except ValueError as exc:
        return fail(first_line(exc))
    print(trained.summary, file=sys.stderr)
    print(
        f"model package: {trained.package} (copy it into the user models folder to use it)",
        file=sys.stderr,
    )
    return 0
