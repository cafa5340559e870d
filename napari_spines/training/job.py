"""One training or fine-tuning run, as the Train and Fine-tune widgets start them (in a child).

Also the ``napari-spines train`` line that stands for a Train widget run (`training_command`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_spines.progress import ProgressCallback, raise_if_cancelled
from napari_spines.training.export import TrainedModel
from napari_spines.training.finetune import FineTuned

#: ``--width`` of each model, as ``train spines|affinities`` defaults it.
WIDTHS = {"spines": 8, "affinities": 12}
#: ``--lr`` and ``--seed``, as the ``train`` commands default them.
LEARNING_RATE, SEED = 2e-3, 0


def training_command(model: str, settings: dict[str, Any], own: tuple[str, str] | None) -> str:
    """The ``napari-spines train`` command line that trains what the widget was set to.

    Parameters
    ----------
    model
        "spines" or "affinities".
    settings
        data, out, train_names, validate, minutes, device, width, lr, seed, recipe,
        every_section and defects, as the widget holds them.
    own
        Names of the viewer's stack and labels layers added to em-affinity's data, or None:
        they have no file, so the command says so after it.

    Returns
    -------
    str
        E.g. ``napari-spines train spines --data d --train a --validate b --out run ...``.
    """
    words = ["napari-spines", "train", model, "--data", str(settings["data"])]
    if model == "spines":
        words += ["--train", *settings["train_names"], "--validate", settings["validate"]]
    words += ["--out", str(settings["out"])]
    for name in ("minutes", "width", "lr", "seed", "device"):
        words += [f"--{name}", str(settings[name])]
    if model == "affinities":
        words += ["--recipe", settings["recipe"]]
        words += ["--every-section"] * settings["every_section"]
        words += ["--section-defects"] * settings["defects"]
    command = shlex.join(words)
    if own is not None:
        command += f" (and --add with the viewer's layers {own[0]!r} and {own[1]!r})"
    return command


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
    recipe: str | None = None,
    every_section: bool = False,
    defects: bool = False,
    progress: ProgressCallback | None = None,
    **options: Any,
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
    recipe
        em-affinity's recipe (`napari_spines.training.affinity.RECIPES`; None: the default);
        spine-2p has one.
    every_section
        em-affinity: train on every ISBI and gala section and choose nothing
        (`napari_spines.training.em_data.EVERY_SECTION`), as ``--every-section``.
    defects
        em-affinity: augment with missing and misaligned sections, as ``--section-defects``.
    progress
        ``(done, total)`` callback; may raise `Cancelled`.
    **options
        Further keywords of the model's ``train`` (``width``, ``lr``, ``seed``, ...).

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
            **options,
        )
    from napari_spines.training.affinity import train_and_export as train_affinities
    from napari_spines.training.em_data import EVERY_SECTION, SHIPPED_SPLIT, user_volume

    extra = [] if own is None else [user_volume(*own)]
    return train_affinities(
        data,
        out,
        progress=progress,
        minutes=minutes,
        device=device,
        command=command,
        extra=extra,
        recipe=recipe,
        split=EVERY_SECTION if every_section else SHIPPED_SPLIT,
        defects=defects,
        **options,
    )


def finetune_job(
    store: str,
    model: str,
    out: str,
    minutes: float,
    device: str,
    command: str = "",
    replay: str | None = None,
    on_record: Callable[[dict], None] | None = None,
    progress: ProgressCallback | None = None,
) -> FineTuned:
    """Fine-tune as ``napari-spines finetune`` does, passing each validation record on.

    Parameters
    ----------
    store, model, out
        The training store, the model to start from (name or package), the new package.
    minutes, device
        Time budget; "auto", "cpu" or "cuda".
    command
        Recorded as the fine-tuning command in the model card.
    replay
        A store mixed into half of the training crops against forgetting (``--replay``);
        None: none.
    on_record
        Gets each validation record (the Fine-tune widget's plot); None: none.
    progress
        ``(done, total)`` callback; may raise `Cancelled`. A Cancel also takes effect right
        after a validation, e.g. the one of the model as it is.

    Returns
    -------
    FineTuned
    """
    from napari_spines.training.finetune import finetune

    def on_validation(record: dict) -> None:
        if on_record is not None:
            on_record(dict(record))
        raise_if_cancelled(progress)

    return finetune(
        store,
        model,
        out,
        minutes=minutes,
        device=device,
        name=Path(out).name,
        replay=replay,
        command=command,
        progress=progress,
        on_validation=on_validation,
    )
