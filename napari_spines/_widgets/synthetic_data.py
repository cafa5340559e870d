"""Dock widget that makes synthetic two-photon or EM stacks with ground truth, from a seed."""

from __future__ import annotations

from functools import partial

import napari
from magicgui.widgets import ComboBox, Container, PushButton, SpinBox

from napari_spines._sample_data import em_layer_data, two_photon_layer_data
from napari_spines._widgets._task import TaskPanel
from napari_spines.io.layers import LayerData
from napari_spines.synthetic import synthetic_em, synthetic_two_photon

KINDS = ("two-photon dendrite", "two-photon sessions", "EM volume")


def make_layer_data(
    kind: str, shape: tuple[int, int, int], seed: int, progress=None
) -> list[LayerData]:
    """Generate one synthetic sample of ``kind`` (see `KINDS`) as layer data."""
    if kind == "EM volume":
        return em_layer_data(
            synthetic_em(shape=shape, seed=seed, progress=progress), f"EM seed {seed}"
        )
    sessions = 3 if kind == "two-photon sessions" else 1
    sample = synthetic_two_photon(shape=shape, n_timepoints=sessions, seed=seed, progress=progress)
    return two_photon_layer_data(sample, f"two-photon seed {seed}")


class SyntheticDataWidget(Container):
    """Generate a synthetic stack in the background and add it with its ground truth."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._kind = ComboBox(label="kind", choices=KINDS, value=KINDS[0])
        self._shape = [
            SpinBox(label=f"{axis} size", min=4, max=4096, value=value)
            for axis, value in zip("zyx", (32, 256, 256), strict=True)
        ]
        self._seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self._run = PushButton(text="Generate")
        super().__init__(widgets=[self._kind, *self._shape, self._seed, self._run])
        self.task = TaskPanel()
        self.native.layout().addWidget(self.task)
        self._run.clicked.connect(self.generate)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))

    def generate(self) -> None:
        """Start generating; layers are added on the main thread when it returns."""
        shape = tuple(box.value for box in self._shape)
        if (
            self.task.run(
                partial(make_layer_data, self._kind.value, shape, self._seed.value),
                on_result=self._add_layers,
            )
            is not None
        ):
            self._run.enabled = False

    def _add_layers(self, layer_data: list[LayerData]) -> None:
        for data, meta, layer_type in layer_data:
            self._viewer.add_layer(napari.layers.Layer.create(data, meta, layer_type))
