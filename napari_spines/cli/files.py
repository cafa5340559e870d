"""The file commands: ``info`` (what the reader sees) and ``synthetic`` (stacks from a seed)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from napari_spines.cli._common import fail, non_negative_int, output_problem, positive_int
from napari_spines.validation import check_memory

#: Peak bytes per voxel while a synthetic stack is drawn (float64 canvases and blurs).
SYNTHETIC_BYTES_PER_VOXEL = 64


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``synthetic`` and ``info``."""
    synthetic = commands.add_parser(
        "synthetic", help="write a synthetic stack with its ground truth (from a seed)"
    )
    synthetic.add_argument("kind", choices=("two-photon", "two-photon-sessions", "em"))
    synthetic.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="stack .tif; ground truth goes beside it (_spines.csv or _labels.tif)",
    )
    synthetic.add_argument("--shape", nargs=3, type=positive_int, metavar=("Z", "Y", "X"))
    synthetic.add_argument("--seed", type=non_negative_int, default=0)
    synthetic.set_defaults(handler=lambda a: write_synthetic(a.kind, a.output, a.shape, a.seed))
    info_ = commands.add_parser("info", help="print what the reader sees in a file")
    info_.add_argument("file", type=Path)
    info_.add_argument(
        "--lazy",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force (or forbid) lazy reading; default decides by size",
    )
    info_.set_defaults(handler=lambda a: info(a.file, lazy=a.lazy))


def info(path: Path, lazy: bool | None = None) -> int:
    """Print shape, dtype, axes, voxel size and laziness of every volume in ``path``."""
    from napari_spines.io import VolumeReadError, read_volumes
    from napari_spines.io.points_csv import looks_like_points_csv, read_points_csv
    from napari_spines.voxel_size import VoxelSize

    try:
        if looks_like_points_csv(path):
            coords, voxel, properties = read_points_csv(path)
            print(
                f"{path}: {len(coords)} points, axes {coords.shape[1]}D, "
                f"voxel size {VoxelSize(voxel)}, columns {', '.join(properties) or '-'}"
            )
            return 0
        volumes = read_volumes(path, lazy=lazy)
    except VolumeReadError as exc:
        return fail(str(exc))
    print(f"{path}")
    for v in volumes:
        nbytes = v.dtype.itemsize * math.prod(v.shape)
        print(f"  {v.kind} '{v.name}'")
        print(f"    shape:      {v.shape}  ({_format_bytes(nbytes)})")
        print(f"    dtype:      {v.dtype}")
        print(f"    axes:       {v.axes}")
        known = "" if v.voxel_size_known else "  (not in the file: 1 µm assumed)"
        print(f"    voxel size: {VoxelSize(v.voxel_size_um)}{known}")
        print(f"    lazy:       {'yes' if v.lazy else 'no'}")
        if v.multiscale:
            print(f"    multiscale: {len(v.levels)} levels {[tuple(lv.shape) for lv in v.levels]}")
    return 0


def write_synthetic(kind: str, output: Path, shape: Sequence[int] | None, seed: int) -> int:
    """Write a synthetic stack (OME-TIFF with voxel size) and its ground truth beside it."""
    from napari_spines.io import write_labels_tiff, write_points_csv
    from napari_spines.io.outputs import write_float_tiff
    from napari_spines.synthetic import synthetic_em, synthetic_two_photon

    if problem := output_problem(output, (".tif", ".tiff")):
        return fail(problem)
    sessions = 3 if kind == "two-photon-sessions" else 1
    voxels = math.prod(shape or (32, 256, 256)) * sessions
    check_memory(voxels * SYNTHETIC_BYTES_PER_VOXEL, f"a synthetic stack of {voxels} voxels")
    extra = {"shape": tuple(shape)} if shape else {}
    stem = output.with_suffix("")
    if kind == "em":
        sample = synthetic_em(seed=seed, **extra)
        write_float_tiff(output, sample.image, "ZYX", sample.voxel_size_um, sample.image.dtype)
        truth = write_labels_tiff(f"{stem}_labels.tif", sample.labels, sample.voxel_size_um)
    else:
        sample = synthetic_two_photon(seed=seed, n_timepoints=sessions, **extra)
        axes = "TZYX" if sessions > 1 else "ZYX"
        write_float_tiff(output, sample.image, axes, sample.voxel_size_um, sample.image.dtype)
        truth = write_points_csv(
            f"{stem}_spines.csv", sample.spines, sample.voxel_size_um, {"id": sample.spine_ids}
        )
    print(f"wrote {output} {sample.image.shape} and {truth}", file=sys.stderr)
    return 0


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"
