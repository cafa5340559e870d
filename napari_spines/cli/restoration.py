"""The restoration commands: ``crappify`` (make pairs), ``restore`` and ``train restoration``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.cli._common import (
    DefaultsFormatter,
    TextProgress,
    add_runtime_options,
    add_voxel_size_option,
    fail,
    fail_with,
    non_negative_int,
    output_problem,
    positive_float,
    positive_int,
    report_trained,
    show_training_log,
)
from napari_spines.io import VolumeReadError, read_volumes

TIFF = (".tif", ".tiff")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``crappify`` and ``restore``."""
    from napari_spines.restoration.crappify import PRESETS

    crappify = commands.add_parser(
        "crappify",
        help="make a good stack as bad as a fast acquisition (training pairs)",
        formatter_class=DefaultsFormatter,
    )
    crappify.add_argument("image", type=Path, help="good ZYX (or YX) stack")
    crappify.add_argument("-o", "--output", required=True, type=Path, help="crappified .tif")
    crappify.add_argument("--preset", choices=tuple(PRESETS), default="2p-low-photon")
    crappify.add_argument("--seed", type=non_negative_int, default=0, help="seed of the noise")
    crappify.add_argument(
        "--photon-fraction", type=positive_float, help="two-photon: fraction of photons kept"
    )
    crappify.add_argument(
        "--read-noise", type=float, help="Gaussian noise in grey levels (default: the preset's)"
    )
    crappify.add_argument(
        "--factor", type=positive_int, help="EM: pixels averaged per output pixel in y and x"
    )
    crappify.add_argument("--z-step", type=positive_int, help="two-photon: keep every k-th slice")
    add_voxel_size_option(crappify)
    crappify.set_defaults(handler=crappify_stack)

    restore = commands.add_parser(
        "restore",
        help="denoise or super-resolve a stack with a restoration model",
        formatter_class=DefaultsFormatter,
    )
    restore.add_argument("image", type=Path, help="YX, ZYX or TZYX stack")
    restore.add_argument("-o", "--output", required=True, type=Path, help="restored .tif")
    restore.add_argument(
        "-m",
        "--model",
        help="restoration model name or path (default: restore-em for EM voxel sizes, "
        "restore-2p otherwise)",
    )
    add_voxel_size_option(restore)
    add_runtime_options(restore)
    restore.set_defaults(handler=restore_stack)


def add_train_parser(what: argparse._SubParsersAction) -> None:
    """Register ``train restoration`` (under ``train``)."""
    from napari_spines.restoration.crappify import PRESETS
    from napari_spines.restoration.train import RECIPES

    train = what.add_parser(
        "restoration",
        help="a restoration model from your good stacks (pairs made by crappifying them)",
        formatter_class=DefaultsFormatter,
    )
    train.add_argument("--kind", choices=tuple(RECIPES), required=True, help="the modality")
    train.add_argument(
        "--train", nargs="+", type=Path, required=True, metavar="STACK", help="good stacks"
    )
    train.add_argument(
        "--train-z", nargs=2, type=int, metavar=("Z0", "Z1"), help="use slices Z0..Z1-1 only"
    )
    train.add_argument(
        "--validate",
        nargs="+",
        type=Path,
        required=True,
        metavar="STACK",
        help="good stacks that choose the checkpoint (keep them apart from the training ones)",
    )
    train.add_argument(
        "--validate-z", nargs=2, type=int, metavar=("Z0", "Z1"), help="validate on Z0..Z1-1 only"
    )
    train.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="crappifier of the pairs; it must be at least as bad as your real data "
        "(default: the kind's)",
    )
    train.add_argument("--out", type=Path, required=True, help="run folder (log, package)")
    train.add_argument("--name", help="package name (default restore-2p or restore-em)")
    train.add_argument("--minutes", type=positive_float, default=15.0, help="time budget")
    train.add_argument("--width", type=positive_int, default=8, help="U-Net width of level one")
    train.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate")
    train.add_argument(
        "--validate-every", type=positive_int, default=200, help="steps between validations"
    )
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_voxel_size_option(train)
    train.set_defaults(handler=train_restoration)


def _read_stack(path: Path, override: Any) -> tuple[np.ndarray, tuple[float, ...], bool]:
    """A ``ZYX`` (or ``YX``) stack, its voxel size, and whether that size is known."""
    volume = read_volumes(path)[0]
    if volume.axes not in ("ZYX", "YX"):
        raise VolumeReadError(f"{path.name}: needs a ZYX or YX stack, this one is {volume.axes}")
    voxel = volume.voxel_size.given(override)
    return np.asarray(volume.levels[0]), voxel.um, voxel.known


def crappify_stack(args: argparse.Namespace) -> int:
    """Write a crappified copy of a stack, with its (coarser) voxel size."""
    from napari_spines.io.outputs import write_float_tiff
    from napari_spines.restoration.crappify import crappified_voxel_size, preset

    if problem := output_problem(args.output, TIFF):
        return fail(problem)
    try:
        stack, voxel, _ = _read_stack(args.image, args.voxel_size)
        crappifier = preset(
            args.preset,
            photon_fraction=args.photon_fraction,
            read_noise=args.read_noise,
            factor=args.factor,
            z_step=args.z_step,
        )
    except ValueError as exc:
        return fail_with(exc)
    flat = stack.ndim == 2
    stack3 = stack[None] if flat else stack
    voxel3 = (1.0, *voxel) if flat else voxel
    crappy = crappifier(stack3, voxel3, seed=args.seed)
    out_voxel = crappified_voxel_size(crappifier, voxel3)
    if stack.dtype.kind in "iu":  # a real acquisition has integer grey levels
        info = np.iinfo(stack.dtype)
        crappy = np.clip(np.rint(crappy), info.min, info.max).astype(stack.dtype)
    axes = "YX" if flat else "ZYX"
    write_float_tiff(args.output, crappy[0] if flat else crappy, axes, out_voxel, crappy.dtype)
    print(
        f"{args.preset} (seed {args.seed}): {stack.shape} → {crappy.shape[-stack.ndim :]}, "
        f"voxel {' × '.join(f'{v:g}' for v in out_voxel[-stack.ndim :])} µm → {args.output}",
        file=sys.stderr,
    )
    return 0


def restore_stack(args: argparse.Namespace) -> int:
    """Restore a stack and write it as float32 with the output's voxel size."""
    from napari_spines.io.outputs import write_float_tiff
    from napari_spines.models import ModelError
    from napari_spines.restoration.restore import default_model, restore

    if problem := output_problem(args.output, TIFF):
        return fail(problem)
    try:
        volume = read_volumes(args.image)[0]
    except VolumeReadError as exc:
        return fail(str(exc))
    if "C" in volume.axes:
        return fail(f"{args.image.name}: restoration takes one channel; this is {volume.axes}")
    voxel = volume.voxel_size.given(args.voxel_size)
    model = args.model or default_model(voxel.um if voxel.known else None)
    if not voxel.known:
        print(
            f"warning: {args.image.name} has no voxel size; assuming {model}'s (set --voxel-size)",
            file=sys.stderr,
        )
    started = time.perf_counter()
    try:
        result = restore(
            volume.levels[0],
            volume.axes,
            model,
            voxel.for_model(),
            runtime=args.runtime,
            device=args.device,
            progress=TextProgress("restore"),
        )
    except (ValueError, ModelError) as exc:
        return fail(f"{args.image.name}: {exc}")
    write_float_tiff(args.output, result.image, volume.axes, result.voxel_size_um)
    print(
        f"{result.model}: {tuple(volume.shape)} → {result.image.shape} in "
        f"{time.perf_counter() - started:.1f} s → {args.output}",
        file=sys.stderr,
    )
    return 0


def train_restoration(args: argparse.Namespace) -> int:
    """Train a restoration model and export its package into the run folder."""
    import dataclasses

    from napari_spines.restoration.train import RECIPES, train_restoration

    recipe = RECIPES[args.kind]
    if args.preset:
        recipe = dataclasses.replace(recipe, preset=args.preset)
    try:
        train = [_stack_part(p, args.voxel_size, args.train_z) for p in args.train]
        validate = [_stack_part(p, args.voxel_size, args.validate_z) for p in args.validate]
    except ValueError as exc:
        return fail_with(exc)
    if len({v for _, v in train + validate}) > 1:
        return fail("the training and validation stacks must share one voxel size")
    show_training_log()
    command = " ".join(["napari-spines", *sys.argv[1:]])
    names = [p.name for p in args.train]
    try:
        trained = train_restoration(
            train,
            validate,
            args.out,
            recipe,
            minutes=args.minutes,
            width=args.width,
            lr=args.lr,
            validate_every=args.validate_every,
            device=args.device,
            name=args.name,
            training={"data": names, "crappifier": recipe.preset, "command": command},
            progress=TextProgress("train", unit="s"),
        )
    except ValueError as exc:
        return fail_with(exc)
    return report_trained(trained)


def _stack_part(path: Path, override: Any, z_range: Any) -> tuple[np.ndarray, tuple[float, ...]]:
    """A ``ZYX`` stack (slices ``z_range`` of it) and its voxel size, which must be known."""
    stack, voxel, known = _read_stack(path, override)
    if stack.ndim == 2:
        stack, voxel = stack[None], (1.0, *voxel)
    if not known:
        raise ValueError(f"{path.name} has no voxel size; give it with --voxel-size Z Y X")
    if z_range is not None:
        z0, z1 = z_range
        if not 0 <= z0 < z1 <= len(stack):
            raise ValueError(
                f"{path.name}: Z0 Z1 = {z0} {z1} must give 0 <= Z0 < Z1 <= {len(stack)} "
                f"(its number of slices)"
            )
        stack = stack[z0:z1]
    return stack, voxel
