"""The public functions of the core say what they take and give (numpydoc sections).

Every public function and method outside ``_widgets`` and ``cli`` that takes arguments has a
``Parameters`` section, and one that returns something has ``Returns`` (``Yields`` for a
generator or context manager). Their Examples run as doctests (``--doctest-modules``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import napari_spines

ROOT = Path(napari_spines.__file__).parent


def _public_callables(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            yield node.name, node
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for sub in node.body:
                if not isinstance(sub, ast.FunctionDef) or sub.name.startswith("_"):
                    continue
                decorators = {ast.unparse(d) for d in sub.decorator_list}
                if not decorators & {"property", "cached_property"}:
                    yield f"{node.name}.{sub.name}", sub


def undocumented(root: Path = ROOT) -> list[str]:
    """``path:line name: what is missing`` for every public core callable short of sections."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in ("_widgets", "cli") or (path.name.startswith("_") and len(parts) == 1):
            continue
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        for name, node in _public_callables(ast.parse(path.read_text(encoding="utf-8"))):
            args = [a.arg for a in (*node.args.args, *node.args.kwonlyargs)]
            args = [a for a in args if a not in ("self", "cls")]
            doc = ast.get_docstring(node) or ""
            returns = node.returns is not None and ast.unparse(node.returns) != "None"
            missing = []
            if args and "Parameters\n" not in doc:
                missing.append("Parameters")
            if returns and args and not ("Returns\n" in doc or "Yields\n" in doc):
                missing.append("Returns")
            if missing:
                where = path.relative_to(root.parent)
                found.append(f"{where}:{node.lineno} {name}: {', '.join(missing)}")
    return found


def test_public_core_functions_have_numpydoc_sections():
    assert undocumented() == []


def test_the_check_finds_a_function_without_sections(tmp_path):
    module = tmp_path / "napari_spines" / "core.py"
    module.parent.mkdir()
    module.write_text('def f(x: int) -> int:\n    """Twice ``x``."""\n    return 2 * x\n')
    assert undocumented(module.parent) == ["napari_spines/core.py:1 f: Parameters, Returns"]
