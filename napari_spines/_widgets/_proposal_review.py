"""The Sessions widget's review of a proposed session: most doubtful first, keys N B A R U.

The proposals of "Propose next session" start ``carried`` or ``new``; accepting or rejecting one
sets its ``status`` (`napari_spines.spines.review.ReviewQueue`, ordered by ``doubt``) and keeps
where it came from in the ``origin`` feature. Rejected spines stay, dimmed, and are left out
when the layer is the previous session's spines for the session after.
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import Container, PushButton
from napari.layers import Points

from napari_spines._widgets._review import (
    bind_review_keys,
    follow_hand_edits,
    show_statuses,
    show_under_review,
)
from napari_spines._widgets._task import status_label
from napari_spines.spines.review import ReviewQueue


class ProposalReview(Container):
    """Walk one session's proposed spines, most doubtful first; accept, reject, undo."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        buttons = {
            "next": PushButton(text="Next (N)"),
            "previous": PushButton(text="Back (B)"),
            "accept": PushButton(text="Accept (A)"),
            "reject": PushButton(text="Reject (R)"),
            "undo": PushButton(text="Undo (U)"),
        }
        self._counts = status_label("no proposals to review")
        row = Container(widgets=list(buttons.values()), layout="horizontal", labels=False)
        super().__init__(widgets=[row, self._counts], labels=False)
        for name, button in buttons.items():
            button.clicked.connect(getattr(self, name))
        self.layer: Points | None = None
        self.queue: ReviewQueue | None = None

    def attach(self, layer: Points) -> None:
        """Review ``layer`` (features ``status``, ``score``, ``doubt``) from now on."""
        features = layer.features
        if "origin" not in features:
            features["origin"] = np.array(features["status"].astype(str).tolist(), dtype=object)
        self.layer, self._positions = layer, np.asarray(layer.data).copy()
        self.queue = ReviewQueue(
            features["score"].to_numpy(dtype=float),
            features["status"].to_numpy(dtype=object).copy(),
            0.0,
            doubt=features["doubt"].to_numpy(dtype=float),
        )
        bind_review_keys(layer, self)
        layer.events.data.connect(self._on_data)
        self._refresh()

    def _on_data(self, event: object) -> None:
        """Follow hand edits as the Spine detection widget does (`follow_edits`).

        A dragged spine is ``moved``; one placed by hand is ``added``, on a new track, without
        score or doubt (last in line).
        """
        if self.layer is None:
            return
        followed = follow_hand_edits(self.layer, event, self._positions, "track_id")
        if followed is None:
            return
        self._positions, rows = followed
        features = self.layer.features
        for column, value in (("origin", "added"), ("doubt", np.nan)):
            values = features[column].to_numpy(dtype=object if column == "origin" else float).copy()
            values[rows] = value
            features[column] = values
        if self._ready():
            self.queue.grow(  # type: ignore[union-attr]
                features["score"].to_numpy(dtype=float),
                features["status"].to_numpy(dtype=object),
                features["doubt"].to_numpy(),
            )
            self._refresh()

    def _ready(self) -> bool:
        """Whether there is a review (its layer may have been deleted)."""
        if self.layer is not None and self.layer not in self._viewer.layers:
            self.layer = self.queue = None
            self._counts.value = "no proposals to review"
        return self.layer is not None and self.queue is not None

    def next(self) -> int | None:
        """Go to the next most doubtful spine."""
        return self._focus(self.queue.next()) if self._ready() else None  # type: ignore[union-attr]

    def previous(self) -> int | None:
        """Go back to the spine before."""
        return self._focus(self.queue.previous()) if self._ready() else None  # type: ignore[union-attr]

    def accept(self) -> int | None:
        """Accept the spine under review and go to the next."""
        return self._decide("accepted")

    def reject(self) -> int | None:
        """Reject the spine under review (it stays, dimmed) and go to the next."""
        return self._decide("rejected")

    def undo(self) -> int | None:
        """Revert the last accept or reject."""
        if not self._ready():
            return None
        assert self.queue is not None
        index = self.queue.undo()
        self._refresh()
        return self._focus(index)

    def _decide(self, status: str) -> int | None:
        if not self._ready():
            return None
        assert self.queue is not None
        index = self.queue.decide(status)
        self._refresh()
        return self._focus(index)

    def _focus(self, index: int | None) -> int | None:
        if self.layer is not None:
            show_under_review(self._viewer, self.layer, index)
        return index

    def _refresh(self) -> None:
        """Statuses and their colours into the layer; the count."""
        if self.layer is not None and self.queue is not None:
            self._counts.value = show_statuses(self.layer, self.queue)
