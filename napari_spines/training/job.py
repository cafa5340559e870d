"""One training run, as the Train widget starts it: the data, the budget, the model to make."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.progress import ProgressCallback
from napari_spines.training.export import TrainedModel


def training_job(
    model: str,
    data: Path,
    out: Path,
    train_names: list[str],
    validate_name: str,
    minutes: float,
    device: str,
    own: tuple[Any, np.ndarray, str] | None = None,
    command: str = "",
    progress: ProgressCallback | None = None,
) -> TrainedModel:
    """Train, export and score one model, as ``napari-spines train spines|affinities`` does.

    Parameters
    ----------
    model
        "spines" (spine-2p) or "affinities" (em-affinity).
    data
        The data folder.
    out
        The run folder; the package is written inside it.
    train_names, validate_name
        Sessions to train and validate on (spines only).
    minutes
        Time budget.
    device
        "auto", "cpu" or "cuda".
    own
        A stack, its labels and their name, added to em-affinity's training data; or None.
    command
        Recorded as the training command in the model card.
    progress
        ``(done, total)`` callback; may raise `Cancelled`.

    Returns
    -------
    TrainedModel
        The package and a line on how it scored.
    """
    if model == "spines":
        from napari_spines.training.spines import train_and_export

        return train_and_export(
            data,
            train_names,
            validate_name,
            out,
            progress=progress,
            minutes=minutes,
            device=device,
            command=command,
        )
    from napari_spines.training.affinity import train_and_export as train_affinities
    from napari_spines.training.affinity import user_volume

    extra = [] if own is None else [user_volume(*own)]
    return train_affinities(
        data,
        out,
        progress=progress,
        minutes=minutes,
        device=device,
        command=command,
        extra=extra,
    )
