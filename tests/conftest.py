"""Shared fixtures: isolated napari settings, the real-data folder, small synthetic arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_spines.models import clear_cache
from tests.models.tiny import make_edge_affinity_package, make_tiny_package

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_DATA = Path(os.environ.get("NAPARI_SPINES_DATA", SHARED_DATA))


@pytest.fixture(autouse=True, scope="session")
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep settings, caches and the training store out of the user's home, per test session."""
    base = tmp_path_factory.mktemp("xdg")
    os.environ["XDG_CONFIG_HOME"] = str(base / "config")
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    os.environ["XDG_DATA_HOME"] = str(base / "data")  # the training store and its journal
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


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 1-in, 1-out package with ONNX and TorchScript weights (do not modify it)."""
    return make_tiny_package(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="session")
def edge_affinity_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deterministic affinity package: bright voxels are cells (do not modify it)."""
    return make_edge_affinity_package(tmp_path_factory.mktemp("edge") / "edge-affinity")


@pytest.fixture
def tiny_copy(tiny_package: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny package, free to break."""
    import shutil

    return Path(shutil.copytree(tiny_package, tmp_path / "tiny"))


@pytest.fixture(autouse=True)
def _model_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the user model folder and the zip cache at temporary folders; empty the cache."""
    monkeypatch.setenv("NAPARI_SPINES_MODELS", str(tmp_path / "user-models"))
    monkeypatch.setenv("NAPARI_SPINES_CACHE", str(tmp_path / "cache"))
    clear_cache()


@pytest.fixture(scope="session")
def identity_em_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``restore-em`` package whose network is the identity (do not modify it).

    See `tests.restoration.packages`; shared by the restoration and widget tests.
    """
    from tests.restoration.packages import make_identity_em_package

    return make_identity_em_package(tmp_path_factory.mktemp("restore-em") / "restore-em")
