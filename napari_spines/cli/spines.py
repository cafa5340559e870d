"""The spine commands: ``detect`` (spine heads of a stack) and ``score`` (against annotations)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.cli._common import (
    TextProgress,
    add_runtime_options,
    add_tile_option,
    add_voxel_size_option,
    fail,
    fail_with,
    finite_float,
    model_voxel_size,
    output_problem,
    positive_float,
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``detect`` and ``score``."""
    detect_ = commands.add_parser("detect", help="find spine heads in a stack; write a CSV")
    detect_.add_argument("image", type=Path, help="ZYX or TZYX stack")
    detect_.add_argument("-o", "--output", required=True, type=Path, help="output .csv")
    detect_.add_argument(
        "-m",
        "--model",
        default="spine-2p",
        help="spine-detection model name or path (spine-2p; spine-dog is the "
        "classical difference-of-Gaussians baseline)",
    )
    add_voxel_size_option(detect_)
    detect_.add_argument(
        "--threshold", type=finite_float, help="minimum score (default: the model's)"
    )
    detect_.add_argument(
        "--previous",
        type=Path,
        metavar="STACK",
        help="the previous session's stack: propose this session's spines from its corrected "
        "ones (needs --previous-spines); adds status (carried/new) and track_id columns",
    )
    detect_.add_argument(
        "--previous-spines",
        type=Path,
        metavar="CSV",
        help="the previous session's corrected spines (z, y, x in its voxels; track_id kept "
        "when present; rejected rows left out)",
    )
    add_tile_option(detect_)
    add_runtime_options(detect_)
    detect_.set_defaults(handler=detect)

    score_ = commands.add_parser(
        "score", help="score a spines CSV against an annotated session (precision, recall, F1)"
    )
    score_.add_argument("spines", type=Path, help="spines .csv (from detect or Export CSV)")
    score_.add_argument(
        "--session",
        required=True,
        type=Path,
        metavar="STACK.tif",
        help="annotated stack; STACK_spines.csv and STACK_dendrites.csv beside it",
    )
    score_.add_argument(
        "--min-score",
        type=finite_float,
        default=None,
        help="ignore spines scoring below this (default: keep all)",
    )
    score_.add_argument(
        "--within-um",
        type=positive_float,
        default=4.0,
        help="score only within this distance of a traced dendrite",
    )
    score_.add_argument(
        "--match-um",
        type=positive_float,
        default=1.0,
        help="a detection matches an annotation within this distance",
    )
    score_.set_defaults(handler=score)


def detect(args: argparse.Namespace) -> int:
    """Detect spines and write ``id,[t,]z,y,x,z_um,y_um,x_um,score``."""
    from napari_spines.io import VolumeReadError, read_volumes
    from napari_spines.io.points_csv import write_points_csv
    from napari_spines.models import ModelError
    from napari_spines.spines.detection import detect_spines

    if problem := output_problem(args.output, (".csv",)):
        return fail(problem)
    try:
        volume = read_volumes(args.image)[0]
    except VolumeReadError as exc:
        return fail(str(exc))
    voxel = model_voxel_size(volume, args.voxel_size, args.image)
    if (args.previous is None) != (args.previous_spines is None):
        return fail("--previous and --previous-spines go together")
    if args.previous is not None:
        return detect_from_previous(args, volume, voxel)
    started = time.perf_counter()
    try:
        found = detect_spines(
            volume.levels[0],
            volume.axes,
            args.model,
            voxel.for_model(),
            args.threshold,
            runtime=args.runtime,
            device=args.device,
            progress=TextProgress("detect"),
            tile=args.tile,
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


def detect_from_previous(args: argparse.Namespace, volume: Any, voxel: Any) -> int:
    """``detect --previous``: carry the previous session's spines, add new ones, write a CSV."""
    from napari_spines.cli.sessions import read_session_points, read_sessions
    from napari_spines.io import VolumeReadError
    from napari_spines.io.points_csv import read_points_csv, write_points_csv
    from napari_spines.models import ModelError
    from napari_spines.sessions.track import detect_from_previous as propose

    if volume.axes != "ZYX":
        return fail(f"{args.image.name}: axes {volume.axes}; --previous needs a ZYX stack")
    try:
        (previous, current), spacing = read_sessions([args.previous, args.image], args.voxel_size)
        previous_um = read_session_points(args.previous_spines, spacing)
        _, _, columns = read_points_csv(args.previous_spines)
    except (VolumeReadError, OSError, ValueError) as exc:
        return fail_with(exc)
    ids = None
    if "track_id" in columns:
        if "status" in columns:
            columns["track_id"] = columns["track_id"][
                np.asarray(columns["status"]).astype(str) != "rejected"
            ]
        try:
            ids = np.asarray(columns["track_id"], dtype=float).astype(int)
        except ValueError:
            return fail(f"{args.previous_spines.name}: track_id holds values that are not numbers")
    started = time.perf_counter()
    try:
        found = propose(
            current,
            spacing,
            previous,
            previous_um,
            ids,
            model=args.model,
            runtime=args.runtime,
            device=args.device,
            progress=TextProgress("detect"),
            tile=args.tile,
        )
    except (ValueError, ModelError) as exc:
        return fail(f"{args.image.name}: {exc}")
    found = found.most_doubtful_first()  # as reviewed
    write_points_csv(
        args.output,
        found.coords_um / np.asarray(spacing),
        spacing,
        {
            "id": range(1, len(found) + 1),
            "score": found.scores,
            "status": found.statuses,
            "track_id": found.track_ids,
        },
    )
    carried = found.n_carried
    print(
        f"{carried} spines carried from {args.previous.name}, {len(found) - carried} new, "
        f"{len(found.lost)} of {len(previous_um)} not found (lost) in "
        f"{time.perf_counter() - started:.1f} s → {args.output}",
        file=sys.stderr,
    )
    return 0


def score(args: argparse.Namespace) -> int:
    """Print precision, recall and F1 of a spines CSV on an annotated session.

    Spines with status ``rejected`` (a reviewed export) are not counted as detections.
    """
    from napari_spines.io import VolumeReadError
    from napari_spines.io.points_csv import read_points_csv
    from napari_spines.spines.evaluate import counted_spines, load_session, score_on_session

    try:
        session = load_session(args.session)
        coords, _, properties = read_points_csv(args.spines)
    except (VolumeReadError, OSError, ValueError) as exc:
        return fail_with(exc)
    if coords.shape[1] != 3:
        return fail(
            f"{args.spines.name}: needs z, y, x columns (one time point), "
            f"not {coords.shape[1]} axes"
        )
    try:
        detections = counted_spines(coords, properties, args.min_score)
    except ValueError as exc:
        return fail_with(exc, f"{args.spines.name}: ")
    result = score_on_session(detections, session, args.within_um, args.match_um)
    print(f"{args.spines.name} on {args.session.stem}: {result}")
    return 0
