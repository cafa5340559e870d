"""The proofreading edit log: one :class:`Edit` per operation, saved and read back as JSON.

A log file is ``{"edits": [...]}``, each edit a plain dict (:meth:`Edit.to_dict`), oldest
first. :func:`write_log` writes it atomically (no partial file on failure); :func:`load_log`
reads it back.

Saved labels carry their log inside the TIFF (`~napari_spines.io.labels_tiff.write_labels_tiff`
with ``edit_log=log_json(...)``), so one atomic rename saves both; the ``<name>.edits.json``
beside them is a copy for people and other tools. :func:`load_saved_edits` reads the log of a
labels TIFF, the TIFF being the authority.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from napari_spines.io.atomic import atomic_path

#: Operations an :class:`Edit` can name.
OPERATIONS = ("merge", "split", "delete", "fill_holes", "relabel")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Edit:
    """One proofreading operation, as logged.

    Attributes
    ----------
    operation
        ``"merge"``, ``"split"``, ``"delete"``, ``"fill_holes"`` or ``"relabel"``.
    ids
        Segment ids it acted on (for ``fill_holes``: the segment, then the ids it swallowed;
        for ``relabel``: the old ids that changed).
    new_ids
        Ids it created (``split``), the surviving id (``merge``, ``fill_holes``) or the new
        ids in the order of ``ids`` (``relabel``).
    coordinates
        Voxel coordinates the user clicked, or the seeds of a split; may be empty.
    time
        When it was applied, ISO 8601 UTC.
    """

    operation: str
    ids: list[int]
    new_ids: list[int]
    coordinates: list[list[float]] = field(default_factory=list)
    time: str = field(default_factory=_now)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (plain ints, floats and strings)."""
        out = asdict(self)
        out["ids"] = [int(i) for i in self.ids]
        out["new_ids"] = [int(i) for i in self.new_ids]
        out["coordinates"] = [[float(c) for c in point] for point in self.coordinates]
        return out


def log_json(edits: Iterable[Edit]) -> str:
    """The log ``{"edits": [...]}`` as JSON text, as `write_log` writes it.

    Parameters
    ----------
    edits
        The edits, oldest first.

    Returns
    -------
    str
        Indented JSON, ending in a newline.
    """
    return json.dumps({"edits": [edit.to_dict() for edit in edits]}, indent=1) + "\n"


def write_log(edits: Iterable[Edit], path: str | os.PathLike) -> Path:
    """Write ``{"edits": [...]}`` as JSON, atomically (no partial file on failure).

    Parameters
    ----------
    edits
        The edits, oldest first.
    path
        Where to write; missing parent folders are created.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"edits": [edit.to_dict() for edit in edits]}, fh, indent=1)  # as log_json
        fh.write("\n")
    return Path(path)


def load_log(path: str | os.PathLike) -> list[dict]:
    """Read the edits of a log written by :func:`write_log` (or `Proofreader.save_log`).

    Parameters
    ----------
    path
        The JSON log; a ``.tif``/``.tiff`` is read with :func:`load_saved_edits`.

    Returns
    -------
    list of dict
        The edits as :meth:`Edit.to_dict` wrote them, oldest first.

    Raises
    ------
    ValueError
        A JSON file that is not a proofreading log.
    """
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        return load_saved_edits(path)
    with open(path, encoding="utf-8") as fh:
        return _edits(json.load(fh), path)


def load_saved_edits(tif: str | os.PathLike) -> list[dict]:
    """The edit log saved with a labels TIFF: the one inside it, else ``<stem>.edits.json``.

    The log inside the TIFF was saved by the same rename as the labels, so it always belongs
    to them; the JSON file beside it is read only for TIFFs that carry none (saved before logs
    were embedded, or by another tool).

    Parameters
    ----------
    tif
        The labels ``.tif``/``.tiff``.

    Returns
    -------
    list of dict
        The edits, oldest first.

    Raises
    ------
    ValueError
        Neither the TIFF nor a JSON file beside it holds a proofreading log.
    """
    from napari_spines.io.labels_tiff import read_edit_log

    tif = Path(tif)
    text = read_edit_log(tif)
    if text is not None:
        return _edits(json.loads(text), tif)
    sidecar = tif.with_name(f"{tif.stem}.edits.json")
    if not sidecar.is_file():
        raise ValueError(f"{tif.name} holds no edit log, and there is no {sidecar.name}")
    return load_log(sidecar)


def _edits(data: object, path: str | os.PathLike) -> list[dict]:
    if not isinstance(data, dict) or not isinstance(data.get("edits"), list):
        raise ValueError(f"{path} is not a proofreading log (no 'edits' list)")
    return data["edits"]
