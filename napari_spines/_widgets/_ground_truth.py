"""The ground-truth panel of the Segmentation widget: pick a Labels layer, see the score.

Scoring runs in a `LatestWorker` on a snapshot of the labels, so proofreading goes on while it
runs, and only the score of the latest labels is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import napari
import numpy as np
from magicgui.widgets import Container
from napari.layers import Labels

from napari_spines._widgets._choices import OptionalChoice
from napari_spines._widgets._layers import in_viewer, same_layer
from napari_spines._widgets._task import LatestWorker, status_label
from napari_spines.segmentation.metrics import format_score, score_or_message

NO_TRUTH = "no ground truth chosen"


class GroundTruthPanel(Container):
    """A ground-truth choice and the adapted Rand error and VOI of the labels against it.

    Parameters
    ----------
    viewer
        The viewer holding the layers.
    image
        Returns the image being segmented (ground truth must have its shape), or None.
    labels
        Returns the segmentation's Labels layer (not a choice itself), or None.
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        image: Callable[[], object],
        labels: Callable[[], Labels | None],
    ) -> None:
        self._viewer, self._image_of, self._labels_layer = viewer, image, labels
        self._truth = OptionalChoice(label="ground truth", choices=self._choices, nullable=True)
        self._metrics = status_label(NO_TRUTH)
        self._scorer = LatestWorker(self._score_job, self._show)
        super().__init__(widgets=[self._truth, self._metrics])
        self.margins = (0, 0, 0, 0)
        self._truth.changed.connect(self.update)

    @property
    def busy(self) -> bool:
        """True while a score is being computed (or one is queued)."""
        return self._scorer.busy

    def reset_choices(self, *_args: object) -> None:
        """Refresh the choices; a renamed ground-truth layer stays chosen."""
        truth = self._truth.value
        super().reset_choices()
        if truth is not None and not same_layer(self._truth.value, truth):
            kept = [c for c in self._truth.choices if c is not None and same_layer(c, truth)]
            if kept:
                self._truth.value = kept[0]

    def _choices(self, _widget: object = None) -> list[tuple[str, object]]:
        """Labels layers shaped like the image (our own output excluded); "none" comes first."""
        image = self._image_of()
        shape = None if image is None else tuple(image.data.shape)
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and not same_layer(layer, self._labels_layer())
            and (shape is None or tuple(layer.data.shape) == shape)
        ]

    def update(self, *_args: object) -> None:
        """Score the labels against the chosen ground truth in a worker (latest wins)."""
        truth, labels = self._truth.value, self._labels_layer()
        message = None
        if truth is None:
            message = NO_TRUTH
        elif labels is None or not in_viewer(self._viewer, labels):
            message = "segment the image first"
        elif tuple(truth.data.shape) != tuple(labels.data.shape):
            message = (
                f"ground truth {truth.name!r} has shape {tuple(truth.data.shape)}, the "
                f"segmentation {tuple(labels.data.shape)}: they must match"
            )
        if message is not None:
            self._scorer.discard()  # a score still on its way is now out of date
            self._metrics.value = message
            return
        self._metrics.value = "scoring…"
        self._scorer.request()

    def _score_job(self) -> Callable[[], object] | None:
        truth, labels = self._truth.value, self._labels_layer()
        if truth is None or labels is None:
            return None
        # a snapshot: the proofreader edits the labels in place while the worker reads
        return partial(score_or_message, truth.data, np.array(labels.data, copy=True))

    def _show(self, score: object) -> None:
        self._metrics.value = score if isinstance(score, str) else format_score(score)
