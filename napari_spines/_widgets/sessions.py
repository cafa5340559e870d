"""Dock widget: follow the same spines across imaging sessions, and propose the next session.

*Track sessions* takes one image layer with a T axis (``T, Z, Y, X``) or several 3D image
layers (imaging order: their order in ``viewer.layers``, bottom of the layer list first), and
optionally their spines (one 4D Points layer, ``t`` first, or one 3D Points layer per session;
else the chosen model detects them). `napari_spines.sessions.track.track_sessions` registers,
links and counts in a worker; the widget adds a 4D Points layer coloured by each track's
dynamics, a Tracks layer, and a plot of counts, gains and losses per session, which *Export*
writes with the tables.

Traced dendrites (Shapes paths, or the points of a dendrites CSV) give densities per µm. *Edit
tracks* (`_track_editing`) relinks, splits and merges the tracks of the selected spines, with
undo and a journal.

*Propose next session* carries the previous session's corrected spines into the next stack
(`napari_spines.sessions.track.detect_from_previous`) and adds them, most doubtful first, for
review one by one (`_proposal_review`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    Select,
)
from napari.layers import Points
from napari.utils.notifications import show_error, show_info

from napari_spines._widgets._choices import DEVICES, follow_layers, model_names
from napari_spines._widgets._dynamics_plot import DynamicsPlot
from napari_spines._widgets._layers import image_layers, layers_of
from napari_spines._widgets._propose_next import ProposeNextPanel
from napari_spines._widgets._session_layers import (
    Sessions,
    assumed_voxel_notes,
    gather_dendrite_lengths,
    gather_points,
    gather_sessions,
    traced_layers,
)
from napari_spines._widgets._task import TaskPanel, status_label
from napari_spines._widgets._track_editing import TrackEditPanel
from napari_spines.io.layers import spine_points_style, tracks_layer_data
from napari_spines.sessions.linking import AXIAL_WEIGHT, MAX_DISTANCE_UM
from napari_spines.sessions.track import (
    Tracked,
    track_sessions,
)

#: Face colour of a tracked spine by the class of its track.
DYNAMICS_COLOURS = {
    "stable": "#3cb44b",
    "gained": "#42d4f4",
    "lost": "#f032e6",
    "transient": "#ffe119",
}
TRACKED_NAME = "tracked spines"
TRACKS_NAME = "spine tracks"


class SessionsWidget(Container):
    """Track spines across imaging sessions; propose the next session from the previous one."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._sessions = Select(
            label="sessions",
            choices=lambda _w: image_layers(viewer),
            tooltip="one image with a T axis (T, Z, Y, X), or 3D images, taken in the order "
            "listed here (the order they were added: bottom of the layer list first)",
        )
        self._points = Select(
            label="spines",
            choices=layers_of(viewer, Points),
            tooltip="none chosen: detect them with the model; else one 4D points layer "
            "(t, z, y, x) or one 3D points layer per session, in the order listed here",
        )
        self._dendrites = Select(
            label="dendrites",
            choices=lambda _w: traced_layers(viewer.layers),
            tooltip="optional, for densities per µm: one 4D layer (t, z, y, x) or one 3D layer "
            "per session; Shapes with paths along the dendrites, or Points of a dendrites CSV "
            "(segment_id, z, y, x)",
        )
        self._model = ComboBox(
            label="model", choices=lambda _w: model_names("spine-detection", first="spine-2p")
        )
        self._device = ComboBox(label="device", choices=DEVICES)
        self._max_distance = FloatSpinBox(
            label="max distance µm", value=MAX_DISTANCE_UM, min=0.1, max=50.0, step=0.1
        )
        self._axial_weight = FloatSpinBox(
            label="axial weight",
            value=AXIAL_WEIGHT,
            min=0.0,
            max=5.0,
            step=0.05,
            tooltip="how much a z difference counts in the distance between linked spines",
        )
        self._deformable = CheckBox(text="deformable registration", value=True)
        self._track = PushButton(text="Track sessions")
        self._counts = status_label("no tracks yet")
        self._export_path = FileEdit(
            label="tracks CSV",
            mode="w",
            filter="*.csv",
            value="tracks.csv",
            tooltip="NAME_dynamics.csv and NAME_dynamics.png are written beside it",
        )
        self._export = PushButton(text="Export…")
        widgets = [
            Label(value="Track sessions"),
            *(self._sessions, self._points, self._dendrites, self._model, self._device),
            *(self._max_distance, self._axial_weight, self._deformable, self._track),
            *(self._counts, self._export_path, self._export),
            Label(value="Edit tracks"),
        ]
        super().__init__(widgets=widgets)
        layout = self.native.layout()
        self.task = TaskPanel()
        layout.insertWidget(widgets.index(self._track) + 1, self.task)
        self.plot = DynamicsPlot()
        layout.insertWidget(widgets.index(self._counts) + 2, self.plot)
        self.edits = TrackEditPanel(self._tracked_layer, self.show_edited)
        layout.insertWidget(widgets.index(self._export) + 4, self.edits.native)
        self.proposals = ProposeNextPanel(viewer, self._proposal_options, self._start)
        layout.addWidget(self.proposals.native)
        self.tracked: Tracked | None = None
        self.voxel_um: tuple[float, float, float] | None = None
        self._track.clicked.connect(self.track)
        self._export.clicked.connect(self.export)
        self.task.finished.connect(self._enable)
        combos = (self._sessions, self._points, self._dendrites, *self.proposals.choosers)
        follow_layers(viewer, *combos)

    def _proposal_options(self) -> dict[str, Any]:
        return {
            "model": self._model.value,
            "deformable": bool(self._deformable.value),
            "device": self._device.value,
        }

    def _enable(self) -> None:
        self._track.enabled = self.proposals.button.enabled = True

    def _start(self, job: Any, on_result: Any) -> Any:
        worker = self.task.run(job, on_result=on_result)
        if worker is not None:
            self._track.enabled = self.proposals.button.enabled = False
        return worker

    # -- tracking ----------------------------------------------------------------------------
    def track(self) -> Any:
        """Check the choices, then track in a worker; None (and a message) when they are bad."""
        try:
            sessions = gather_sessions(self._sessions.value)
            points = gather_points(self._points.value, sessions)
            lengths = gather_dendrite_lengths(
                self._dendrites.value, len(sessions.stacks), sessions.voxel_um
            )
            if points is None and not self._model.value:
                raise ValueError("Choose a spine-detection model, or the sessions' spines.")
        except ValueError as exc:
            show_error(str(exc))
            return None
        job = partial(
            track_sessions,
            sessions.stacks,
            sessions.voxel_um,
            points,
            model=self._model.value,
            max_distance_um=float(self._max_distance.value),
            axial_weight=float(self._axial_weight.value),
            deformable=bool(self._deformable.value),
            dendrite_lengths_um=lengths,
            device=self._device.value,
        )
        for note in assumed_voxel_notes(self._dendrites.value, sessions.voxel_um):
            show_info(note)
        return self._start(job, partial(self.show_tracks, sessions))

    def _tracked_layer(self) -> Points | None:
        layer = self._viewer.layers[TRACKED_NAME] if TRACKED_NAME in self._viewer.layers else None
        return layer if isinstance(layer, Points) else None

    def show_tracks(self, sessions: Sessions, tracked: Tracked) -> Iterator[None]:
        """Add (or replace) the tracked spines and tracks layers; plot the dynamics.

        Yields
        ------
        None
            After the plot and after each layer, for `TaskPanel` to run one step per turn
            (`show_now`: at once).
        """
        self.tracked, self.voxel_um = tracked, sessions.voxel_um
        self.edits.start(tracked)
        n_sessions = len(tracked.points_um)
        data, ids, dynamics = tracked.points_tzyx(sessions.voxel_um)
        for name in (TRACKED_NAME, TRACKS_NAME):
            if name in self._viewer.layers:
                self._viewer.layers.remove(name)
        self._counts.value = tracked.summary()
        self.plot.show_dynamics(tracked.dynamics)
        if not len(data):
            show_info(f"No spines in any of the {n_sessions} sessions.")
            return
        yield
        style = spine_points_style(sessions.voxel_um)
        style.update(face_color=[DYNAMICS_COLOURS[d] for d in dynamics], border_color="white")
        points = self._viewer.add_points(
            data,
            name=TRACKED_NAME,
            features={"track_id": ids, "dynamics": dynamics},
            opacity=0.7,  # the head shows through the colour of its track
            **sessions.placement,
            **style,
        )
        points.feature_defaults = {"track_id": 0, "dynamics": "transient"}
        self.edits.bind_keys(points)
        yield
        self._viewer.add_tracks(
            tracks_layer_data(ids, data),
            name=TRACKS_NAME,
            tail_length=n_sessions,
            **sessions.placement,
        )
        show_info(f"{len(tracked.classes)} tracks over {n_sessions} sessions.")

    def show_edited(self, tracked: Tracked) -> None:
        """Show edited tracks: new ids, classes and colours in place, the tracks, the plot."""
        self.tracked = tracked
        self._counts.value = tracked.summary()
        self.plot.show_dynamics(tracked.dynamics)
        points = self._tracked_layer()
        if points is None or self.voxel_um is None:
            return
        data, ids, dynamics = tracked.points_tzyx(self.voxel_um)
        features = points.features  # in place: a new table would be validated again (~40 ms)
        features["track_id"], features["dynamics"] = ids, dynamics
        points.face_color = [DYNAMICS_COLOURS[d] for d in dynamics]
        if TRACKS_NAME in self._viewer.layers:
            self._viewer.layers[TRACKS_NAME].data = tracks_layer_data(ids, data)

    def export(self) -> list[Path]:
        """Write the tracks CSV, the dynamics CSV beside it and the plot as PNG."""
        if self.tracked is None or self.voxel_um is None:
            show_error("Track sessions first.")
            return []
        try:
            path, dynamics = self.tracked.write_csv(str(self._export_path.value), self.voxel_um)
            picture = dynamics.with_suffix(".png")
            self.plot.save_png(picture)
        except OSError as exc:
            where = self._export_path.value
            show_error(f"Cannot write the export beside {where}: {exc.strerror or exc}")
            return []
        self.edits.saved()
        show_info(f"written: {path.name}, {dynamics.name}, {picture.name} in {path.parent}")
        return [path, dynamics, picture]
