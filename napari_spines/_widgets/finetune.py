"""Dock widget: fine-tune a model on the corrections in a training store.

It runs `napari_spines.training.finetune.finetune` (what ``napari-spines finetune`` runs) in a
worker: the bar follows the seconds of the time budget, Cancel stops at the next step (nothing
is written), and a live plot shows the held-out figure of each validation (F1 for spines, the
adapted Rand error for labels). The new package is named after its folder and registered, and
every docked widget's model choices are refreshed, so Spine detection and Segmentation offer it.
What the choices are, and the quick checks, are in `napari_spines.training.choices`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from napari_spines._widgets._plot import MetricPlot
from napari_spines._widgets._task import LatestWorker, TaskPanel, status_label
from napari_spines.child_process import run_in_child
from napari_spines.errors import first_line
from napari_spines.models import find_model
from napari_spines.settings import training_store
from napari_spines.training.choices import (
    METRIC_OF_TASK,
    check_request,
    default_output,
    model_choices,
    store_summary,
)
from napari_spines.training.finetune import FineTuned
from napari_spines.training.job import finetune_job
from napari_spines.training.store import StoreContents, load_store

#: Recorded as the command in the model card of a package made here.
WIDGET_COMMAND = "napari-spines Fine-tune widget"
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_MODEL = "spine-2p"


def refresh_model_choices(viewer: napari.viewer.Viewer) -> None:
    """Reset the choices of every docked widget, so their model lists show new packages."""
    window = getattr(viewer, "window", None)
    docked = getattr(window, "dock_widgets", None) or {}
    for widget in list(docked.values()):
        reset = getattr(widget, "reset_choices", None)
        if callable(reset):
            reset()


class FineTuneWidget(Container):
    """Pick a store, a model, an output folder and minutes; Fine-tune writes a new model."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._names: dict[str, str] = {}
        self._store = FileEdit(label="store", mode="d", value=str(training_store()))
        self._contents = status_label("")
        self._model = ComboBox(label="model", choices=self._model_choices)
        self._out = FileEdit(
            label="output", mode="d", value="", tooltip="the new model package's folder"
        )
        self._minutes = FloatSpinBox(label="minutes", value=10.0, min=0.5, max=600.0, step=1.0)
        self._replay = FileEdit(
            label="replay store",
            mode="d",
            value="",
            tooltip="optional: a store of what the model learnt from before, mixed into half "
            "of the training crops against forgetting",
        )
        self._device = ComboBox(label="device", choices=DEVICES)
        self._run = PushButton(text="Fine-tune")
        self._status = status_label("")
        super().__init__(
            widgets=[
                *(self._store, self._contents, self._model, self._out, self._minutes),
                *(self._replay, self._device, self._run, self._status),
            ]
        )
        self.task = TaskPanel()
        self.plot = MetricPlot()
        self.native.layout().addWidget(self.task)
        self.native.layout().addWidget(self.plot)
        self.result: FineTuned | None = None
        self.contents = StoreContents()
        self._auto_out = ""
        self._lister = LatestWorker(self._list_job, self._listed)
        default = next((p for p, name in self._names.items() if name == DEFAULT_MODEL), None)
        if default is not None:
            self._model.value = default
        self._store.changed.connect(self._store_changed)
        self._model.changed.connect(self._follow_model)
        self._run.clicked.connect(self.run)
        self.task.finished.connect(lambda: setattr(self._run, "enabled", True))
        self.task.failed.connect(lambda exc: setattr(self._status, "value", first_line(exc)))
        self.task.cancelled.connect(self._cancelled)
        self._follow_model()
        self.refresh()

    @property
    def store(self) -> Path:
        """The store folder chosen."""
        return Path(str(self._store.value or "")).expanduser()

    @property
    def busy(self) -> bool:
        """True while fine-tuning or reading the store."""
        return self.task.busy or self._lister.busy

    def _model_choices(self, _widget: object = None) -> list[tuple[str, str]]:
        choices = model_choices()
        self._names = {path: label.split(" ")[0] for label, path in choices}
        return choices

    # -- the store and the output folder ---------------------------------------------------
    def _store_changed(self, *_args: object) -> None:
        self._follow_model()
        self.refresh()

    def _follow_model(self, *_args: object) -> None:
        """Point the output at a new folder beside the store, unless the user chose one."""
        name = self._names.get(self._model.value or "", "")
        if name and str(self._out.value or "") in ("", ".", self._auto_out):
            self._auto_out = str(default_output(self.store, name))
            self._out.value = self._auto_out

    def refresh(self) -> None:
        """Read the store again (in a worker: every file's sha256 is checked)."""
        self._lister.request()

    def _list_job(self) -> Any:
        if not self.store.is_dir():
            self.contents = StoreContents()
            self._contents.value = "no such folder: save corrections with the Training data widget"
            return None
        self._contents.value = "reading the store…"
        return partial(load_store, self.store)

    def _listed(self, contents: StoreContents) -> None:
        self.contents = contents
        line = store_summary(contents)
        if contents.problems:
            line += f"; {len(contents.problems)} problems (skipped): {contents.problems[0]}"
            show_warning(f"{len(contents.problems)} problems in the store: {contents.problems[0]}")
        self._contents.value = line

    # -- fine-tuning -----------------------------------------------------------------------
    def run(self) -> Any:
        """Check the choices, then fine-tune in a worker; None (and a message) if bad."""
        path = self._model.value
        if not path:
            return self._say("No model that can be fine-tuned is installed.", error=True)
        out = Path(str(self._out.value or "")).expanduser()
        replay = str(self._replay.value or "")
        replay = None if replay in ("", ".") else str(Path(replay).expanduser())
        if replay is not None and not Path(replay).is_dir():
            return self._say(f"{replay}: no such replay store folder", error=True)
        try:
            package = find_model(path)
            task = check_request(self.store, package, out)
        except (OSError, ValueError) as exc:
            return self._say(first_line(exc), error=True)
        self.plot.start(*METRIC_OF_TASK[task])
        # in a child process: importing torch and the ONNX export hold the GIL for seconds
        job = partial(
            run_in_child,
            finetune_job,
            str(self.store),
            path,
            str(out),
            float(self._minutes.value),
            self._device.value,
            WIDGET_COMMAND,
            replay,
            relay={"on_record": self.plot.recorded.emit},
        )
        worker = self.task.run(job, on_result=self._done)
        if worker is not None:
            self._run.enabled = False
            self._say(
                f"fine-tuning {package.spec.name} on the {task} entries for "
                f"{self._minutes.value:g} minutes…"
            )
        return worker

    def _done(self, tuned: FineTuned) -> None:
        self.result = tuned
        refresh_model_choices(self._viewer)
        self.reset_choices()  # when not docked
        self._follow_model()  # the next run goes to a new folder
        self._say(
            f"{tuned.summary}\nnew model {tuned.package.name}: {tuned.package} (choose it in "
            "the Spine detection or Segmentation widget)"
        )

    def _cancelled(self) -> None:
        self._status.value = "cancelled, nothing written"
        show_info("Fine-tuning cancelled, nothing written.")

    def _say(self, message: str, error: bool = False) -> None:
        self._status.value = message
        (show_error if error else show_info)(message)
