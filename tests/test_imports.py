"""Importing the package, its core, its CLI or its manifest must stay light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import napari_spines

HEAVY = ("torch", "onnxruntime", "napari", "qtpy", "PyQt6", "PySide6", "vispy")

CORE_MODULES = [
    "napari_spines",
    "napari_spines.io",
    "napari_spines.cli",
    "napari_spines.progress",
    "napari_spines.training.synthetic",
    "napari_spines._sample_data",
    "napari_spines._writer",
    "napari_spines.inference",
    "napari_spines.models",
    "napari_spines._cli_models",
    "napari_spines.io.outputs",
    "napari_spines.training.export",
    "napari_spines.training.classical",
    "napari_spines.training.unet",
    "napari_spines.segmentation.affinities",
    "napari_spines.segmentation.agglomeration",
    "napari_spines.segmentation.metrics",
    "napari_spines.segmentation.pipeline",
    "napari_spines.segmentation.proofreading",
    "napari_spines._cli_segment",
    "napari_spines.training.affinity",
]


def _heavy_modules_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_import_pulls_in_no_heavy_library(module):
    assert _heavy_modules_after(f"import {module}") == []


def test_reading_the_manifest_imports_nothing_heavy():
    code = (
        "from importlib.resources import files\nfrom npe2 import PluginManifest\n"
        "m = PluginManifest.from_file(files('napari_spines') / 'napari.yaml')\n"
        "assert m.name == 'napari-spines'"
    )
    assert _heavy_modules_after(code) == []


def _imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_modules_do_not_import_the_gui_layer():
    """Outside _widgets (and the lazy imports of the CLI and reader), no napari, Qt or widgets."""
    root = Path(napari_spines.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "_widgets" in path.parts or path.name in ("cli.py", "_reader.py"):
            continue
        for name in _imported_modules(path):
            if name.split(".")[0] in {"napari", "qtpy", "PyQt6", "PySide6"} or "_widgets" in name:
                offenders.append(f"{path.relative_to(root)}: {name}")
    assert offenders == []
