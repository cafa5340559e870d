"""The Sessions widget's track editing: relink, split and merge the selected spines' tracks; undo.

The buttons act on the spines selected in the "tracked spines" layer and call the plain
functions of `napari_spines.sessions.editing`; every edit counts the dynamics again and the
widget redraws the layers and the plot (``on_edited``). Every edit and undo is journalled at
once in the training store (``journal/tracks-FINGERPRINT.jsonl``, `napari_spines.training.
journal`): tracking the same spines again offers "Restore unsaved edits (N)"; an export retires
the journal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import Container, PushButton, SpinBox
from napari.layers import Points
from napari.utils.notifications import show_error

from napari_spines._widgets._journal import RestoreButton, write_safely
from napari_spines._widgets._task import status_label
from napari_spines.sessions.editing import (
    EDITS,
    EditHistory,
    replay,
    spine_of_row,
    tracks_fingerprint,
)
from napari_spines.sessions.track import Tracked
from napari_spines.settings import training_store
from napari_spines.training.journal import Journal, journal_path

HINT = (
    "Select spines in the tracked layer (select mode, shift-click for two). Keys there: "
    "Shift-L relink, Shift-S split, Shift-M merge, Shift-U undo."
)
#: Key → panel method, bound on the tracked spines layer (as the proofreading keys).
KEYS = {"Shift-L": "relink", "Shift-S": "split", "Shift-M": "merge", "Shift-U": "undo"}


class TrackEditPanel(Container):
    """Relink, split and merge tracks of the selected spines, with undo.

    Parameters
    ----------
    layer
        Returns the tracked spines' Points layer, or None when there is none.
    on_edited
        Called with the edited `Tracked` after each edit and undo.
    """

    def __init__(
        self, layer: Callable[[], Points | None], on_edited: Callable[[Tracked], Any]
    ) -> None:
        self._layer, self._on_edited = layer, on_edited
        self._to_track = SpinBox(
            label="to track",
            value=0,
            min=0,
            max=2**31 - 1,
            tooltip="the track id to move the selected spine to; 0: a new track of its own",
        )
        self._relink = PushButton(text="Relink spine")
        self._split = PushButton(text="Split track here")
        self._merge = PushButton(text="Merge two tracks")
        self._undo = PushButton(text="Undo edit")
        self.restore_button = RestoreButton()
        self._said = status_label(HINT)
        super().__init__(
            widgets=[
                self._to_track,
                self._relink,
                self._split,
                self._merge,
                self._undo,
                self.restore_button,
                self._said,
            ],
            labels=True,
        )
        self.tracked: Tracked | None = None
        self._first: Tracked | None = None  # before any edit: what the journal replays onto
        self.history: EditHistory | None = None
        self.journal: Journal | None = None
        self.restore_button.clicked.connect(self.restore)
        self._relink.clicked.connect(self.relink)
        self._split.clicked.connect(self.split)
        self._merge.clicked.connect(self.merge)
        self._undo.clicked.connect(self.undo)
        self._enable()

    def bind_keys(self, layer: Points) -> None:
        """Bind `KEYS` on ``layer``, the tracked spines."""
        for key, action in KEYS.items():
            layer.bind_key(key, lambda _layer, a=action: getattr(self, a)(), overwrite=True)

    def start(self, tracked: Tracked) -> None:
        """Edit the tracks of ``tracked`` from now on (a new tracking drops the old history)."""
        self.tracked, self._first = tracked, tracked
        self.history = EditHistory(tracked.track_ids)
        key = tracks_fingerprint(tracked.points_um, tracked.track_ids)[:16]
        self.journal = Journal(journal_path(training_store(), f"tracks-{key}"))
        self.restore_button.offer(self.journal.unsaved)
        self._said.value = HINT
        self._enable()

    def restore(self) -> str | None:
        """Make again the edits an earlier session journalled for these same tracks."""
        if self.journal is None or self._first is None or not self.journal.unsaved:
            show_error("No unsaved track edits of these tracks to restore.")
            return None
        self.history, skipped = replay(self._first.track_ids, self.journal.adopt())
        self.restore_button.offer(0)
        n = len(self.history.edits)
        said = f"restored {n} track edit{'s' * (n != 1)}"
        self._edited(said + (f" ({skipped} could not be made again)" if skipped else ""))
        return said

    def saved(self) -> None:
        """The edited tracks were exported: retire their journal."""
        if self.journal is not None:
            self.journal.clear()
            self.restore_button.offer(0)

    def _apply(self, name: str, *args: int | None) -> str:
        """Make edit ``name`` of `EDITS` and journal it."""
        assert self.history is not None
        said = self.history.apply(EDITS[name], *args)
        write_safely(self.journal, {"edit": name, "args": list(args)})
        self.restore_button.offer(0)  # an earlier session's journal is aside now
        return said

    def _enable(self) -> None:
        ready = self.tracked is not None
        for button in (self._relink, self._split, self._merge):
            button.enabled = ready
        self._undo.enabled = self.history is not None and self.history.can_undo

    def _selected(self) -> list[tuple[int, int]]:
        """``(t, index)`` of each selected spine, earliest session first."""
        layer = self._layer()
        if self.tracked is None or layer is None:
            raise ValueError("Track sessions first.")
        counts = [len(p) for p in self.tracked.points_um]
        if len(layer.data) != sum(counts):
            raise ValueError(
                f"{layer.name} has {len(layer.data)} spines, the tracks {sum(counts)}: spines were "
                "added or deleted there; track the sessions again to edit"
            )
        return sorted(spine_of_row(counts, int(row)) for row in layer.selected_data)

    def _track_of(self, spine: tuple[int, int]) -> int:
        assert self.history is not None
        t, index = spine
        return int(self.history.current[t][index])

    def _edit(self, make: Callable[[list[tuple[int, int]]], str]) -> str | None:
        """Run one edit on the selection; show what changed, or why nothing did."""
        try:
            said = make(self._selected())
        except ValueError as exc:
            self._said.value = str(exc)
            show_error(str(exc))
            return None
        self._edited(said)
        return said

    def _edited(self, said: str) -> None:
        assert self.tracked is not None and self.history is not None
        self.tracked = self.tracked.with_track_ids(self.history.current)
        self._said.value = said
        self._enable()
        self._on_edited(self.tracked)  # the line above says what changed: no notification

    def relink(self) -> str | None:
        """Move the one selected spine to the track under "to track" (0: a new track)."""

        def make(spines: list[tuple[int, int]]) -> str:
            if len(spines) != 1:
                raise ValueError(f"Select one spine to relink, not {len(spines)}.")
            return self._apply("relink", *spines[0], int(self._to_track.value) or None)

        return self._edit(make)

    def split(self) -> str | None:
        """Cut the selected spine's track before its session: from there on it is a new track."""

        def make(spines: list[tuple[int, int]]) -> str:
            if len(spines) != 1:
                raise ValueError(
                    f"Select one spine, the first of the new track, not {len(spines)}."
                )
            return self._apply("split", self._track_of(spines[0]), spines[0][0])

        return self._edit(make)

    def merge(self) -> str | None:
        """Join the tracks of the two selected spines; the earlier spine's track stays."""

        def make(spines: list[tuple[int, int]]) -> str:
            tracks = list(dict.fromkeys(self._track_of(s) for s in spines))
            if len(spines) != 2 or len(tracks) != 2:
                raise ValueError("Select two spines of two different tracks to merge them.")
            return self._apply("merge", *tracks)

        return self._edit(make)

    def undo(self) -> str | None:
        """Undo the last edit."""
        if self.history is None or not self.history.can_undo:
            self._said.value = "nothing to undo"
            return None
        said = self.history.undo()
        write_safely(self.journal, {"edit": "undo"})
        self._edited(said)
        return said
