"""The plugin zip: what 'Install from ZIP' gets."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.e2e


def test_zip_holds_one_plugin_folder_without_tests(repo_root, tmp_path):
    out = tmp_path / "plugin.zip"
    subprocess.run([sys.executable, str(repo_root / "scripts" / "build_zip.py"), str(out)], check=True)
    names = zipfile.ZipFile(out).namelist()
    assert {n.split("/")[0] for n in names} == {"iso_tile_stylizer"}
    assert not [n for n in names if "/tests/" in n or n.endswith(".pyc")]
    for needed in ("metadata.txt", "__init__.py", "icon.svg", "iso_qgis/grid.py", "processing/provider.py",
                   "ui/plugin.py", "examples/buildings_to_stylized_mosaic.model3"):  # fmt: skip
        assert f"iso_tile_stylizer/{needed}" in names
    meta = configparser.ConfigParser()
    meta.read_string(zipfile.ZipFile(out).read("iso_tile_stylizer/metadata.txt").decode())
    assert meta["general"]["qgisMinimumVersion"] == "3.22"
    assert meta["general"]["qgisMaximumVersion"] == "4.99" and meta["general"]["supportsQt6"] == "True"
    assert meta["general"]["hasProcessingProvider"] == "yes"


def test_the_zip_loads_as_a_plugin_in_a_fresh_python(repo_root, tmp_path):
    out = tmp_path / "plugin.zip"
    subprocess.run([sys.executable, str(repo_root / "scripts" / "build_zip.py"), str(out)], check=True)
    zipfile.ZipFile(out).extractall(tmp_path / "plugins")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import iso_tile_stylizer\n"
        "from iso_tile_stylizer.iso_qgis.grid import load_tilejson\n"
        "print(callable(iso_tile_stylizer.classFactory))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "plugins")], capture_output=True, text=True, cwd="/"
    )
    assert proc.stdout.strip() == "True", proc.stderr
