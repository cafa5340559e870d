"""Dock widget: train a built-in model (spine-2p or em-affinity) on a data folder.

The widget gathers what ``napari-spines train spines|affinities`` takes and runs the same core
function, ``train_and_export`` of `napari_spines.training.spines` or
`napari_spines.training.affinity`, in a child process (`napari_spines.child_process`), watched
by a worker: importing torch and exporting to ONNX hold the GIL for seconds, which from a thread
would freeze the window. The bar follows the time budget and Cancel stops at the next step (the
checkpoints saved so far stay in the run folder). For em-affinity, a stack and its proofread
labels open in the viewer can join the training data (``--add``). The model card records the
command line that trains the same model
(`napari_spines.training.job.training_command`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Image, Labels

from napari_spines._widgets._choices import OptionalChoice, follow_layers
from napari_spines._widgets._layers import image_layers
from napari_spines._widgets._task import TaskPanel, status_label
from napari_spines.child_process import run_in_child
from napari_spines.errors import first_line
from napari_spines.training.export import TrainedModel
from napari_spines.training.job import LEARNING_RATE, SEED, WIDTHS, training_command, training_job

#: Choice shown → what it trains.
MODELS = {"spine-2p (two-photon spines)": "spines", "em-affinity (EM affinities)": "affinities"}


#: em-affinity's recipes (``train affinities --recipe``) and what each trains.
RECIPE_TIPS = {
    "long-range": "a 3D U-Net predicts the nearest-neighbour affinities and those 2 sections "
    "and 3, 9, 27 pixels away (em-affinity 0.3.0's recipe)",
    "affinities": "a 3D U-Net predicts the nearest-neighbour affinities only (em-affinity 0.2.0)",
    "boundary": "a 2D U-Net predicts each section's cell interior; affinities follow from it",
}
RECIPE_TIP = "; ".join(f"{name}: {tip}" for name, tip in RECIPE_TIPS.items())


def sessions(text: str) -> list[str]:
    """``"tp0, tp1"`` or ``"tp0 tp1"`` → ``["tp0", "tp1"]``."""
    return [name for name in text.replace(",", " ").split() if name]


def training_in_child(
    *args: Any, own: Any = None, progress: Any = None, **options: Any
) -> TrainedModel:
    """`training_job` in a child process (runs in the worker thread, touches no layer).

    A stack of the user's is read here first, as a lazy one may not pickle.
    """
    if own is not None:
        own = (np.asarray(own[0]), own[1], own[2])
    return run_in_child(training_job, *args, own=own, progress=progress, **options)


class TrainingWidget(Container):
    """Pick a model, a data folder and a time budget; Train makes a new model package."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._model = ComboBox(label="model", choices=tuple(MODELS))
        self._data = FileEdit(label="data folder", mode="d", value="")
        self._train = LineEdit(
            label="train on", value="", tooltip="session names in the data folder, e.g. A B"
        )
        self._validate = LineEdit(
            label="validate on", value="", tooltip="the held-out session's name"
        )
        self._out = FileEdit(label="run folder", mode="d", value="runs/spine-2p")
        self._minutes = FloatSpinBox(label="minutes", value=60.0, min=0.05, max=10_000.0, step=5.0)
        self._device = ComboBox(label="device", choices=("auto", "cpu", "cuda"))
        self._width = SpinBox(
            label="network width",
            value=WIDTHS["spines"],
            min=1,
            max=256,
            tooltip="channels of the U-Net's first level (as --width)",
        )
        self._lr = FloatSpinBox(
            label="learning rate",
            value=LEARNING_RATE,
            min=1e-6,
            max=1.0,
            step=1e-4,
            tooltip="peak learning rate, decayed over the budget (as --lr)",
        )
        self._lr.native.setDecimals(6)  # the step alone would show 4
        self._seed = SpinBox(
            label="seed",
            value=SEED,
            min=0,
            max=2**31 - 1,
            tooltip="seeds the weights and the crops: another seed is another run of the "
            "same recipe (as --seed)",
        )
        self._recipe = ComboBox(
            label="recipe", choices=tuple(RECIPE_TIPS), visible=False, tooltip=RECIPE_TIP
        )
        self._every_section = CheckBox(
            text="train on every section",
            visible=False,
            tooltip="train on every ISBI and gala section and choose nothing on them: the "
            "package is the last checkpoint (as --every-section)",
        )
        self._defects = CheckBox(
            text="missing and misaligned sections",
            visible=False,
            tooltip="augment with serial-section defects (as --section-defects)",
        )
        self._own_image = OptionalChoice(
            label="your stack", choices=self._image_choices, nullable=True, visible=False
        )
        self._own_labels = OptionalChoice(
            label="its labels",
            choices=self._labels_choices,
            nullable=True,
            visible=False,
            tooltip="e.g. the proofread Labels layer of the Segmentation widget: half the "
            "training crops then come from this stack",
        )
        self._run = PushButton(text="Train")
        self._status = status_label("")
        super().__init__(
            widgets=[
                self._model,
                self._data,
                self._train,
                self._validate,
                self._own_image,
                self._own_labels,
                self._recipe,
                self._every_section,
                self._defects,
                self._out,
                self._minutes,
                self._device,
                self._width,
                self._lr,
                self._seed,
                self._run,
                self._status,
            ]
        )
        follow_layers(viewer, self._own_image, self._own_labels)
        self._own_image.changed.connect(self._own_labels.reset_choices)
        self.task = TaskPanel()
        self.native.layout().addWidget(self.task)
        self._run.clicked.connect(self.run)
        self._model.changed.connect(self._show_sessions)
        self._data.changed.connect(self._fill_sessions)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))
        self.task.failed.connect(lambda exc: setattr(self._status, "value", first_line(exc)))
        self.task.cancelled.connect(
            lambda: setattr(
                self._status, "value", f"cancelled; checkpoints so far are in {self._out.value}"
            )
        )
        self.result: TrainedModel | None = None

    def _image_choices(self, _widget: object = None) -> list[tuple[str, Image]]:
        return [(name, layer) for name, layer in image_layers(self._viewer) if layer.ndim == 3]

    def _labels_choices(self, _widget: object = None) -> list[tuple[str, Labels]]:
        """Labels layers shaped like the chosen stack."""
        image = self._own_image.value
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and layer.ndim == 3
            and (image is None or layer.data.shape == image.data.shape)
        ]

    def _fill_sessions(self, *_args: object) -> None:
        """Propose the data folder's annotated sessions: the last held out, the rest trained on."""
        from napari_spines.spines.evaluate import annotated_sessions

        names = annotated_sessions(str(self._data.value or ""))
        if names:
            self._train.value = " ".join(names[:-1] or names)
            self._validate.value = names[-1] if len(names) > 1 else ""

    def _show_sessions(self, *_args: object) -> None:
        spines = MODELS[self._model.value] == "spines"
        self._train.visible = self._validate.visible = spines
        for widget in (
            self._own_image,
            self._own_labels,
            self._recipe,
            self._every_section,
            self._defects,
        ):
            widget.visible = not spines
        self._out.value = "runs/spine-2p" if spines else "runs/em-affinity"
        self._width.value = WIDTHS[MODELS[self._model.value]]

    def run(self) -> None:
        """Check the choices, then train in a worker."""
        model = MODELS[self._model.value]
        data = Path(str(self._data.value or ""))
        train_names, validate = sessions(self._train.value), self._validate.value.strip()
        if str(data) in ("", ".") or not data.is_dir():
            self._say("Choose the data folder first.", error=True)
            return
        if model == "spines" and (not train_names or not validate):
            self._say("Name the sessions to train on and the one to validate on.", error=True)
            return
        own = None
        image, labels = self._own_image.value, self._own_labels.value
        if model == "affinities" and (image is None) != (labels is None):
            self._say("Choose both your stack and its labels, or neither.", error=True)
            return
        if model == "affinities" and image is not None:
            # the labels are snapshotted here, as painting may go on; a lazy stack is read in
            # the worker, not on napari's thread
            stack = image.data[0] if image.multiscale else image.data
            own = (stack, np.array(labels.data), labels.name)
        settings = {
            "data": data,
            "out": Path(str(self._out.value)),
            "train_names": train_names,
            "validate": validate,
            "minutes": float(self._minutes.value),
            "device": self._device.value,
            "width": int(self._width.value),
            "lr": float(self._lr.value),
            "seed": int(self._seed.value),
            "recipe": self._recipe.value,
            "every_section": self._every_section.value,
            "defects": self._defects.value,
        }
        command = training_command(
            model, settings, None if own is None else (image.name, labels.name)
        )
        job = partial(
            training_in_child,
            model,
            data,
            settings["out"],
            train_names,
            validate,
            settings["minutes"],
            settings["device"],
            own=own,
            command=command,
            recipe=settings["recipe"],
            every_section=settings["every_section"],
            defects=settings["defects"],
            width=settings["width"],
            lr=settings["lr"],
            seed=settings["seed"],
        )
        if self.task.run(job, on_result=self._done) is not None:
            self._run.enabled = False
            self._say(f"training {self._model.value} for {self._minutes.value:g} minutes…")

    def _done(self, trained: TrainedModel) -> None:
        self.result = trained
        self._say(
            f"{trained.summary}\nmodel package: {trained.package} (choose it as "
            f"'or package' in the Spine detection or Segmentation widget)"
        )

    def _say(self, message: str, error: bool = False) -> None:
        from napari.utils.notifications import show_error, show_info

        self._status.value = message
        (show_error if error else show_info)(message)
