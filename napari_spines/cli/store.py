"""The training-store commands: ``training add``, ``training list`` and ``finetune``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from napari_spines.cli._common import (
    add_voxel_size_option,
    fail,
    fail_with,
    positive_float,
    positive_int,
    unit_interval,
    warn,
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``training add``, ``training list`` and ``finetune``."""
    training = commands.add_parser(
        "training", help="keep corrected spines or labels as training data (a store)"
    )
    what = training.add_subparsers(dest="what", metavar="ACTION", required=True)
    add = what.add_parser("add", help="add a corrected stack to a training store")
    add.add_argument("image", type=Path, help="the ZYX stack")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--points",
        type=Path,
        metavar="PTS.csv",
        help="spines (z, y, x in voxels); a status column says accepted, added, moved, "
        "rejected (negatives) or auto (unreviewed); without one every point is a head",
    )
    source.add_argument(
        "--labels", type=Path, metavar="LABELS.tif", help="proofread labels of the stack"
    )
    add.add_argument("--store", type=Path, required=True, help="the training store folder")
    add.add_argument(
        "--dendrites",
        type=Path,
        metavar="TRACE.csv",
        help="traced dendrite centre lines (z, y, x in voxels): the region vouched for is "
        "within --within-um of them (default: of the model's own shaft channel)",
    )
    add.add_argument(
        "--within-um",
        type=positive_float,
        default=4.0,
        help="how far from the dendrite every spine was reviewed (µm)",
    )
    add.add_argument(
        "--box",
        nargs=6,
        type=int,
        metavar=("Z0", "Y0", "X0", "Z1", "Y1", "X1"),
        help="the reviewed box in voxels (end excluded); default: around the dendrites, or "
        "the whole stack",
    )
    add.add_argument(
        "--model", help="the model whose proposals were corrected (name or path; provenance)"
    )
    add_voxel_size_option(add)
    add.set_defaults(handler=training_add)

    listing = what.add_parser("list", help="what a training store holds")
    listing.add_argument("--store", type=Path, required=True)
    listing.set_defaults(handler=training_list)

    tune = commands.add_parser(
        "finetune", help="fine-tune a model on a training store; write a new model package"
    )
    tune.add_argument("--store", type=Path, required=True, help="the training store folder")
    tune.add_argument(
        "--model", "-m", required=True, help="model name or package (spine-2p, em-affinity, …)"
    )
    tune.add_argument("-o", "--output", type=Path, required=True, help="new package folder")
    tune.add_argument("--minutes", type=positive_float, default=10.0, help="time budget")
    tune.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    tune.add_argument("--lr", type=positive_float, help="peak learning rate (default per task)")
    tune.add_argument(
        "--holdout",
        type=unit_interval,
        default=0.25,
        help="fraction of each entry held out to validate on",
    )
    tune.add_argument(
        "--validate-every",
        type=positive_int,
        help="steps between validations on the held-out parts (default: 80 spines, 25 labels)",
    )
    tune.add_argument(
        "--patience",
        type=positive_int,
        default=4,
        help="stop after this many validations without improvement",
    )
    tune.add_argument(
        "--replay",
        type=Path,
        metavar="STORE",
        help="a store of data the model learnt from before, mixed into the training crops "
        "against forgetting (nothing of it is held out)",
    )
    tune.add_argument(
        "--replay-share",
        type=unit_interval,
        default=0.5,
        help="share of the training crops cut from the replay store",
    )
    tune.add_argument("--name", help="the new model's name (default: BASE-finetuned)")
    tune.set_defaults(handler=finetune)


def training_add(args: argparse.Namespace) -> int:
    """Add one entry to the store; print its id and counts."""
    import numpy as np

    from napari_spines.io import VolumeReadError, read_points_csv, read_volumes
    from napari_spines.training import store

    try:
        volume = read_volumes(args.image)[0]
    except (VolumeReadError, OSError) as exc:
        return fail_with(exc, f"{args.image}: ")
    if volume.axes != "ZYX":
        return fail(
            f"{args.image}: training data must be one Z × Y × X stack, this is {volume.axes} "
            f"{tuple(volume.data.shape)}"
        )
    voxel = volume.voxel_size.given(args.voxel_size)
    if voxel.known:
        voxel_um = tuple(voxel.for_model())
    elif args.labels is not None:  # affinities learn on the stack's own grid
        warn(f"{args.image.name} has no voxel size; recorded as 1 µm (set --voxel-size)")
        voxel_um = (1.0, 1.0, 1.0)
    else:  # spines are learnt at the model's voxel size: it must be right
        return fail(f"{args.image}: the voxel size is unknown; give it with --voxel-size Z Y X")
    model = None
    if args.model:
        from napari_spines.models import ModelError, find_model

        try:
            model = store.model_record(find_model(args.model))
        except ModelError as exc:
            return fail_with(exc, "--model: ")
    try:
        if args.points is not None:
            coords, _, properties = read_points_csv(args.points)
            if coords.shape[1] != 3:
                return fail(f"{args.points}: spines need z, y, x columns")
            statuses = properties.get("status", np.full(len(coords), "accepted", object))
            dendrites = None
            if args.dendrites is not None:
                dendrites = read_points_csv(args.dendrites)[0]
                if dendrites.shape[1] != 3 or not len(dendrites):
                    return fail(f"{args.dendrites}: needs z, y, x points of the traced dendrites")
            entry = store.add_spines(
                args.store,
                volume.data,
                voxel_um,
                coords,
                [str(s) for s in statuses],
                dendrites=dendrites,
                within_um=args.within_um,
                box=args.box,
                source=args.image,
                model=model,
            )
        else:
            entry = add_labels_file(args, volume, voxel_um, model)
    except (VolumeReadError, ValueError, OSError) as exc:
        return fail_with(exc)
    counts = ", ".join(f"{v} {k}" for k, v in entry.record["counts"].items() if v)
    print(f"added {entry.id} (version {entry.record['version']}): {counts or 'no corrections'}")
    return 0


def add_labels_file(args: argparse.Namespace, volume: object, voxel_um: tuple, model: object):
    """``training add --labels``: the labels, their edit log and its counts."""
    import numpy as np

    from napari_spines.io import read_volumes
    from napari_spines.io.labels_tiff import read_edit_log
    from napari_spines.segmentation.edit_log import load_saved_edits
    from napari_spines.training import store

    labels = np.asarray(read_volumes(args.labels)[0].levels[0])
    edit_log = None
    counts: dict[str, int] = {}
    if args.labels.suffix.lower() in (".tif", ".tiff"):
        edit_log = read_edit_log(args.labels)
        if edit_log is not None:
            counts = dict(Counter(e.get("operation", "?") for e in load_saved_edits(args.labels)))
    return store.add_labels(
        args.store,
        volume.data,  # type: ignore[attr-defined]
        labels,
        voxel_um,
        box=args.box,
        edit_log=edit_log,
        counts=counts,
        source=args.image,
        model=model,  # type: ignore[arg-type]
    )


def training_list(args: argparse.Namespace) -> int:
    """Print one line per entry, then what was skipped."""
    from napari_spines.training.store import describe, load_store

    if not args.store.is_dir():
        return fail(f"{args.store}: no such store folder")
    contents = load_store(args.store)
    for line in describe(contents):
        print(line)
    per_task = Counter(e.task for e in contents.latest())
    print(
        f"{len(contents.entries)} entries; newest versions: "
        + (", ".join(f"{n} {task}" for task, n in sorted(per_task.items())) or "none"),
        file=sys.stderr,
    )
    for problem in contents.problems:
        print(f"napari-spines: warning: {problem}", file=sys.stderr)
    return 0


def finetune(args: argparse.Namespace) -> int:
    """Fine-tune, write the package, print the held-out figures."""
    import logging

    from napari_spines.cli._common import TextProgress
    from napari_spines.models import ModelError
    from napari_spines.training.finetune import finetune as run

    for store in (args.store, args.replay):
        if store is not None and not store.is_dir():
            return fail(f"{store}: no such store folder")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("napari_spines").setLevel(logging.INFO)  # not the exporters' chatter
    try:
        tuned = run(
            args.store,
            args.model,
            args.output,
            minutes=args.minutes,
            device=args.device,
            lr=args.lr,
            holdout=args.holdout,
            validate_every=args.validate_every,
            patience=args.patience,
            replay=args.replay,
            replay_share=args.replay_share,
            name=args.name,
            command=" ".join(["napari-spines", *sys.argv[1:]]),
            progress=TextProgress("fine-tuning", "s"),
        )
    except (ModelError, ValueError) as exc:
        return fail_with(exc)
    print(tuned.summary, file=sys.stderr)
    print(f"model package: {tuned.package} (listed by `napari-spines models`)", file=sys.stderr)
    return 0
