"""The engine's modules import each other without a circle, and none takes another's private names.

Every import counts: at the top of a module, inside a function, and under ``TYPE_CHECKING``: a circle
hidden in a function is still two modules that cannot be understood one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["iso_qgis", *parts])


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name an ``from ... import`` names (relative imports resolved against ``module``)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> engine modules it imports; and every private name one module imports from another."""
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in files}
    private: list[str] = []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = resolve(mod, path.name == "__init__.py", node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in files:  # ``from . import run``: the module itself
                        targets.append(sub)
                    else:
                        targets.append(base)
                        if alias.name.startswith("_") and not alias.name.startswith("__") and base in files:
                            private.append(f"{mod} imports {base}.{alias.name}")
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                t = t.replace("iso_tile_stylizer.", "")
                while t and t not in files and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in files and t != mod:
                    graph[mod].add(t)
    return graph, private


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        color[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if color.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in color and (found := visit(n)) is not None:
                return found
        stack.pop()
        color[m] = 2
        return None

    for m in sorted(graph):
        if m not in color and (found := visit(m)) is not None:
            return found
    return None


def test_the_engine_has_no_import_circle(repo_root):
    graph, _ = import_graph(repo_root / "iso_qgis")
    assert len(graph) > 20 and graph["iso_qgis.run"]  # the walk found the engine and its imports
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_no_module_imports_another_ones_private_names(repo_root):
    _, private = import_graph(repo_root / "iso_qgis")
    assert private == []


TYPE_CHECKING_IMPORT = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import z\n"


@pytest.mark.parametrize(
    ("files", "circle"),
    [
        ({"a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n"}, True),
        ({"a.py": "from .b import y\n", "b.py": TYPE_CHECKING_IMPORT, "c.py": "from .a import q\n"}, True),
        ({"a.py": "from .b import y\n", "b.py": "from .c import z\n", "c.py": "import os\n"}, False),
    ],
)
def test_the_check_finds_circles_in_functions_and_type_checking_blocks(tmp_path, files, circle):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    graph, _ = import_graph(tmp_path)
    assert (find_cycle(graph) is not None) is circle


def test_the_check_finds_a_private_name(tmp_path):
    (tmp_path / "a.py").write_text("from .b import _Hidden, Shown\n")
    (tmp_path / "b.py").write_text("class _Hidden: ...\nclass Shown: ...\n")
    assert import_graph(tmp_path)[1] == ["iso_qgis.a imports iso_qgis.b._Hidden"]
