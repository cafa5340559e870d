"""Where model packages are found: built into napari-spines, the user's model folder, a path."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

from napari_spines.models.package import SPEC_FILES, ModelPackage, open_package
from napari_spines.models.spec import ModelError
from napari_spines.settings import data_dir, load_settings, save_setting

logger = logging.getLogger(__name__)


def builtin_dir() -> Path:
    """The folder of packages shipped with napari-spines (``napari_spines/models/builtin``)."""
    return Path(__file__).resolve().parent / "builtin"


def user_dir() -> Path:
    """The user's model folder.

    ``$NAPARI_SPINES_MODELS``, else ``$XDG_DATA_HOME/napari-spines/models``, else the platform's
    data folder: ``~/.local/share`` (Linux), ``~/Library/Application Support`` (macOS),
    ``%LOCALAPPDATA%`` (Windows).
    """
    if env := os.environ.get("NAPARI_SPINES_MODELS"):
        return Path(env).expanduser()
    return data_dir() / "models"


def _candidates(folder: Path) -> list[Path]:
    """Package folders (holding a spec file) and ``.zip`` files directly inside ``folder``."""
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir() and any((entry / name).is_file() for name in SPEC_FILES):
            found.append(entry)
        elif entry.is_file() and entry.suffix.lower() == ".zip":
            found.append(entry)
    return found


#: The settings key of the packages registered where they are (fine-tuned ones).
REGISTERED = "registered_models"


def registered() -> list[Path]:
    """Packages registered by path (`register_package`) that still exist."""
    paths = load_settings().get(REGISTERED, [])
    return [Path(p) for p in paths if isinstance(p, str) and Path(p).exists()]


def register_package(path: str | os.PathLike) -> None:
    """Remember a package where it is, so `list_models` lists it (e.g. a fine-tuned model).

    Parameters
    ----------
    path
        The package folder; it is checked by `open_package` first.
    """
    path = Path(path).resolve()
    open_package(path)
    paths = [p for p in load_settings().get(REGISTERED, []) if isinstance(p, str)]
    if str(path) not in paths:
        save_setting(REGISTERED, [*paths, str(path)])


def list_models() -> list[ModelPackage]:
    """Every usable package: built-in ones first, then the user folder's, then registered ones.

    A broken package is skipped with a logged warning, so one bad folder cannot hide the rest.
    """
    packages = []
    seen: set[Path] = set()
    found = [
        (path, source)
        for folder, source in ((builtin_dir(), "built-in"), (user_dir(), "user"))
        for path in _candidates(folder)
    ]
    found += [(path, "registered") for path in registered()]
    for path, source in found:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            packages.append(open_package(path, source=source))
        except ModelError as exc:
            logger.warning("skipping model package %s: %s", path, exc)
    return packages


def nearest_voxel_size(
    packages: Sequence[ModelPackage], voxel_size_um: Sequence[float]
) -> list[ModelPackage]:
    """``packages`` ordered by how near their input voxel size is to ``voxel_size_um``.

    The distance is the sum over z, y and x of ``|log(model's / data's)|``, so a factor of two
    counts the same either way; ties keep the given order.

    Parameters
    ----------
    packages
        Opened model packages (e.g. `list_models`).
    voxel_size_um
        The data's voxel size (z, y, x) in µm.

    Returns
    -------
    list of ModelPackage
        The nearest first.
    """
    data = [float(v) for v in voxel_size_um][-3:]

    def distance(package: ModelPackage) -> float:
        model = package.spec.input.voxel_size_um[-len(data) :]  # y, x only for a 2D image
        return sum(abs(math.log(m / d)) for m, d in zip(model, data, strict=True) if m > 0 < d)

    return sorted(packages, key=distance)


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+-]", version))


def find_model(name_or_path: str, task: str | None = None) -> ModelPackage:
    """A package by path, by name (the newest version) or by ``name@version``.

    Parameters
    ----------
    name_or_path
        An existing path (package folder, spec file or ``.zip``), else a model name such as
        ``"spine-2p"`` or ``"spine-2p@0.1.2"``, looked up in `list_models`.
    task
        The task the model must have been made for, e.g. ``"spine-detection"``; None: any.

    Returns
    -------
    ModelPackage

    Raises
    ------
    ModelError
        Nothing matches (the message lists the available models), the package is broken, or
        ``task`` is given and the model was made for another task.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        package = open_package(path)
    else:
        name, _, version = name_or_path.partition("@")
        packages = list_models()
        matches = [
            p
            for p in packages
            if p.spec.name == name and (not version or p.spec.version == version)
        ]
        if not matches:
            available = ", ".join(f"{p.spec.name}@{p.spec.version}" for p in packages)
            hint = available or f"none; put packages in {user_dir()}"
            raise ModelError(f"no model named {name_or_path!r} (available: {hint})")
        package = max(matches, key=lambda p: _version_key(p.spec.version))
    if task is not None and package.spec.task != task:
        raise ModelError(f"model {package.spec.name!r} is a {package.spec.task} model, not {task}")
    return package
