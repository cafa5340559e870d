"""Choices that follow the viewer: layer and model ComboBoxes of the widgets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import ComboBox, FileEdit

from napari_spines.models import list_models
from napari_spines.models.registry import nearest_voxel_size

#: The device choices of widgets that run a model.
DEVICES = ("auto", "cpu", "cuda", "mps")


class OptionalChoice(ComboBox):
    """A ComboBox whose empty choice reads "none" (and, being nullable, reports choosing it)."""

    null_string = "none"


def follow_layers(viewer: napari.viewer.Viewer, *combos: Any) -> None:
    """Refresh the choices of ``combos`` whenever a layer is added or removed (and now)."""
    for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
        for combo in combos:
            event.connect(lambda _e, c=combo: c.reset_choices())
    for combo in combos:
        combo.reset_choices()


def chosen_model(package: FileEdit, combo: ComboBox) -> str | None:
    """The package path typed or browsed in ``package`` when it exists, else ``combo``'s model."""
    path = str(package.value or "")
    return path if path not in ("", ".") and Path(path).exists() else combo.value


def fit_model_to_image(
    viewer: napari.viewer.Viewer, image: ComboBox, model: ComboBox, fitting: Callable[[], list[str]]
) -> None:
    """Set ``model`` to the first of ``fitting()`` each time another image is chosen in ``image``.

    Once per image, so a model the user picked stays picked; also when a first layer is added
    (the image combo may then take it without a changed event), and now.
    """
    fitted: list[object] = [object()]

    def choose(*_: object) -> None:
        layer = image.value
        if layer is fitted[0] and model.choices:
            return
        fitted[0] = layer
        model.reset_choices()
        names = fitting()  # the combo keeps its old order, so not its first
        if names:
            model.value = names[0]

    for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
        event.connect(choose)
    image.changed.connect(choose)
    choose()


def model_names(
    task: str | None = None,
    first: str | None = None,
    voxel_size_um: Sequence[float] | None = None,
) -> list[str]:
    """Names of the installed models (of ``task`` when given), no repeats.

    With ``voxel_size_um`` the models whose input voxel size is nearest come first
    (`~napari_spines.models.registry.nearest_voxel_size`); otherwise ``first`` does.
    """
    packages = [p for p in list_models() if task is None or p.spec.task == task]
    if voxel_size_um is not None:
        packages = nearest_voxel_size(packages, voxel_size_um)
        return list(dict.fromkeys(p.spec.name for p in packages))
    names = [p.spec.name for p in packages]
    return sorted(dict.fromkeys(names), key=lambda name: name != first)
