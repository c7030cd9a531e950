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
    for needed in ("metadata.txt", "__init__.py", "icon.svg", "iso_qgis/grid/tilejson.py", "processing/provider.py",
                   "ui/plugin.py", "examples/buildings_to_stylized_mosaic.model3"):  # fmt: skip
        assert f"iso_tile_stylizer/{needed}" in names
    meta = configparser.ConfigParser()
    meta.read_string(zipfile.ZipFile(out).read("iso_tile_stylizer/metadata.txt").decode())
    assert meta["general"]["qgisMinimumVersion"] == "3.22"
    assert meta["general"]["qgisMaximumVersion"] == "4.99" and "supportsQt6" not in meta["general"]
    assert meta["general"]["hasProcessingProvider"] == "yes"


def test_zip_metadata_comes_from_pyproject_and_the_changelog(repo_root, tmp_path):
    import tomllib

    out = tmp_path / "plugin.zip"
    subprocess.run([sys.executable, str(repo_root / "scripts" / "build_zip.py"), str(out)], check=True)
    meta = configparser.ConfigParser()
    meta.optionxform = str
    meta.read_string(zipfile.ZipFile(out).read("iso_tile_stylizer/metadata.txt").decode())
    general = meta["general"]
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert general["email"] == project["authors"][0]["email"]
    assert (general["homepage"], general["tracker"], general["repository"]) == (
        project["urls"]["Homepage"], project["urls"]["Tracker"], project["urls"]["Repository"])  # fmt: skip
    changelog = general["changelog"].strip().splitlines()
    assert changelog[0].startswith(general["version"] + " ")  # the newest released version first
    assert "Unreleased" not in general["changelog"]
    for dependency in ("google-genai", "Google Cloud project", "Gemini API key", "self-hosted endpoint", "no account",
                       "numpy", "shapely", "pyproj", "rasterio", "pillow"):  # fmt: skip
        assert dependency in general["about"], dependency


def test_a_release_zip_refuses_placeholders_and_a_development_zip_names_them(repo_root, tmp_path):
    release = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "build_zip.py"), "--release", str(tmp_path / "r.zip")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert release.returncode == 2 and not (tmp_path / "r.zip").exists()
    assert "placeholder values in pyproject.toml" in release.stderr and "make zip-dev" in release.stderr
    dev = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "build_zip.py"), str(tmp_path / "d.zip")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "development ZIP, not for upload" in dev.stderr and "email=" in dev.stderr


def test_placeholder_hosts_are_told_from_real_ones(repo_root):
    sys.path.insert(0, str(repo_root / "scripts"))
    try:
        import build_zip
    finally:
        sys.path.remove(str(repo_root / "scripts"))
    assert build_zip.placeholders({"email": "a@example.org", "homepage": "https://www.example.com/x"}) == [
        "email=a@example.org", "homepage=https://www.example.com/x"]  # fmt: skip
    assert build_zip.placeholders({"email": "a@qgis.org", "homepage": "https://github.com/org/example.org"}) == []


def test_the_zip_loads_as_a_plugin_in_a_fresh_python(repo_root, tmp_path):
    out = tmp_path / "plugin.zip"
    subprocess.run([sys.executable, str(repo_root / "scripts" / "build_zip.py"), str(out)], check=True)
    zipfile.ZipFile(out).extractall(tmp_path / "plugins")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import iso_tile_stylizer\n"
        "from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson\n"
        "print(callable(iso_tile_stylizer.classFactory))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "plugins")], capture_output=True, text=True, cwd="/"
    )
    assert proc.stdout.strip() == "True", proc.stderr
