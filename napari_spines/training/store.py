"""The training store: a person's corrections kept as training data, with their provenance.

A store is a folder::

    STORE/manifest.jsonl          one JSON line per saved entry, appended, never rewritten
    STORE/entries/ID/image.tif    the stack (cropped to the box), with its voxel size
    STORE/entries/ID/points.csv   spines: z, y, x (crop voxels) and status
    STORE/entries/ID/dendrites.csv  spines, optional: the traced centre lines (crop voxels)
    STORE/entries/ID/labels.tif   labels: the proofread ids, with their edit log

An entry's folder is written whole under a temporary name and renamed into place
(`atomic_folder`); only then is its manifest line appended and fsynced. So a kill at any moment
leaves the store readable and complete up to the last finished entry: a folder without a line
is an unfinished save, ignored; a cut last line is reported and skipped. Nothing is ever
overwritten: saving the same region of the same stack again adds a new version, and training
uses the newest version of each.

Each line records the ``task`` (``spines`` or ``labels``), the region a person vouches for
(the box, in source voxels, and for spines what it is near: the traced ``dendrites`` or the
model's own ``shaft``, within ``within_um``), the source (path, sha256), the voxel size, the
model whose proposals were corrected, the counts of each kind of correction, the time, the
napari-spines version and the sha256 of every file of the entry.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.io.atomic import atomic_folder, fsync, is_temporary
from napari_spines.models.spec import sha256_file

MANIFEST = "manifest.jsonl"
ENTRIES = "entries"
TASKS = ("spines", "labels")
#: The store task each model task learns from.
TASK_OF_MODEL = {"spine-detection": "spines", "affinities": "labels"}
#: Spine statuses a store keeps (see `napari_spines.spines.review.STATUSES`).
HEAD_STATUSES = ("accepted", "added", "moved")
#: Context kept around traced dendrites when the crop is not given: the network's view.
CONTEXT_UM = 8.0
REQUIRED = ("id", "task", "version", "files", "voxel_size_um", "box", "region")


@dataclass(frozen=True)
class Entry:
    """One saved sample of a store: its folder and its manifest line."""

    folder: Path
    record: dict

    @property
    def id(self) -> str:
        """The entry's name, unique in its store."""
        return str(self.record["id"])

    @property
    def task(self) -> str:
        """``spines`` or ``labels``."""
        return str(self.record["task"])

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) of the entry's image, in µm."""
        return tuple(float(v) for v in self.record["voxel_size_um"])  # type: ignore[return-value]

    @property
    def digest(self) -> str:
        """sha256 of the entry's files (of their sha256s, sorted by name)."""
        return hashlib.sha256(json.dumps(self.record["files"], sort_keys=True).encode()).hexdigest()

    def path(self, name: str) -> Path:
        """A file of the entry.

        Parameters
        ----------
        name
            Its name, e.g. ``"image.tif"``.

        Returns
        -------
        pathlib.Path
        """
        return self.folder / name

    def has(self, name: str) -> bool:
        """Whether the entry has a file.

        Parameters
        ----------
        name
            Its name, e.g. ``"dendrites.csv"``.

        Returns
        -------
        bool
        """
        return name in self.record["files"]


@dataclass
class StoreContents:
    """What `load_store` found: the good entries, in saving order, and what it skipped."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def latest(self, task: str | None = None) -> list[Entry]:
        """The newest version of each sample (`version_key`).

        Parameters
        ----------
        task
            ``spines`` or ``labels``; None: every task.

        Returns
        -------
        list of Entry
            In saving order.
        """
        newest: dict[tuple, Entry] = {}
        for entry in self.entries:
            if task is None or entry.task == task:
                newest[version_key(entry.record)] = entry
        return list(newest.values())


def version_key(record: Mapping[str, Any]) -> tuple:
    """What makes two entries versions of the same sample: task, source and box.

    The source is its sha256, else (a stack with no file) the sha256 of the saved image.

    Parameters
    ----------
    record
        A manifest line.

    Returns
    -------
    tuple
        Equal for two versions of one sample.
    """
    source = record.get("source") or {}
    files = record.get("files") or {}
    return (
        record.get("task"),
        source.get("sha256") or files.get("image.tif") or record.get("id"),
        tuple(record.get("box") or ()),
    )


def model_record(package: Any) -> dict[str, Any]:
    """What an entry records of the model whose proposals were corrected.

    Parameters
    ----------
    package
        A `~napari_spines.models.ModelPackage`.

    Returns
    -------
    dict
        ``name``, ``version``, ``weights_sha256`` (of its ONNX weights, else its first) and
        ``path``.
    """
    weights = package.spec.weights
    first = weights.get("onnx") or next(iter(weights.values()), None)
    return {
        "name": package.spec.name,
        "version": package.spec.version,
        "weights_sha256": first.sha256 if first is not None else None,
        "path": str(package.root),
    }


def source_record(path: str | os.PathLike | None) -> dict[str, Any]:
    """What an entry records of the stack it was cut from.

    Parameters
    ----------
    path
        The stack's file, or None.

    Returns
    -------
    dict
        ``path`` (absolute) and, for a file, its ``sha256``; ``{}`` for None.
    """
    if path is None:
        return {}
    path = Path(path)
    record: dict[str, Any] = {"path": str(path.resolve())}
    if path.is_file():
        record["sha256"] = sha256_file(path)
    return record


def check_box(box: Sequence[int] | None, shape: Sequence[int]) -> tuple[int, ...]:
    """A box ``(z0, y0, x0, z1, y1, x1)`` (half-open, voxels) clipped to ``shape``.

    Parameters
    ----------
    box
        The box, or None for the whole stack.
    shape
        The stack's shape (Z, Y, X).

    Returns
    -------
    tuple of int
        The clipped box.

    Raises
    ------
    ValueError
        A box that is not six numbers, or that holds no voxel of the stack.

    Examples
    --------
    >>> check_box((0, -5, 10, 3, 50, 400), (4, 100, 200))
    (0, 0, 10, 3, 50, 200)
    """
    if box is None:
        return (0, 0, 0, *(int(n) for n in shape))
    if len(box) != 6:
        raise ValueError(f"a box is Z0 Y0 X0 Z1 Y1 X1 (six numbers), got {len(box)}")
    low = [max(0, int(v)) for v in box[:3]]
    high = [min(int(n), int(v)) for v, n in zip(box[3:], shape, strict=True)]
    if any(h <= lo for lo, h in zip(low, high, strict=True)):
        raise ValueError(
            f"the box {tuple(int(v) for v in box)} holds no voxel of the {tuple(shape)} stack"
        )
    return (*low, *high)


def box_around(
    points: np.ndarray, shape: Sequence[int], voxel_size_um: Sequence[float], margin_um: float
) -> tuple[int, ...]:
    """The box around points plus a margin, clipped to the stack.

    Parameters
    ----------
    points
        ``(N, 3)`` voxel coordinates.
    shape
        The stack's shape.
    voxel_size_um
        Its voxel size, for the margin.
    margin_um
        Margin in µm on every side.

    Returns
    -------
    tuple of int
        ``(z0, y0, x0, z1, y1, x1)`` (`check_box`).
    """
    margin = np.ceil(margin_um / np.asarray(voxel_size_um, float)).astype(int)
    low = np.floor(points.min(0)).astype(int) - margin
    high = np.ceil(points.max(0)).astype(int) + margin + 1
    return check_box((*low.tolist(), *high.tolist()), shape)


def add_spines(
    store: str | os.PathLike,
    image: Any,
    voxel_size_um: Sequence[float],
    coords: np.ndarray,
    statuses: Sequence[str],
    *,
    dendrites: np.ndarray | None = None,
    within_um: float = 4.0,
    box: Sequence[int] | None = None,
    source: str | os.PathLike | None = None,
    model: Mapping[str, Any] | None = None,
) -> Entry:
    """Save reviewed spines of a stack as a training entry.

    Parameters
    ----------
    store
        The store folder; created when missing.
    image
        The ``(Z, Y, X)`` stack (any array-like; only the box is read).
    voxel_size_um
        Its voxel size (z, y, x) in µm.
    coords
        ``(N, 3)`` spine positions in the stack's voxels.
    statuses
        Each spine's status: ``accepted``, ``added`` and ``moved`` ones are heads, ``rejected``
        ones known negatives; ``auto`` ones (not reviewed) are kept and masked out of the loss.
    dendrites
        ``(M, 3)`` traced centre-line points (stack voxels): the region is within ``within_um``
        of them. None: within ``within_um`` of the model's own shaft channel.
    within_um
        How far from the dendrite the person vouches for every spine, in µm.
    box
        ``(z0, y0, x0, z1, y1, x1)`` in stack voxels; None: around the dendrites (plus
        `CONTEXT_UM`) when given, else the whole stack. The image is cropped to it.
    source
        The stack's file, for its provenance (path, sha256).
    model
        The model whose proposals were corrected: ``name``, ``version``, ``weights_sha256``.

    Returns
    -------
    Entry
        The saved entry.

    Raises
    ------
    ValueError
        A stack that is not 3D, coordinates that do not fit, an unknown status, a bad box,
        or ``within_um`` not positive.
    """
    from napari_spines.io.outputs import write_float_tiff
    from napari_spines.io.points_csv import write_points_csv
    from napari_spines.spines.review import STATUSES

    shape = tuple(int(n) for n in image.shape)
    if len(shape) != 3:
        raise ValueError(f"spine training data needs a Z × Y × X stack, got shape {shape}")
    coords = np.asarray(coords, float).reshape(-1, 3) if len(coords) else np.zeros((0, 3))
    statuses = np.asarray([str(s) for s in statuses], dtype=object)
    # a proposal from the previous session that no one reviewed yet is unreviewed: auto
    statuses[np.isin(statuses, ("carried", "new"))] = "auto"
    if len(statuses) != len(coords):
        raise ValueError(f"{len(coords)} spines but {len(statuses)} statuses")
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown status {unknown[0]!r}; one of {', '.join(STATUSES)}")
    if not within_um > 0:
        raise ValueError(f"within_um must be positive, got {within_um}")
    if dendrites is not None:
        dendrites = np.asarray(dendrites, float).reshape(-1, 3)
        if not len(dendrites):
            dendrites = None
    if box is None and dendrites is not None:
        box = box_around(dendrites, shape, voxel_size_um, within_um + CONTEXT_UM)
    box = check_box(box, shape)
    origin = np.asarray(box[:3], float)
    inside = np.all((coords >= origin - 0.5) & (coords < np.asarray(box[3:]) - 0.5), axis=1)
    crop = np.asarray(image[tuple(slice(a, b) for a, b in zip(box[:3], box[3:], strict=True))])
    counts = {s: int((statuses[inside] == s).sum()) for s in STATUSES}
    region = {"near": "dendrites" if dendrites is not None else "shaft", "within_um": within_um}

    def write(folder: Path) -> None:
        write_float_tiff(folder / "image.tif", crop, "ZYX", voxel_size_um, dtype=crop.dtype)
        write_points_csv(
            folder / "points.csv",
            coords[inside] - origin,
            voxel_size_um,
            {"status": statuses[inside]},
        )
        if dendrites is not None:
            write_points_csv(folder / "dendrites.csv", dendrites - origin, voxel_size_um)

    return _add(store, "spines", write, voxel_size_um, box, region, source, model, counts)


def add_labels(
    store: str | os.PathLike,
    image: Any,
    labels: Any,
    voxel_size_um: Sequence[float],
    *,
    box: Sequence[int] | None = None,
    edit_log: str | None = None,
    counts: Mapping[str, int] | None = None,
    source: str | os.PathLike | None = None,
    model: Mapping[str, Any] | None = None,
) -> Entry:
    """Save proofread labels of a stack (in a box) as a training entry.

    Parameters
    ----------
    store
        The store folder; created when missing.
    image, labels
        The ``(Z, Y, X)`` stack and its integer ids (0: boundary or unlabelled).
    voxel_size_um
        Voxel size (z, y, x) in µm.
    box
        The reviewed box (stack voxels); None: the whole stack. Both are cropped to it.
    edit_log
        The proofreading edit log (JSON text), stored in the labels TIFF.
    counts
        How many edits of each kind (``merged``, ``split``, ``painted``…) were made.
    source, model
        See `add_spines`.

    Returns
    -------
    Entry

    Raises
    ------
    ValueError
        Shapes that differ or are not 3D, labels that are not integers or are all 0.
    """
    from napari_spines.io.labels_tiff import write_labels_tiff
    from napari_spines.io.outputs import write_float_tiff

    shape = tuple(int(n) for n in image.shape)
    if len(shape) != 3 or tuple(labels.shape) != shape:
        raise ValueError(
            f"label training data needs a Z × Y × X stack and labels of the same shape, "
            f"got {shape} and {tuple(labels.shape)}"
        )
    box = check_box(box, shape)
    region_slices = tuple(slice(a, b) for a, b in zip(box[:3], box[3:], strict=True))
    crop, ids = np.asarray(image[region_slices]), np.asarray(labels[region_slices])
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {ids.dtype}")
    if not ids.any():
        raise ValueError("the labels in the box are all 0: nothing to learn from")

    def write(folder: Path) -> None:
        write_float_tiff(folder / "image.tif", crop, "ZYX", voxel_size_um, dtype=crop.dtype)
        write_labels_tiff(folder / "labels.tif", ids, voxel_size_um, "ZYX", edit_log=edit_log)

    region = {"near": "box"}
    counts = {str(k): int(v) for k, v in (counts or {}).items()}
    return _add(store, "labels", write, voxel_size_um, box, region, source, model, counts)


def _add(
    store: str | os.PathLike,
    task: str,
    write: Any,
    voxel_size_um: Sequence[float],
    box: tuple[int, ...],
    region: dict,
    source: str | os.PathLike | None,
    model: Mapping[str, Any] | None,
    counts: dict,
) -> Entry:
    """Write an entry's folder with ``write(folder)``, then append its manifest line."""
    from napari_spines import __version__

    store = Path(store)
    now = datetime.datetime.now(datetime.UTC)
    source_info = source_record(source)
    stem = Path(source_info.get("path", "stack")).name.split(".")[0][:40] or "stack"
    entry_id = f"{now:%Y%m%dT%H%M%S}-{stem}-{task}-{secrets.token_hex(3)}"
    folder = store / ENTRIES / entry_id
    with atomic_folder(folder) as tmp:
        write(tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    record = {
        "id": entry_id,
        "task": task,
        "files": files,
        "voxel_size_um": [float(v) for v in voxel_size_um],
        "box": [int(v) for v in box],
        "region": region,
        "source": source_info,
        "model": dict(model or {}),
        "counts": counts,
        "created": now.isoformat(timespec="seconds"),
        "napari_spines": __version__,
    }
    earlier = load_store(store, verify=False).entries
    record["version"] = 1 + sum(version_key(e.record) == version_key(record) for e in earlier)
    append_line(store / MANIFEST, record)
    return Entry(folder, record)


def append_line(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line to a file and fsync it; a cut last line is closed first.

    Parameters
    ----------
    path
        The ``.jsonl`` file; created with its folder when missing.
    record
        The JSON-serialisable mapping.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "ab") as handle:
        if handle.tell() > 0:
            with open(path, "rb") as reader:
                reader.seek(-1, os.SEEK_END)
                if reader.read(1) != b"\n":
                    line = "\n" + line  # the line a kill cut stays alone, and is skipped
        handle.write(line.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    fsync(path.parent)


def load_store(store: str | os.PathLike, verify: bool = True) -> StoreContents:
    """Read a store's manifest; report and skip what is broken, never raise for it.

    Parameters
    ----------
    store
        The store folder (a missing one is an empty store).
    verify
        Check every file's sha256 against the manifest (reads every file).

    Returns
    -------
    StoreContents
        The good entries in saving order, and one line per problem: a line that is not JSON or
        misses fields, a missing folder or file, a file whose sha256 differs, an entry folder
        with no manifest line (an interrupted save).
    """
    store = Path(store)
    contents = StoreContents()
    seen: set[str] = set()
    manifest = store / MANIFEST
    lines = (
        manifest.read_text(encoding="utf-8", errors="replace").splitlines()
        if (manifest.is_file())
        else []
    )
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        problem, entry = _parse_line(store, line, verify)
        if entry is not None and entry.id in seen:
            problem, entry = f"entry {entry.id} is listed twice", None
        if problem:
            contents.problems.append(f"{MANIFEST} line {number}: {problem}; skipped")
        if entry is not None:
            seen.add(entry.id)
            contents.entries.append(entry)
    entries = store / ENTRIES
    if entries.is_dir():
        for folder in sorted(entries.iterdir()):
            if folder.name not in seen and not is_temporary(folder) and folder.is_dir():
                contents.problems.append(
                    f"{ENTRIES}/{folder.name}: not in {MANIFEST} (a save that did not "
                    "finish); ignored"
                )
    return contents


def _parse_line(store: Path, line: str, verify: bool) -> tuple[str | None, Entry | None]:
    """(problem, entry) of one manifest line."""
    try:
        record = json.loads(line)
    except ValueError:
        return "not valid JSON (a save was cut short?)", None
    if not isinstance(record, dict):
        return "not an entry", None
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        return f"misses {', '.join(missing)}", None
    if record["task"] not in TASKS:
        return f"unknown task {record['task']!r}", None
    folder = store / ENTRIES / str(record["id"])
    if not folder.is_dir():
        return f"entry {record['id']}: its folder is missing", None
    for name, expected in dict(record["files"]).items():
        path = folder / name
        if not path.is_file():
            return f"entry {record['id']}: {name} is missing", None
        if verify and sha256_file(path) != expected:
            return f"entry {record['id']}: {name} was changed or damaged (sha256 differs)", None
    return None, Entry(folder, record)


def describe(contents: StoreContents) -> list[str]:
    """One line per entry, for ``training list`` and the widgets.

    Parameters
    ----------
    contents
        What `load_store` found.

    Returns
    -------
    list of str
        Id, task, version, source file, box and counts; older versions marked.
    """
    latest = {e.id for e in contents.latest()}
    lines = []
    for entry in contents.entries:
        counts = ", ".join(f"{v} {k}" for k, v in entry.record.get("counts", {}).items() if v)
        source = Path(entry.record.get("source", {}).get("path", "?")).name
        old = "" if entry.id in latest else " (older version)"
        lines.append(
            f"{entry.id}  {entry.task}  v{entry.record['version']}  {source}  "
            f"box {entry.record['box']}  {counts or 'no corrections'}{old}"
        )
    return lines
