"""The engine's modules import each other without a circle, none takes another's private names, and its
wings are layered: a wing never imports a later one.

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
    assert len(graph) > 20 and graph["iso_qgis.run.generation"]  # the walk found the engine and its imports
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


#: The engine's wings, lowest first: a wing imports only the wings before it. ``iso_qgis/__init__.py`` and
#: ``__main__.py`` stand above them all.
WINGS = ("util", "backends", "grid", "render", "imaging", "outputs", "plan", "run", "cli")
TOP_LEVEL_AT_MOST = 6
WING_AT_MOST = 15


def wing_of(module: str) -> str | None:
    """``iso_qgis.grid.tilegrid`` -> ``grid``; None for the engine's top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in WINGS) else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a wing to a later one (or to the top level), as ``a -> b``."""
    rank = {w: i for i, w in enumerate(WINGS)}
    found = []
    for mod, targets in sorted(graph.items()):
        here = wing_of(mod)
        if here is None:
            continue
        for t in sorted(targets):
            there = wing_of(t)
            if there is None or rank.get(there, len(WINGS)) > rank.get(here, len(WINGS)):
                found.append(f"{mod} -> {t}")
    return found


def wing_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    wings: dict[str, set[str]] = {}
    for mod, targets in graph.items():
        here = wing_of(mod)
        if here is None:
            continue
        wings.setdefault(here, set())
        for t in targets:
            there = wing_of(t)
            if there is not None and there != here:
                wings[here].add(there)
                wings.setdefault(there, set())
    return wings


def test_the_engine_is_in_wings(repo_root):
    root = repo_root / "iso_qgis"
    top = sorted(p.name for p in root.glob("*.py"))
    assert len(top) <= TOP_LEVEL_AT_MOST, top
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(WINGS)
    for wing in WINGS:
        modules = [p.name for p in (root / wing).glob("*.py") if p.name != "__init__.py"]
        assert modules and len(modules) <= WING_AT_MOST, (wing, modules)
        assert not [p for p in (root / wing).iterdir() if p.is_dir() and p.name != "__pycache__"]


def test_no_wing_imports_a_later_one(repo_root):
    graph, _ = import_graph(repo_root / "iso_qgis")
    assert graph["iso_qgis.run.engine"]  # the walk found the wings and their imports
    assert upward_imports(graph) == []


def test_no_import_circle_between_wings(repo_root):
    graph, _ = import_graph(repo_root / "iso_qgis")
    wings = wing_graph(graph)
    assert set(wings) == set(WINGS)
    cycle = find_cycle(wings)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("files", "upward", "circle"),
    [
        ({"grid/a.py": "def f():\n    from ..run.b import x\n", "run/b.py": "from ..grid.a import f\n"}, True, True),
        ({"util/a.py": "from ..cli.b import main\n", "cli/b.py": "import os\n"}, True, False),
        ({"run/b.py": "from ..grid import a\n", "grid/a.py": "from . import c\n", "grid/c.py": ""}, False, False),
    ],
)
def test_the_check_finds_an_upward_import(tmp_path, files, upward, circle):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    graph, _ = import_graph(tmp_path)
    assert bool(upward_imports(graph)) is upward
    assert (find_cycle(wing_graph(graph)) is not None) is circle


def adapter_imports(repo_root: Path) -> list[str]:
    """Every private engine name ``processing/`` and ``ui/`` import (``from ..iso_qgis.x import _y``)."""
    found = []
    for folder in ("processing", "ui"):
        for path in sorted((repo_root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and "iso_qgis" in (node.module or "").split("."):
                    found += [
                        f"{path.name}: {node.module}.{a.name}"
                        for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")
                    ]
    return found


def test_the_adapters_import_the_engines_public_names_only(repo_root):
    assert adapter_imports(repo_root) == []
