"""The EM segmentation commands: ``segment`` (neurons of a stack) and ``affinities`` (of labels)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from napari_spines.cli._common import (
    TextProgress,
    add_runtime_options,
    add_voxel_size_option,
    fail,
    output_problem,
    unit_interval,
    warn,
)
from napari_spines.io import VolumeReadError, read_volumes


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``segment`` and ``affinities``."""
    segment = commands.add_parser("segment", help="segment neurons in an EM stack; write labels")
    segment.add_argument("image", type=Path, help="ZYX EM stack")
    segment.add_argument("-o", "--output", required=True, type=Path, help="labels .tif")
    segment.add_argument(
        "-m",
        "--model",
        default="em-affinity",
        help="affinity model name or path (default em-affinity)",
    )
    segment.add_argument(
        "--threshold",
        type=unit_interval,
        help="agglomeration threshold in [0, 1]; higher merges more (default: the model's)",
    )
    segment.add_argument(
        "--quantile",
        type=int,
        metavar="Q",
        help="score merges by the Q%% quantile of the boundary's affinities "
        "(10-95, step 5; default: the model's, 50 = the median)",
    )
    add_voxel_size_option(segment)
    segment.add_argument(
        "--affinities-out",
        type=Path,
        metavar="AFF.tif",
        help="also write the affinities (float32, channels z, y, x first)",
    )
    segment.add_argument(
        "--mode",
        choices=("auto", "3d", "2d+z", "2d"),
        default="auto",
        help="3d: 3D fragments and merges; 2d+z: fragments per section, "
        "merged within and across sections; 2d: sections on their own. "
        "auto: 3d, then 2d+z from z steps twice the pixel size, 2d from "
        "eight times; without a voxel size, the z step is estimated from how "
        "alike neighbouring sections are",
    )
    add_runtime_options(segment)
    segment.set_defaults(handler=segment_stack)

    to_affinities = commands.add_parser(
        "affinities", help="affinities of a label volume (training targets, ground truth)"
    )
    to_affinities.add_argument("labels", type=Path, help="ZYX label volume (0 = boundary)")
    to_affinities.add_argument(
        "-o", "--output", required=True, type=Path, help="float32 .tif, channels z, y, x first"
    )
    to_affinities.set_defaults(handler=labels_affinities)


def segment_stack(args: argparse.Namespace) -> int:
    """Segment a stack and write its labels (input's shape, integer dtype)."""
    from napari_spines.io.labels_tiff import write_labels_tiff
    from napari_spines.io.outputs import write_float_tiff
    from napari_spines.models import ModelError
    from napari_spines.segmentation.pipeline import segment_image, segmentation_plan

    for path in (args.output, args.affinities_out):
        if path is not None and (problem := output_problem(path, (".tif", ".tiff"))):
            return fail(problem)
    try:
        volume = read_volumes(args.image)[0]
    except VolumeReadError as exc:
        return fail(str(exc))
    voxel = volume.voxel_size.given(args.voxel_size)
    started = time.perf_counter()
    try:
        package, settings = segmentation_plan(
            volume.levels[0],
            volume.axes,
            args.model,
            voxel.for_model(),
            None if args.mode == "auto" else args.mode,
            args.threshold,
        )
        if not voxel.known:
            warn(f"{args.image.name}: {settings.reason} (set --voxel-size Z Y X or --mode)")
        else:
            print(f"{args.image.name}: {settings.reason}", file=sys.stderr)
        result = segment_image(
            volume.levels[0],
            volume.axes,
            package,
            voxel.for_model(),
            settings.threshold,
            settings.mode,
            args.quantile,
            runtime=args.runtime,
            device=args.device,
            progress=TextProgress("segment", unit="%"),
        )
    except (ValueError, ModelError) as exc:
        return fail(f"{args.image.name}: {exc}")
    labels = result.labels()
    written_voxel = voxel.um
    write_labels_tiff(args.output, labels, written_voxel)
    if args.affinities_out is not None:
        write_float_tiff(args.affinities_out, result.affinities, "CZYX", written_voxel)
    n = int(labels.max(initial=0))  # agglomeration numbers segments 1..n
    print(
        f"{n} segments at threshold {result.threshold:g} in "
        f"{time.perf_counter() - started:.1f} s → {args.output}",
        file=sys.stderr,
    )
    return 0


def labels_affinities(args: argparse.Namespace) -> int:
    """Write the affinities of a label volume: 1 between neighbours with the same label."""
    from napari_spines.io.outputs import write_float_tiff
    from napari_spines.segmentation.affinities import labels_to_affinities

    if problem := output_problem(args.output, (".tif", ".tiff")):
        return fail(problem)
    try:
        volume = read_volumes(args.labels)[0]
    except VolumeReadError as exc:
        return fail(str(exc))
    labels = np.asarray(volume.levels[0])
    if labels.dtype.kind not in "biu" or volume.axes != "ZYX":
        return fail(
            f"{args.labels.name}: needs an integer ZYX label volume; this is "
            f"{volume.axes} {labels.dtype}"
        )
    if labels.min(initial=0) < 0:
        return fail(f"{args.labels.name}: labels must not be negative (0 is the boundary)")
    write_float_tiff(args.output, labels_to_affinities(labels), "CZYX", volume.voxel_size_um)
    print(f"affinities {(3, *labels.shape)} → {args.output}", file=sys.stderr)
    return 0
