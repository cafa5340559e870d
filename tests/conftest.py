"""Shared fixtures: isolated napari settings, the real-data folder, small synthetic arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_DATA = Path(os.environ.get("NAPARI_SPINES_DATA", SHARED_DATA))


@pytest.fixture(autouse=True, scope="session")
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep napari's settings and caches out of the user's home, per test session."""
    base = tmp_path_factory.mktemp("xdg")
    os.environ["XDG_CONFIG_HOME"] = str(base / "config")
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    os.environ.setdefault("NAPARI_CONFIG", str(base / "napari_settings.yaml"))


@pytest.fixture
def real_data() -> Path:
    """The shared real-data folder; skips the test where it is absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data not found at {REAL_DATA} (set NAPARI_SPINES_DATA)")
    return REAL_DATA


@pytest.fixture
def stack() -> np.ndarray:
    """A small uint16 ZYX stack with structure (not constant)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, size=(5, 24, 32), dtype=np.uint16)
