"""The import contract of the package, read from the source (every import, lazy ones too).

- No import cycle among the package's modules.
- The core (everything outside ``_widgets`` and the ``cli``) never imports napari, Qt or the
  widgets; only the npe2 reader may show a napari notification.
- Dock widgets never import each other or the command line; the command line reaches napari
  only through the viewer helper ``_widgets._app``, and only from ``cli.viewer``.
- Importing any module outside ``_widgets`` pulls in no heavy library (torch, napari, ...).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import napari_spines

ROOT = Path(napari_spines.__file__).parent
PACKAGE = "napari_spines"
HEAVY = ("torch", "onnxruntime", "napari", "qtpy", "PyQt6", "PySide6", "vispy")
GUI = {"napari", "qtpy", "PyQt6", "PySide6", "vispy", "magicgui", "superqt", "app_model"}
#: The one napari import the core may make, and why: the npe2 reader shows a bad file as one
#: notification instead of napari's traceback dialog.
CORE_MAY_IMPORT = {f"{PACKAGE}._reader": {"napari.utils.notifications"}}
VIEWER_HELPER = f"{PACKAGE}._widgets._app"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name → file."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join([package, *parts])] = path
    return names


def imports_of(path: Path, module: str, modules: set[str]) -> set[str]:
    """What ``module`` imports: package modules resolved to the module (or its package),
    outside modules by their full dotted name. Imports under ``if TYPE_CHECKING:`` are left out:
    they never run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module → everything it imports, for every module of the package."""
    files = module_names(root, package)
    return {name: imports_of(path, name, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles among the graph's own modules (strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def room(module: str) -> str:
    """Which room a module is in: "widget", "widget helper", "cli" or "core"."""
    parts = module.split(".")[1:]
    if parts[:1] == ["_widgets"]:
        return "widget helper" if len(parts) == 1 or parts[1].startswith("_") else "widget"
    return "cli" if parts[:1] == ["cli"] else "core"


def violations(graph: dict[str, set[str]], package: str = PACKAGE) -> list[str]:
    """Every import that breaks the contract of the module docstring, as ``a imports b``."""
    found = []
    for module, targets in sorted(graph.items()):
        kind = room(module)
        for target in sorted(targets):
            top = target.split(".")[0]
            own = top == package
            target_kind = room(target) if own else None
            allowed = CORE_MAY_IMPORT.get(module, set())
            bad = (
                (kind == "core" and top in GUI and target not in allowed)
                or (kind == "core" and target_kind in ("widget", "widget helper", "cli"))
                or (kind in ("widget", "widget helper") and target_kind == "cli")
                or (kind in ("widget", "widget helper") and target_kind == "widget")
                or (kind == "cli" and top in GUI)
                or (
                    kind == "cli"
                    and target_kind in ("widget", "widget helper")
                    and (target != VIEWER_HELPER or module != f"{package}.cli.viewer")
                )
            )
            if bad and target != module:
                found.append(f"{module} ({kind}) imports {target}")
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_every_import_keeps_the_contract():
    assert violations(import_graph()) == []


def test_the_contract_catches_a_core_module_importing_napari_and_a_cycle(tmp_path):
    """The checks themselves can fail: a small package that breaks each rule once."""
    root = tmp_path / "napari_spines"
    files = {
        "__init__.py": "",
        "core.py": "def f():\n    import napari\n    from napari_spines import other\n",
        "other.py": "from napari_spines.core import f\n",
        "cli/__init__.py": "from napari_spines._widgets import segmentation\n",
        "_widgets/__init__.py": "",
        "_widgets/segmentation.py": "from napari_spines._widgets.spine_detection import X\n",
        "_widgets/spine_detection.py": "X = 1\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    graph = import_graph(root)
    assert cycles(graph) == [["napari_spines.core", "napari_spines.other"]]
    assert violations(graph) == [
        "napari_spines._widgets.segmentation (widget) imports "
        "napari_spines._widgets.spine_detection",
        "napari_spines.cli (cli) imports napari_spines._widgets.segmentation",
        "napari_spines.core (core) imports napari",
    ]


#: Every module that must import light; ``__main__`` modules run the command, so they are left out.
NOT_WIDGETS = sorted(
    name
    for name in module_names(ROOT, PACKAGE)
    if room(name) not in ("widget", "widget helper") and not name.endswith("__main__")
)


def _heavy_modules_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])


def test_every_module_outside_the_widgets_is_counted():
    assert {"napari_spines.spines.detection", "napari_spines.training.spines"} <= set(NOT_WIDGETS)
    assert "napari_spines._widgets._app" not in NOT_WIDGETS


@pytest.mark.parametrize("module", NOT_WIDGETS)
def test_core_import_pulls_in_no_heavy_library(module):
    assert _heavy_modules_after(f"import {module}") == []


def test_reading_the_manifest_imports_nothing_heavy():
    code = (
        "from importlib.resources import files\nfrom npe2 import PluginManifest\n"
        "m = PluginManifest.from_file(files('napari_spines') / 'napari.yaml')\n"
        "assert m.name == 'napari-spines'"
    )
    assert _heavy_modules_after(code) == []
