"""The model commands: ``predict`` (a model's raw output), ``models`` and ``devices``."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from napari_spines.cli._common import (
    TextProgress,
    add_runtime_options,
    add_tile_option,
    add_voxel_size_option,
    fail,
    model_voxel_size,
    output_problem,
    positive_int,
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``predict``, ``models`` and ``devices``."""
    predict_ = commands.add_parser(
        "predict", help="run a model over a stack; write its raw output (float32, channels first)"
    )
    predict_.add_argument("image", type=Path, help="stack to run on (TIFF, HDF5, Zarr)")
    predict_.add_argument(
        "-m",
        "--model",
        required=True,
        help="model name (see `napari-spines models`) or package path",
    )
    predict_.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="output .tif (OME-TIFF) or .zarr (written tile by tile)",
    )
    add_tile_option(predict_)
    add_runtime_options(predict_)
    add_voxel_size_option(predict_)
    predict_.add_argument(
        "--batch-size", type=positive_int, default=1, help="tiles per network call"
    )
    predict_.set_defaults(handler=predict)
    commands.add_parser("models", help="list the models: built-in, user folder").set_defaults(
        handler=models
    )
    commands.add_parser(
        "devices", help="list the runtimes and devices really usable here"
    ).set_defaults(handler=devices)


def predict(args: argparse.Namespace) -> int:
    """Run a model over a stack and write the raw output, channels first, float32."""
    import contextlib

    from napari_spines.io import VolumeReadError, read_volumes
    from napari_spines.io.outputs import write_float_tiff, zarr_output
    from napari_spines.models import ModelError, ready_model, run_model

    suffix = args.output.name.lower()
    if problem := output_problem(args.output, (".tif", ".tiff", ".zarr"), suffix.endswith(".zarr")):
        return fail(problem)
    try:
        volume = read_volumes(args.image)[0]
        model = ready_model(args.model, runtime=args.runtime, device=args.device)
    except (VolumeReadError, ModelError) as exc:
        return fail(str(exc))
    spec = model.spec
    voxel = model_voxel_size(volume, args.voxel_size, args.image, spec.input.voxel_size_um)
    out_axes = "C" + volume.axes.replace("C", "")
    spatial = [n for a, n in zip(volume.axes, volume.shape, strict=True) if a != "C"]
    voxel_out = voxel.for_model() or spec.input.voxel_size_um[-len(voxel.um) :]
    # a Zarr output is written beside args.output and swapped in only once the run finished
    output: contextlib.AbstractContextManager = contextlib.nullcontext()
    if suffix.endswith(".zarr"):
        output = zarr_output(args.output, (spec.n_output_channels, *spatial), out_axes, voxel_out)
    print(
        f"{spec.name} ({model.runtime}, {model.provider}) on {args.image.name} "
        f"{volume.shape} {volume.axes}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    try:
        with output as out:
            run = run_model(
                model,
                volume.levels[0],
                volume.axes,
                voxel.for_model(),
                tile=args.tile,
                batch_size=args.batch_size,
                out=out,
                progress=TextProgress("predict"),
            )
    except (ValueError, ModelError) as exc:
        return fail(f"{args.image.name}: {exc}")
    seconds = time.perf_counter() - started
    if out is None:
        write_float_tiff(args.output, run.outputs, out_axes, voxel_out)
    print(
        f"wrote {args.output} {tuple(run.outputs.shape)} float32 in {seconds:.1f} s "
        f"({math.prod(spatial) / seconds / 1e6:.2f} Mvoxel/s)",
        file=sys.stderr,
    )
    return 0


def models(args: argparse.Namespace) -> int:
    """Print every registered model: name, task, runtimes, voxel size, where it comes from."""
    from napari_spines.models import list_models, user_dir

    packages = list_models()
    rows = [("name", "version", "task", "runtimes", "voxel size (µm)", "source")]
    for p in packages:
        rows.append(
            (
                p.spec.name,
                p.spec.version,
                p.spec.task,
                ",".join(p.runtimes),
                " × ".join(f"{v:g}" for v in p.spec.input.voxel_size_um),
                f"{p.source}: {p.root}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if not packages:
        print("(no models)")
    print(f"\nuser models folder: {user_dir()} (set NAPARI_SPINES_MODELS to change it)")
    return 0


def devices(args: argparse.Namespace) -> int:
    """Print the runtimes, execution providers and devices that really work here."""
    from napari_spines.models import usable_devices

    for runtime, names in usable_devices().items():
        print(f"{runtime}: {', '.join(names) or 'none'}")
    return 0
