"""The line below Segment: the mode and threshold a run will use, and what it assumed.

Making it may read the whole stack (`estimate_anisotropy`, when no voxel size is known), so it
is made in a `LatestWorker`, never on napari's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from napari_spines._widgets._task import LatestWorker, status_label
from napari_spines.errors import first_line
from napari_spines.segmentation.pipeline import segmentation_plan
from napari_spines.segmentation.stack_settings import StackSettings

#: What the line adds when the mode was assumed.
HOW_TO_CHANGE = "set it in Voxel size, or choose a mode"
#: What the line, and Segment, say when no affinity model is installed.
NO_MODEL = "no affinity model installed: choose a model package folder"


class SettingsLine:
    """A label saying how Segment will run the chosen stack; `show` asks for it again.

    ``on_settings`` gets the `StackSettings` once they are known (the widget puts their
    threshold on its slider).
    """

    def __init__(self, on_settings: Callable[[StackSettings], None]) -> None:
        self.label = status_label("")
        self._on_settings = on_settings
        self._shown_for: tuple = ()
        self._asked: tuple = ()
        self._worker = LatestWorker(self._job, self._shown, self._failed)

    @property
    def busy(self) -> bool:
        """True while the line is being made."""
        return self._worker.busy

    def show(
        self,
        data: Any,
        axes: str,
        model: str,
        voxel_size_um: Sequence[float] | None,
        mode: str | None,
    ) -> None:
        """Make the line for this stack, model, voxel size and mode (unless it is shown already).

        Parameters
        ----------
        data, axes
            The stack (None: no stack chosen, the line is empty) and its axes.
        model
            A registered name or package path; "" when none is installed.
        voxel_size_um, mode
            As `segmentation_plan` takes them.
        """
        key = (id(data), model, voxel_size_um, mode)
        if key == self._shown_for:
            return  # not again at every layer event
        self._shown_for = key
        self.label.value = ""
        if data is None:
            self._worker.discard()
            return
        if not model:
            self._worker.discard()
            self.label.value = NO_MODEL
            return
        self._asked = (data, axes, model, voxel_size_um, mode)
        self._worker.request()

    def _job(self) -> Callable[[], tuple[Any, StackSettings]]:
        return partial(segmentation_plan, *self._asked)

    def _shown(self, plan: tuple[Any, StackSettings]) -> None:
        settings = plan[1]
        self.label.value = settings.message(HOW_TO_CHANGE)
        self._on_settings(settings)

    def _failed(self, exc: BaseException) -> None:
        self.label.value = first_line(exc)  # Segment says it again when pressed
