"""The autosave journal: corrections not yet saved to the store survive a crash or a kill.

A journal is an append-only JSON-lines file beside the training store, one per stack and
task::

    STORE/journal/KEY.jsonl                 being written: what a crash would leave
    STORE/journal/KEY.done-TIMESTAMP.jsonl  finished with (saved, or declined); kept, not deleted

``KEY`` names the stack (`stack_key`): its file's sha256 (the file may move or be renamed),
else the layer name and shape, then the task. Every line is appended, flushed and fsynced
(`napari_spines.training.store.append_line`), so a kill loses at most the edit being written;
a line the kill cut is closed by the next write and skipped when read (`read_states`).

**Spines** — each line is the whole review state (`spine_state`): coordinates in the stack's
voxels, ids, scores, statuses, the layer's name and the voxel size. Hundreds of points make a
few tens of kB, so a full snapshot per edit is cheap, and restoring is taking the last line
(`last_state`). A journal of snapshots that outgrows `MAX_SNAPSHOT_BYTES` is rewritten
(atomically) to its last line, so it stays small however long the review.

**Labels** — the proofreading edit log is not replayable on its own (undo, redo and painting
by hand are not in it, and a split depends on the fragments), and a snapshot of the labels per
edit would not be bounded. So the journal holds what the proofreader's undo records hold: the
voxels each change wrote and their values, compressed (`change_record`). Its first line is a
``base`` (`labels_base`): a fingerprint of the labels the edits start from (their segments'
ids, sizes and boxes), the threshold and the layer. Every later line is a ``change``: an
edit, an undo, a redo or a stroke of the brush. `replay` writes the changes, in order, onto
labels equal to the base, and gives back the edit log they make. A change costs what its undo
record costs in memory: a merge of two large segments is a bit mask of their box, a few MB
compressed at most.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import fastremap
import numpy as np

from napari_spines.io.atomic import atomic_path
from napari_spines.segmentation.undo import ChangedVoxels, PackedValues, Patch
from napari_spines.training.store import append_line, source_record

JOURNAL = "journal"
SUFFIX = ".jsonl"
#: A journal of full snapshots (spines) larger than this is rewritten to its last line.
MAX_SNAPSHOT_BYTES = 4 << 20
_SOURCE_HASHES: dict[tuple[str, int, int], str] = {}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def stack_key(source: str | os.PathLike | None, name: str, shape: Sequence[int], task: str) -> str:
    """The name of a stack's journal: ``STEM-HASH-TASK``.

    Parameters
    ----------
    source
        The stack's file: its sha256 names the journal (remembered while the file's size and
        time stay the same). None, or no such file: the layer name and shape do.
    name
        The layer's name.
    shape
        The stack's shape.
    task
        ``"spines"`` or ``"labels"``.

    Returns
    -------
    str
        A file-name-safe key.

    Examples
    --------
    >>> stack_key(None, "two-photon", (32, 256, 256), "spines")
    'two-photon-1dc882118a3e9565-spines'
    """
    digest = None
    stem = name
    if source is not None and Path(source).is_file():
        path = Path(source).resolve()
        stat = path.stat()
        cache = (str(path), stat.st_size, stat.st_mtime_ns)
        if cache not in _SOURCE_HASHES:
            _SOURCE_HASHES[cache] = str(source_record(path)["sha256"])
        digest, stem = _SOURCE_HASHES[cache], path.name.split(".")[0]
    if digest is None:
        text = json.dumps([name, [int(n) for n in shape]])
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:40].strip("_") or "stack"
    return f"{stem}-{digest[:16]}-{task}"


def journal_path(store: str | os.PathLike, key: str) -> Path:
    """``STORE/journal/KEY.jsonl``.

    Parameters
    ----------
    store
        The training store's folder.
    key
        From `stack_key`.

    Returns
    -------
    Path
    """
    return Path(store) / JOURNAL / f"{key}{SUFFIX}"


def record(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Append one state as a line, flushed and fsynced; a line a kill cut is closed first.

    Parameters
    ----------
    path
        The journal; it and its folder are created when missing.
    state
        A JSON-serialisable mapping (NaN is not allowed: write None).
    """
    append_line(Path(path), state)


def read_states(path: str | os.PathLike) -> list[dict]:
    """Every complete, parseable line of a journal, oldest first; cut or corrupt ones skipped.

    Parameters
    ----------
    path
        The journal; a missing one has no states.

    Returns
    -------
    list of dict
    """
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return []
    states = []
    for line in raw.split(b"\n"):
        try:
            state = json.loads(line)
        except ValueError:  # a cut line, or an empty one
            continue
        if isinstance(state, dict):
            states.append(state)
    return states


def last_state(path: str | os.PathLike) -> dict | None:
    """The last complete, parseable line of a journal.

    Parameters
    ----------
    path
        The journal.

    Returns
    -------
    dict or None
        None when the journal is missing or holds no complete line.
    """
    states = read_states(path)
    return states[-1] if states else None


def clear(path: str | os.PathLike) -> Path | None:
    """Retire a journal: rename it ``KEY.done-TIMESTAMP.jsonl`` (nothing is deleted).

    Parameters
    ----------
    path
        The journal.

    Returns
    -------
    Path or None
        Its new name; None when there was no journal.
    """
    path = Path(path)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    stem = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    done = path.with_name(f"{stem}.done-{stamp}{SUFFIX}")
    try:
        os.replace(path, done)
    except FileNotFoundError:
        return None
    return done


def waiting_edits_note(fitting: int, found: int, found_threshold: float | None) -> str | None:
    """What to tell a user about an earlier session's unsaved label edits, or None.

    Parameters
    ----------
    fitting
        Unsaved edits that fit the labels just made (they can be restored now).
    found
        Unsaved edits found for this stack and model.
    found_threshold
        The threshold of the labels they were made on (None: not known).

    Returns
    -------
    str or None
    """
    if fitting:
        return f"{fitting} unsaved edits of an earlier session wait: Restore unsaved edits"
    if found and found_threshold is not None:
        return (
            f"{found} unsaved edits of an earlier session were made on the labels at "
            f"threshold {found_threshold:.2f}: set it to restore them"
        )
    return None


def unsaved_edits(states: Sequence[Mapping[str, Any]]) -> int:
    """How many edits a journal holds: its lines after the last ``base`` (a base is none).

    Parameters
    ----------
    states
        From `read_states`.

    Returns
    -------
    int
    """
    bases = [i for i, s in enumerate(states) if s.get("kind") == "base"]
    return len(states) - (bases[-1] + 1 if bases else 0)


class Journal:
    """The journal of one stack as a widget keeps it: found at start, continued or replaced.

    What an earlier session left (`found`) stays untouched until this session either restores
    it (`adopt`: the journal goes on) or makes its first edit without restoring (the old
    journal is retired with `clear`, and a new one begins). Before the first line of a new
    journal come ``base`` and, when a saved journal was retired under us (`clear` after
    saving to the store) while edits go on, what ``restart()`` returns (for labels: a
    snapshot of every voxel edited so far), so the journal always replays from its base.

    Parameters
    ----------
    path
        From `journal_path`.
    base
        The first line of every journal (labels: `labels_base`); None for none.
    restart
        Lines that stand for every edit made so far, the one being recorded included: written
        instead of it when the journal starts anew in the middle of a session. None for none
        (spine states are whole anyway).
    snapshots
        Every state is complete (spines): a journal over `MAX_SNAPSHOT_BYTES` is rewritten to
        its last line.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        base: Mapping[str, Any] | None = None,
        restart: Callable[[], list[dict]] | None = None,
        snapshots: bool = False,
    ) -> None:
        self.path = Path(path)
        self.base = None if base is None else dict(base)
        self._restart = restart
        self._snapshots = snapshots
        self.found = read_states(self.path)
        self.started = False

    @property
    def unsaved(self) -> int:
        """Edits an earlier session left (0 once adopted or replaced)."""
        return unsaved_edits(self.found)

    def adopt(self) -> list[dict]:
        """Go on with the journal found (after restoring it); return its states.

        Returns
        -------
        list of dict
            The states found, oldest first.
        """
        found, self.found, self.started = self.found, [], True
        return found

    def record(self, state: Mapping[str, Any]) -> None:
        """Append ``state``; the first time, retire what was found and begin a new journal.

        Parameters
        ----------
        state
            A JSON-serialisable mapping.
        """
        lines = [dict(state)]
        if not self.started or not self.path.exists():
            first = [] if self.base is None else [self.base]
            if self.started and self._restart is not None:
                # retired under us while edits go on: restart() stands for all of them, this
                # one included
                lines = [*first, *self._restart()]
            else:
                if self.path.exists():
                    clear(self.path)  # an earlier session's, not restored: kept aside
                lines = [*first, *lines]
            self.found, self.started = [], True
        for line in lines:
            record(self.path, line)
        if self._snapshots and self.path.stat().st_size > MAX_SNAPSHOT_BYTES:
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(dict(state), sort_keys=True) + "\n", encoding="utf-8")

    def clear(self) -> Path | None:
        """Retire the journal (after saving to the store); the next edit begins a new one.

        Returns
        -------
        Path or None
            Where it went; None when there was none.
        """
        self.found = []
        return clear(self.path)


# -- spines ------------------------------------------------------------------------------------


def spine_state(
    coords: np.ndarray,
    statuses: Sequence[str],
    ids: Sequence[int],
    scores: Sequence[float],
    *,
    layer: str,
    voxel_size_um: Sequence[float],
) -> dict[str, Any]:
    """The whole review state of a spines layer, as one journal line.

    Parameters
    ----------
    coords
        ``(N, 3)`` positions in the stack's voxels.
    statuses, ids, scores
        Per spine; NaN scores (spines added by hand) are written as null.
    layer
        The spines layer's name.
    voxel_size_um
        The stack's voxel size (z, y, x).

    Returns
    -------
    dict

    Examples
    --------
    >>> state = spine_state(np.array([[1.0, 2, 3]]), ["added"], [7], [np.nan], layer="s",
    ...                     voxel_size_um=(1, 0.2, 0.2))
    >>> state["status"], state["score"]
    (['added'], [None])
    """
    coords = np.asarray(coords, float).reshape(-1, 3)
    scores = np.asarray(scores, float)
    return {
        "kind": "spines",
        "time": _now(),
        "layer": str(layer),
        "voxel_size_um": [float(v) for v in voxel_size_um],
        "coords": np.round(coords, 3).tolist(),
        "status": [str(s) for s in statuses],
        "id": [int(i) for i in np.asarray(ids)],
        "score": [None if not np.isfinite(s) else round(float(s), 6) for s in scores],
    }


def spine_arrays(state: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates, statuses, ids and scores of a `spine_state`.

    Parameters
    ----------
    state
        A journal line of spines.

    Returns
    -------
    tuple of numpy.ndarray
        ``(N, 3)`` float coordinates, object statuses, int ids and float scores (NaN: none).

    Raises
    ------
    ValueError
        Not a spines state, or its columns differ in length.
    """
    if state.get("kind") != "spines":
        raise ValueError("not a journal state of spines")
    coords = np.asarray(state["coords"], float).reshape(-1, 3)
    statuses = np.asarray(state["status"], dtype=object)
    ids = np.asarray(state["id"], dtype=int)
    scores = np.array([np.nan if s is None else s for s in state["score"]], float)
    if not len(coords) == len(statuses) == len(ids) == len(scores):
        raise ValueError("a journal state of spines whose columns differ in length")
    return coords, statuses, ids, scores


# -- labels ------------------------------------------------------------------------------------


def labels_fingerprint(proofreader: Any) -> str:
    """sha256 of the labels' shape, dtype and segments (id, voxel count, box), from its index.

    Costs one pass over the segments, not over the voxels.

    Parameters
    ----------
    proofreader
        A `~napari_spines.segmentation.proofreading.Proofreader` whose index is up to date.

    Returns
    -------
    str
    """
    labels = proofreader.labels
    digest = hashlib.sha256(json.dumps([list(labels.shape), str(labels.dtype)]).encode())
    for segment in proofreader.segment_ids().tolist():
        box = proofreader.bounding_box(segment)
        digest.update(
            json.dumps(
                [segment, proofreader.voxel_count(segment), [[s.start, s.stop] for s in box]]
            ).encode()
        )
    return digest.hexdigest()


def labels_base(proofreader: Any, *, layer: str, threshold: float | None = None) -> dict:
    """The first line of a labels journal: what the edits start from.

    Parameters
    ----------
    proofreader
        The proofreader of the labels before any edit.
    layer
        The labels layer's name.
    threshold
        The agglomeration threshold the labels were made at.

    Returns
    -------
    dict
    """
    return {
        "kind": "base",
        "time": _now(),
        "layer": str(layer),
        "threshold": None if threshold is None else round(float(threshold), 6),
        "shape": [int(n) for n in proofreader.labels.shape],
        "dtype": str(proofreader.labels.dtype),
        "fingerprint": labels_fingerprint(proofreader),
    }


def _pack(array: np.ndarray | None) -> dict | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(zlib.compress(array.tobytes(), 1)).decode("ascii"),
    }


def _unpack(packed: Mapping[str, Any] | None) -> np.ndarray | None:
    if packed is None:
        return None
    raw = zlib.decompress(base64.b64decode(packed["data"]))
    return np.frombuffer(raw, dtype=np.dtype(packed["dtype"])).reshape(packed["shape"]).copy()


def _patch_line(patch: Patch, values: PackedValues) -> dict:
    return {
        "region": [[int(s.start), int(s.stop)] for s in patch.region],
        "shape": [int(n) for n in patch.voxels.shape],
        "flat": _pack(patch.voxels.flat),
        "bits": _pack(patch.voxels.bits),
        "palette": _pack(values.palette),
        "codes": _pack(values.codes),
    }


def _patch_of(line: Mapping[str, Any]) -> tuple[tuple[slice, ...], ChangedVoxels, PackedValues]:
    region = tuple(slice(a, b) for a, b in line["region"])
    voxels = ChangedVoxels(tuple(line["shape"]), _unpack(line["flat"]), _unpack(line["bits"]))
    palette = _unpack(line["palette"])
    assert palette is not None
    return region, voxels, PackedValues(palette, _unpack(line["codes"]))


def change_record(
    patches: Sequence[Patch],
    *,
    undone: bool = False,
    mapping: Mapping[int, int] | None = None,
    edit: Any = None,
    how: str = "",
) -> dict:
    """A journal line for one change of the labels: the voxels it wrote and their values.

    Parameters
    ----------
    patches
        The changed voxels (`~napari_spines.segmentation.undo.Patch`), in the order written;
        for an undo, the record's patches as the edit wrote them (they are reverted here).
    undone
        The change undid ``patches`` (their old values are written, in reverse order).
    mapping
        Old id → new id of a renumbering (undone: applied backwards).
    edit
        The `~napari_spines.segmentation.edit_log.Edit` (or its dict) the change made,
        undid or redid; None for painting.
    how
        ``""`` (an edit), ``"undo"``, ``"redo"``, ``"paint"`` or ``"snapshot"``.

    Returns
    -------
    dict
    """
    remap = None
    if mapping:
        pairs = [(int(a), int(b)) for a, b in mapping.items()]
        remap = [[b, a] for a, b in pairs] if undone else [list(p) for p in pairs]
    if undone:
        lines = [_patch_line(p, p.old) for p in reversed(patches)]
    else:
        lines = [_patch_line(p, p.new) for p in patches]
    if edit is not None and not isinstance(edit, Mapping):
        edit = edit.to_dict()
    return {
        "kind": "change",
        "time": _now(),
        "how": how,
        "edit": None if edit is None else dict(edit),
        "remap": remap,
        "patches": lines,
    }


def snapshot_record(labels: np.ndarray, box: Sequence[slice], log: Iterable[Any]) -> dict:
    """A change that writes every voxel of ``box`` as it is now, with the edit log so far.

    Parameters
    ----------
    labels
        The labels (2D or 3D) as they are now.
    box
        Slices of the box (in the labels' dimensions) holding every voxel edited so far.
    log
        The edits (`Edit` or dicts) made so far, oldest first.

    Returns
    -------
    dict
    """
    volume = labels[np.newaxis] if labels.ndim == 2 else labels
    region = ((slice(0, 1),) if labels.ndim == 2 else ()) + tuple(box)
    values = np.asarray(volume[region])
    patch = Patch(
        region,
        ChangedVoxels.of(np.ones(values.shape, bool)),
        PackedValues.constant(0, values.dtype),
        PackedValues.pack(values.ravel()),
    )
    line = change_record([patch], how="snapshot")
    line["log"] = [e if isinstance(e, Mapping) else e.to_dict() for e in log]
    return line


def replay(labels: np.ndarray, states: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Write the changes after the last base of a labels journal onto ``labels``, in place.

    Parameters
    ----------
    labels
        Integer labels (2D or 3D) equal to the base (check its ``fingerprint`` first).
    states
        From `read_states`.

    Returns
    -------
    list of dict
        The edit log the changes leave (undone edits removed, redone ones back), oldest first.

    Raises
    ------
    ValueError
        The journal has no base, or a base of another shape.
    """
    bases = [i for i, s in enumerate(states) if s.get("kind") == "base"]
    if not bases:
        raise ValueError("the journal has no base: it cannot be replayed")
    base = states[bases[-1]]
    if list(labels.shape) != list(base.get("shape", ())):
        raise ValueError(
            f"the journal's labels are {tuple(base.get('shape', ()))}, not {labels.shape}"
        )
    volume = labels[np.newaxis] if labels.ndim == 2 else labels
    log: list[dict] = []
    undone: list[dict] = []
    for state in states[bases[-1] + 1 :]:
        if state.get("kind") != "change":
            continue
        if state.get("remap"):
            mapping = {int(a): int(b) for a, b in state["remap"]}
            out = fastremap.remap(volume, mapping, preserve_missing_labels=True, in_place=True)
            if not np.shares_memory(out, volume):  # fastremap copied (non-contiguous labels)
                volume[...] = out
        for line in state.get("patches") or ():
            region, voxels, values = _patch_of(line)
            volume[region][voxels.select()] = values.unpack()
        how, edit = state.get("how", ""), state.get("edit")
        if how == "snapshot":
            log, undone = list(state.get("log") or []), []
        elif how == "undo" and log:
            undone.append(log.pop())
        elif how == "redo" and edit is not None:
            log.append(undone.pop() if undone else edit)
        elif how == "" and edit is not None:
            log.append(edit)
            undone = []
    return log
