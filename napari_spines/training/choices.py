"""What the Fine-tune widget offers and checks before it starts: plain Python, no Qt.

Which registered models can be fine-tuned, what a store holds per task, where a fine-tuned
package goes by default, and the checks of a request that are cheap enough for napari's thread
(`napari_spines.training.finetune.finetune` checks the rest, e.g. that the weights are a U-Net).
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import sys
from pathlib import Path

from napari_spines.models.package import ModelPackage
from napari_spines.training.store import TASK_OF_MODEL, TASKS, StoreContents, load_store

#: The held-out figure each store task is validated on: record key, axis title, better.
METRIC_OF_TASK = {
    "spines": ("f1", "held-out F1 (higher is better)"),
    "labels": ("adapted_rand_error", "held-out adapted Rand error (lower is better)"),
}
#: The part of a fine-tuned model's name that `default_output` drops before adding its own.
FINETUNED = "-finetuned"


def finetunable_models() -> list[ModelPackage]:
    """The registered models of a task a store feeds (`TASK_OF_MODEL`), with torch weights.

    Returns
    -------
    list of ModelPackage
        In `~napari_spines.models.registry.list_models` order.
    """
    from napari_spines.models.registry import list_models

    return [p for p in list_models() if p.spec.task in TASK_OF_MODEL and "torch" in p.runtimes]


def model_choices(packages: list[ModelPackage] | None = None) -> list[tuple[str, str]]:
    """``(label, package folder)`` of each fine-tunable model.

    A name that appears twice is shown with its version.

    Parameters
    ----------
    packages
        The packages; None: `finetunable_models`.

    Returns
    -------
    list of (str, str)
    """
    packages = finetunable_models() if packages is None else packages
    names = [p.spec.name for p in packages]
    return [
        (
            p.spec.name if names.count(p.spec.name) == 1 else f"{p.spec.name} {p.spec.version}",
            str(p.root),
        )
        for p in packages
    ]


def default_output(
    store: str | os.PathLike, model: str, now: datetime.datetime | None = None
) -> Path:
    """``models/NAME-finetuned-TIMESTAMP`` beside the store, ``NAME`` without ``-finetuned…``.

    Parameters
    ----------
    store
        The training store folder.
    model
        The base model's name.
    now
        The time stamped; None: now.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> when = datetime.datetime(2026, 3, 1, 9, 30, 5)
    >>> default_output("/data/store", "spine-2p-finetuned-20260201-101010", when).as_posix()
    '/data/models/spine-2p-finetuned-20260301-093005'
    """
    stem = model.split(FINETUNED)[0] or model
    now = datetime.datetime.now() if now is None else now
    return Path(store).expanduser().parent / "models" / f"{stem}{FINETUNED}-{now:%Y%m%d-%H%M%S}"


def store_summary(contents: StoreContents) -> str:
    """One line on what a store holds per task (newest versions), e.g. for the widget.

    Parameters
    ----------
    contents
        From `~napari_spines.training.store.load_store`.

    Returns
    -------
    str

    Examples
    --------
    >>> store_summary(StoreContents())
    'the store is empty'
    """
    counts = {task: len(contents.latest(task)) for task in TASKS}
    parts = [f"{n} {task} {'entry' if n == 1 else 'entries'}" for task, n in counts.items() if n]
    if not parts:
        return "the store is empty"
    return f"{', '.join(parts)} (newest versions)"


#: What fine-tuning says when torch is not installed.
NEEDS_TORCH = (
    "fine-tuning needs PyTorch: pip install 'napari-spines[torch]' (or see docs/getting-started.md)"
)


def torch_installed() -> bool:
    """Whether ``import torch`` would work, found without importing it (which takes seconds).

    Returns
    -------
    bool
    """
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    return importlib.util.find_spec("torch") is not None


def check_request(store: str | os.PathLike, package: ModelPackage, out: str | os.PathLike) -> str:
    """Check a fine-tuning request quickly (the manifest only); return the store task.

    Parameters
    ----------
    store
        The training store folder.
    package
        The model to fine-tune.
    out
        The new package's folder: new, empty, or an earlier model package (replaced).

    Returns
    -------
    str
        ``spines`` or ``labels``: what the model learns from.

    Raises
    ------
    ValueError
        A store that is missing or holds no entry of the model's task, a model of another task,
        an output folder that holds something other than a model package, or no torch.
    """
    store, out = Path(store).expanduser(), Path(out).expanduser()
    if not torch_installed():
        raise ValueError(NEEDS_TORCH)
    if str(store) in ("", "."):
        raise ValueError("Choose the training store folder first.")
    if not store.is_dir():
        raise ValueError(
            f"The training store {store} does not exist: save corrections there with the "
            "Training data widget first."
        )
    task = TASK_OF_MODEL.get(package.spec.task)
    if task is None:
        raise ValueError(
            f"{package.spec.name} is a {package.spec.task} model; fine-tuning works for "
            "spine-detection and affinities models."
        )
    if not load_store(store, verify=False).latest(task):
        raise ValueError(
            f"The training store {store} holds no {task} entries to fine-tune "
            f"{package.spec.name} on: save corrections with the Training data widget first."
        )
    if str(out) in ("", "."):
        raise ValueError("Choose the folder for the new model package.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: choose a folder for the new model package.")
    if out.is_dir() and any(out.iterdir()) and not (out / "model.yaml").is_file():
        raise ValueError(
            f"{out} holds files that are not a model package: choose a new folder for it."
        )
    return task
