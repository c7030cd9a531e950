"""The engine never imports qgis: it runs from a plain command line and under qgis_process alike."""

from __future__ import annotations

import ast
import subprocess
import sys

ENGINE_MODULES_SKIP = {"__main__"}


def engine_files(repo_root):
    return sorted((repo_root / "iso_qgis").rglob("*.py"))


def test_no_qgis_import_in_the_engine_source(repo_root):
    offenders = []
    for path in engine_files(repo_root):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(repo_root)}: {n}" for n in names if n == "qgis" or n.startswith(("qgis.", "PyQt"))
            ]
    assert offenders == []
    assert len(engine_files(repo_root)) > 10  # the walk found the engine


def test_every_engine_module_imports_with_qgis_blocked(repo_root, plugins_dir):
    modules = [
        ".".join(p.relative_to(repo_root).with_suffix("").parts)
        for p in engine_files(repo_root)
        if p.stem not in ENGINE_MODULES_SKIP
    ]
    code = (
        "import sys, importlib\n"
        "sys.modules['qgis'] = None\n"  # any `import qgis` now fails
        f"sys.path.insert(0, {str(plugins_dir)!r})\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module('iso_tile_stylizer.' + m.replace('/', '.'))\n"
        "print('ok', len(sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_dependency_check_names_what_is_missing(monkeypatch):
    from iso_tile_stylizer.iso_qgis.util import deps
    from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

    assert deps.problems() == []
    monkeypatch.setitem(deps.REQUIRED, "surely_not_a_module_xyz", ("surely-not-a-module", (1, 0)))
    monkeypatch.setitem(deps.REQUIRED, "numpy", ("numpy", (99, 0)))
    found = deps.problems()
    assert "surely-not-a-module is not installed" in found and any("numpy" in p and "too old" in p for p in found)
    try:
        deps.require()
    except IsoInputError as exc:
        assert exc.input_name == "PYTHON" and "pip install" in str(exc)
    else:
        raise AssertionError("require() must raise")
