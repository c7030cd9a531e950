"""The plugin ZIP carries the viewer with its library files: ZIP users have no npm."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.e2e


def test_the_zip_carries_the_viewer_library_files(repo_root, tmp_path):
    out = tmp_path / "plugin.zip"
    subprocess.run([sys.executable, str(repo_root / "scripts" / "build_zip.py"), str(out)], check=True)
    names = set(zipfile.ZipFile(out).namelist())
    spec = json.loads((repo_root / "viewer" / "library.json").read_text())["files"]
    for name in [*spec, "../index.html", "../viewer.js", "../viewer.css", "../library.json"]:
        path = f"iso_tile_stylizer/viewer/lib/{name}".replace("lib/../", "")
        assert path in names, path
    assert not [n for n in names if "node_modules" in n]
    zipfile.ZipFile(out).extractall(tmp_path / "plugins")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from iso_tile_stylizer.iso_qgis.outputs.publish import library_files\n"
        "print(sorted({str(p.parent.relative_to(sys.argv[1])) for p in library_files().values()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "plugins")], capture_output=True, text=True, cwd="/"
    )
    assert proc.stdout.strip() == "['iso_tile_stylizer/viewer/lib', 'iso_tile_stylizer/viewer/lib/images']", proc.stderr
