"""The Sessions widget's "Propose next session": carry a corrected session into the next stack.

`napari_spines.sessions.track.detect_from_previous` runs in the widget's worker; the proposed
spines are added most doubtful first and reviewed one by one (`_proposal_review`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.layers import Image, Layer, Points
from napari.utils.notifications import show_error, show_info

from napari_spines._widgets._layers import image_layers, layer_voxel_size, layers_of, placed_like
from napari_spines._widgets._proposal_review import ProposalReview
from napari_spines._widgets._session_layers import gather_proposal
from napari_spines.io.layers import spine_points_style
from napari_spines.sessions.carry import CarriedSpines
from napari_spines.sessions.track import detect_from_previous


class ProposeNextPanel(Container):
    """Choose the previous image, its spines and the next image; propose; review.

    Parameters
    ----------
    viewer
        The viewer holding the layers.
    options
        The widget's model, ``deformable`` and device, as keyword arguments of
        `detect_from_previous`.
    start
        Runs a job in the widget's worker with a callback for its result (None if busy).
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        options: Callable[[], dict[str, Any]],
        start: Callable[[Any, Any], Any],
    ) -> None:
        self._viewer, self._options, self._start = viewer, options, start
        self._previous = ComboBox(label="previous image", choices=lambda _w: image_layers(viewer))
        self._previous_points = ComboBox(
            label="its spines",
            choices=layers_of(viewer, Points),
            tooltip="the previous session's corrected spines (3D points; track_id kept)",
        )
        self._next = ComboBox(label="next image", choices=lambda _w: image_layers(viewer))
        self.button = PushButton(text="Propose next session")
        self.review = ProposalReview(viewer)
        super().__init__(
            widgets=[
                Label(value="Propose next session"),
                *(self._previous, self._previous_points, self._next, self.button),
                self.review,
            ]
        )
        self.button.clicked.connect(self.propose)
        self.choosers = (self._previous, self._previous_points, self._next)

    def propose(self) -> Any:
        """Detect the next session from the previous one's spines in a worker; None if bad."""
        following = self._next.value
        options = self._options()
        try:
            proposal = gather_proposal(self._previous.value, self._previous_points.value, following)
            if not options["model"]:
                raise ValueError("Choose a spine-detection model.")
        except ValueError as exc:
            show_error(str(exc))
            return None
        job = partial(
            detect_from_previous,
            proposal.stack,
            proposal.voxel_um,
            proposal.previous_stack,
            proposal.previous_um,
            proposal.previous_ids,
            **options,
        )
        return self._start(job, partial(self.show_proposed, following))

    def show_proposed(self, image: Image, found: CarriedSpines) -> Layer:
        """Add (or replace) the proposed spines of ``image``, most doubtful first."""
        found = found.most_doubtful_first()
        voxel = np.asarray(layer_voxel_size(image).um)
        name = f"{image.name} proposed spines"
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        style = spine_points_style(tuple(voxel))
        features = {"status": found.statuses, "track_id": found.track_ids}
        features.update(score=found.scores, doubt=found.doubt)
        layer = self._viewer.add_points(
            found.coords_um / voxel, name=name, features=features, **placed_like(image), **style
        )
        layer.feature_defaults = {"status": "new", "track_id": 0, "score": np.nan, "doubt": np.nan}
        self.review.attach(layer)
        show_info(f"{found.summary(image.name)} Review them with N / B, A / R, U.")
        return layer
