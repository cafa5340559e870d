"""The sessions commands: ``track`` links spines across sessions, ``track-edit`` corrects tracks."""

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
    output_problem,
    positive_float,
    warn,
)


class _Edit(argparse.Action):
    """Keep every edit option in one list, in the order given: ``(kind, numbers)``."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None
    ) -> None:
        edits = list(getattr(namespace, self.dest, None) or [])
        edits.append((self.const, list(values)))
        setattr(namespace, self.dest, edits)


#: ``track-edit``'s edit options: name (an edit of `napari_spines.sessions.editing.EDITS`),
#: the numbers it takes, and its help.
EDIT_OPTIONS = (
    (
        "relink",
        ("T", "TRACK", "TO"),
        "move the spine of TRACK in session T to track TO (0: a new track); where TO has a "
        "spine in T, the two swap",
    ),
    ("split", ("TRACK", "T"), "cut TRACK before session T: from T on it is a new track"),
    (
        "merge",
        ("KEEP", "OTHER"),
        "join track OTHER to track KEEP (they must not share a session)",
    ),
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``track`` and ``track-edit``."""
    from napari_spines.sessions.linking import AXIAL_WEIGHT, MAX_DISTANCE_UM

    track_ = commands.add_parser(
        "track",
        help="link spines across imaging sessions of one dendrite; write tracks and dynamics",
        formatter_class=DefaultsFormatter,
    )
    track_.add_argument(
        "--images",
        nargs="+",
        required=True,
        type=Path,
        metavar="STACK",
        help="the sessions' ZYX stacks in imaging order, or one TZYX file",
    )
    track_.add_argument(
        "--points",
        nargs="+",
        type=Path,
        metavar="CSV",
        help="one spines CSV per session (z, y, x columns in that stack's voxels; other "
        "columns ignored): link these instead of detecting",
    )
    track_.add_argument("-o", "--output", required=True, type=Path, help="tracks .csv")
    track_.add_argument(
        "--dendrites",
        nargs="+",
        type=Path,
        metavar="CSV",
        help="one traced-dendrite CSV per session (segment_id, z, y, x in voxels): densities "
        "per µm in the dynamics",
    )
    track_.add_argument(
        "--dynamics-out", type=Path, help="per-session counts, gains, losses, turnover (.csv)"
    )
    track_.add_argument(
        "--max-distance-um",
        type=positive_float,
        default=MAX_DISTANCE_UM,
        help="largest distance between a spine and its partner in the next session, "
        "after registration (z counts --axial-weight of its µm)",
    )
    track_.add_argument(
        "--axial-weight",
        type=positive_float,
        default=AXIAL_WEIGHT,
        help="weight of z differences in that distance",
    )
    track_.add_argument(
        "--no-deformation",
        action="store_true",
        help="register sessions by a translation only",
    )
    track_.add_argument(
        "-m", "--model", default="spine-2p", help="spine-detection model used without --points"
    )
    add_voxel_size_option(track_)
    add_runtime_options(track_)
    track_.set_defaults(handler=track)

    edit_ = commands.add_parser(
        "track-edit",
        help="correct tracks by hand: relink a spine, split or merge tracks; dynamics again",
        description="Edits are made in the order given; one that cannot be made stops the "
        "command and nothing is written.",
        formatter_class=DefaultsFormatter,
    )
    edit_.add_argument("tracks", type=Path, help="tracks .csv written by track")
    edit_.add_argument("-o", "--output", required=True, type=Path, help="edited tracks .csv")
    for option, metavar, help_ in EDIT_OPTIONS:
        edit_.add_argument(
            f"--{option}",
            nargs=len(metavar),
            metavar=metavar,
            type=int,
            action=_Edit,
            const=option,
            dest="edits",
            help=help_,
        )
    edit_.add_argument(
        "--dendrites",
        nargs="+",
        type=Path,
        metavar="CSV",
        help="one traced-dendrite CSV per session, for densities per µm",
    )
    edit_.add_argument(
        "--dynamics-out", type=Path, help="per-session counts, gains, losses, turnover (.csv)"
    )
    edit_.set_defaults(handler=track_edit, edits=[])


def read_sessions(
    paths: list[Path], override: Any
) -> tuple[list[np.ndarray], tuple[float, float, float]]:
    """The stacks of ``paths`` (one ZYX stack each, or one TZYX file) and their voxel size.

    Raises
    ------
    ValueError
        A file cannot be read, is not ZYX/TZYX, or the sessions' voxel sizes differ.
    """
    from napari_spines.io import read_volumes
    from napari_spines.sessions.track import check_sessions

    stacks, voxels = [], []
    for path in paths:
        volume = read_volumes(path)[0]
        voxel = volume.voxel_size.given(override)
        spatial = tuple(float(v) for v in voxel.um)
        data = volume.levels[0]
        if volume.axes == "TZYX":
            stacks.extend(np.asarray(frame) for frame in data)
            voxels.extend([spatial] * data.shape[0])
        elif volume.axes == "ZYX":
            stacks.append(np.asarray(data))
            voxels.append(spatial)
        else:
            raise ValueError(f"{path.name}: axes {volume.axes}; tracking needs ZYX or TZYX")
        if not voxel.known:
            warn(f"{path.name} has no voxel size; assuming {spatial} µm (set --voxel-size)")
    check_sessions([s.shape for s in stacks], voxels)
    return stacks, voxels[0]


def read_session_points(path: Path, voxel: tuple[float, float, float]) -> np.ndarray:
    """A session's spines in µm from a CSV with ``z, y, x`` columns in that stack's voxels.

    Rows with status ``rejected`` are left out.
    """
    from napari_spines.io.points_csv import read_points_csv

    coords, _, properties = read_points_csv(path)
    if coords.shape[1] != 3:
        raise ValueError(f"{path.name}: needs z, y, x columns (one session), not {coords.shape[1]}")
    if "status" in properties:
        coords = coords[np.asarray(properties["status"]).astype(str) != "rejected"]
    return coords * np.asarray(voxel)


def traced_length_um(path: Path, voxel: tuple[float, float, float]) -> float:
    """Length in µm of the dendrites traced in a CSV of ``segment_id, z, y, x`` (voxels)."""
    from napari_spines.io.points_csv import read_points_csv
    from napari_spines.sessions.dynamics import dendrite_length_um

    coords, _, properties = read_points_csv(path)
    if coords.shape[1] != 3 or "segment_id" not in properties:
        raise ValueError(f"{path.name}: needs segment_id, z, y, x columns")
    try:
        segments = np.asarray(properties["segment_id"], dtype=float)
    except ValueError:
        raise ValueError(f"{path.name}: segment_id holds values that are not numbers") from None
    return dendrite_length_um(np.column_stack([segments, coords]), voxel)


def track(args: argparse.Namespace) -> int:
    """Link spines across sessions; write ``t,track_id,z,y,x,z_um,y_um,x_um``."""
    from napari_spines.io import VolumeReadError
    from napari_spines.io.points_csv import write_table_csv
    from napari_spines.models import ModelError
    from napari_spines.sessions.track import track_sessions

    for output, suffix in ((args.output, ".csv"), (args.dynamics_out, ".csv")):
        if output is not None and (problem := output_problem(output, (suffix,))):
            return fail(problem)
    try:
        stacks, voxel = read_sessions(args.images, args.voxel_size)
        points = None
        if args.points is not None:
            if len(args.points) != len(stacks):
                return fail(
                    f"{len(stacks)} sessions need {len(stacks)} --points files, "
                    f"got {len(args.points)}"
                )
            points = [read_session_points(p, voxel) for p in args.points]
        lengths = None
        if args.dendrites is not None:
            if len(args.dendrites) != len(stacks):
                return fail(
                    f"{len(stacks)} sessions need {len(stacks)} --dendrites files, "
                    f"got {len(args.dendrites)}"
                )
            lengths = [traced_length_um(p, voxel) for p in args.dendrites]
    except (VolumeReadError, OSError, ValueError) as exc:
        return fail_with(exc)
    started = time.perf_counter()
    try:
        tracked = track_sessions(
            stacks,
            voxel,
            points,
            model=args.model,
            max_distance_um=args.max_distance_um,
            axial_weight=args.axial_weight,
            deformable=not args.no_deformation,
            dendrite_lengths_um=lengths,
            runtime=args.runtime,
            device=args.device,
            progress=TextProgress("track", "steps"),
        )
    except (ValueError, ModelError) as exc:
        return fail_with(exc)
    write_table_csv(args.output, tracked.table(voxel))
    if args.dynamics_out is not None:
        from napari_spines.sessions.dynamics import dynamics_table

        write_table_csv(args.dynamics_out, dynamics_table(tracked.dynamics))
    classes = list(tracked.classes.values())
    summary = ", ".join(
        f"{classes.count(c)} {c}" for c in ("stable", "gained", "lost", "transient")
    )
    print(
        f"{len(tracked.classes)} tracks over {len(stacks)} sessions ({summary}) in "
        f"{time.perf_counter() - started:.1f} s → {args.output}",
        file=sys.stderr,
    )
    return 0


def read_tracks(
    path: Path,
) -> tuple[list[np.ndarray], list[np.ndarray], tuple[float, float, float]]:
    """Per session the spines (µm) and track ids of a ``track`` CSV, and its voxel size.

    Raises
    ------
    ValueError
        The file lacks ``t, track_id, z, y, x`` columns or has a track with two spines in one
        session.
    """
    from napari_spines.io.points_csv import read_points_csv

    coords, voxel, columns = read_points_csv(path)
    if coords.shape[1] != 4 or "track_id" not in columns:
        raise ValueError(f"{path.name}: needs t, track_id, z, y, x columns (a track CSV)")
    try:
        ids_all = np.asarray(columns["track_id"], dtype=float)
    except ValueError:
        raise ValueError(f"{path.name}: track_id holds values that are not numbers") from None
    t_all = np.rint(coords[:, 0]).astype(int)
    if len(t_all) and t_all.min() < 0:
        raise ValueError(f"{path.name}: t must be 0 or more")
    n = int(t_all.max()) + 1 if len(t_all) else 0
    spatial = (float(voxel[0]), float(voxel[1]), float(voxel[2]))
    points = [coords[t_all == t, 1:] * np.asarray(spatial) for t in range(n)]
    ids = [ids_all[t_all == t].astype(int) for t in range(n)]
    for t, session in enumerate(ids):
        values, counts = np.unique(session, return_counts=True)
        if (counts > 1).any():
            raise ValueError(
                f"{path.name}: track {int(values[counts > 1][0])} has two spines in session {t}"
            )
    return points, ids, spatial


def track_edit(args: argparse.Namespace) -> int:
    """Apply the edits in order; write the edited tracks (and dynamics)."""
    from napari_spines.io import VolumeReadError
    from napari_spines.io.points_csv import write_table_csv
    from napari_spines.sessions import editing
    from napari_spines.sessions.dynamics import dynamics_table, session_dynamics
    from napari_spines.sessions.track import Tracked

    if not args.edits:
        return fail("no edits: give --relink, --split or --merge")
    for output in (args.output, args.dynamics_out):
        if output is not None and (problem := output_problem(output, (".csv",))):
            return fail(problem)
    try:
        points, ids, voxel = read_tracks(args.tracks)
        lengths = None
        if args.dendrites is not None:
            if len(args.dendrites) != len(points):
                return fail(
                    f"{len(points)} sessions need {len(points)} --dendrites files, "
                    f"got {len(args.dendrites)}"
                )
            lengths = [traced_length_um(p, voxel) for p in args.dendrites]
    except (VolumeReadError, OSError, ValueError) as exc:
        return fail_with(exc)
    tracked = Tracked(points, ids, [], {}, session_dynamics(ids, lengths))
    history = editing.EditHistory(ids)
    for number, (kind, values) in enumerate(args.edits, start=1):
        try:
            if kind == "relink":
                t, track_id, to = values
                if not 0 <= t < len(history.current):
                    raise ValueError(f"there is no session {t}")
                where = np.flatnonzero(history.current[t] == track_id)
                if not len(where):
                    raise ValueError(f"track {track_id} has no spine in session {t}")
                said = history.apply(editing.relink, t, int(where[0]), to or None)
            else:
                said = history.apply(editing.EDITS[kind], *values)
        except ValueError as exc:
            return fail_with(exc, f"edit {number} (--{kind} {' '.join(map(str, values))}): ")
        print(said, file=sys.stderr)
    edited = tracked.with_track_ids(history.current)
    write_table_csv(args.output, edited.table(voxel))
    if args.dynamics_out is not None:
        write_table_csv(args.dynamics_out, dynamics_table(edited.dynamics))
    print(f"{len(args.edits)} edits; {len(edited.classes)} tracks → {args.output}", file=sys.stderr)
    return 0
