"""napari-spines' own settings, kept between sessions: for now the training store's folder.

A small JSON file, ``$NAPARI_SPINES_CONFIG`` if set, else ``settings.json`` in the platform's
config folder (``$XDG_CONFIG_HOME/napari-spines``, ``~/.config/napari-spines`` on Linux,
``~/Library/Application Support/napari-spines`` on macOS, ``%APPDATA%/napari-spines`` on
Windows). Written atomically; an unreadable file is treated as empty, never as an error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from napari_spines.io.atomic import atomic_path

TRAINING_STORE = "training_store"


def settings_path() -> Path:
    """Where the settings live (see the module's docstring)."""
    if env := os.environ.get("NAPARI_SPINES_CONFIG"):
        return Path(env).expanduser()
    if xdg := os.environ.get("XDG_CONFIG_HOME"):
        base = Path(xdg).expanduser()
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    else:
        base = Path.home() / ".config"
    return base / "napari-spines" / "settings.json"


def data_dir() -> Path:
    """napari-spines' data folder: ``$XDG_DATA_HOME/napari-spines``, else the platform's.

    ``~/.local/share`` (Linux), ``~/Library/Application Support`` (macOS), ``%LOCALAPPDATA%``
    (Windows), each with ``napari-spines`` under it.
    """
    if xdg := os.environ.get("XDG_DATA_HOME"):
        base = Path(xdg).expanduser()
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path.home() / ".local" / "share"
    return base / "napari-spines"


def load_settings() -> dict[str, Any]:
    """All settings; ``{}`` when the file is missing or unreadable."""
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_setting(key: str, value: Any) -> None:
    """Set one setting (JSON-serialisable ``value``; None removes it), written atomically.

    Parameters
    ----------
    key
        The setting's name, e.g. `TRAINING_STORE`.
    value
        Its new value.
    """
    settings = load_settings()
    if value is None:
        settings.pop(key, None)
    else:
        settings[key] = value
    with atomic_path(settings_path()) as tmp:
        tmp.write_text(json.dumps(settings, indent=2), encoding="utf-8")


def training_store() -> Path:
    """The training store folder the user picked last, else the default one.

    The default is ``training-store`` in the data folder (`data_dir`), e.g.
    ``~/.local/share/napari-spines/training-store``.
    """
    value = load_settings().get(TRAINING_STORE)
    if isinstance(value, str) and value:
        return Path(value).expanduser()
    return data_dir() / "training-store"
