"""The QGIS plugin repository's upload checks (scripts/plugin_repo_check.py): the built ZIP passes them, and each
rule catches what it is there for."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def repo_check():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import plugin_repo_check
    finally:
        sys.path.remove(str(SCRIPTS))
    return plugin_repo_check


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "iso_tile_stylizer.zip"
    subprocess.run([sys.executable, str(SCRIPTS / "build_zip.py"), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def bandit(repo_check):
    try:
        return repo_check.bandit_command()
    except repo_check.CheckError as exc:
        pytest.skip(str(exc))


def rewritten(src: Path, dest: Path, change: dict[str, bytes | None], mode: dict[str, int] | None = None) -> Path:
    """A copy of the ZIP with files replaced, added (bytes) or dropped (None)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in change:
                continue
            zout.writestr(info, zin.read(info.filename))
        for name, data in change.items():
            if data is not None:
                info = zipfile.ZipInfo(name)
                info.external_attr = (0o100000 | (mode or {}).get(name, 0o644)) << 16
                zout.writestr(info, data)
    return dest


def test_the_built_zip_passes_every_check(repo_check, built_zip, bandit):
    assert repo_check.check(built_zip) == []


def test_the_zip_carries_the_viewer_libraries_licenses(built_zip):
    names = set(zipfile.ZipFile(built_zip).namelist())
    for name in ("LICENSE-leaflet.txt", "LICENSE-pmtiles.txt", "LICENSE-fflate.txt"):
        assert f"iso_tile_stylizer/viewer/lib/{name}" in names
    text = zipfile.ZipFile(built_zip).read("iso_tile_stylizer/viewer/lib/LICENSE-pmtiles.txt").decode()
    assert "Protomaps LLC" in text and "fflate" in text
    assert "MIT License" in zipfile.ZipFile(built_zip).read("iso_tile_stylizer/viewer/lib/LICENSE-fflate.txt").decode()


def test_an_assert_in_product_code_fails_the_bandit_check(repo_check, built_zip, bandit, tmp_path):
    bad = rewritten(
        built_zip, tmp_path / "bad.zip", {"iso_tile_stylizer/iso_qgis/extra.py": b"def f(x):\n    assert x\n"}
    )
    found = repo_check.bandit_problems(bad)
    assert found == ["iso_tile_stylizer/iso_qgis/extra.py:2: B101 Use of assert detected. The enclosed code will be "
                     "removed when compiling to optimised byte code."]  # fmt: skip


def test_a_nosec_without_its_test_and_reason_fails(repo_check, built_zip, bandit, tmp_path):
    code = b"import random\n\nA = random.random()  # nosec\nB = random.random()  # nosec B311 # a jitter\n"
    bad = rewritten(built_zip, tmp_path / "bad.zip", {"iso_tile_stylizer/iso_qgis/extra.py": code})
    found = repo_check.bandit_problems(bad)
    assert len(found) == 1 and found[0].startswith("iso_tile_stylizer/iso_qgis/extra.py:3: a nosec must name its test")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"iso_tile_stylizer/LICENSE": None}, "iso_tile_stylizer/LICENSE is missing"),
        ({"iso_tile_stylizer/x.pyc": b""}, "iso_tile_stylizer/x.pyc: compiled Python files are refused"),
        ({"iso_tile_stylizer/a/__pycache__/x.py": b""}, "a __pycache__ folder is refused"),
        ({"other/x.txt": b""}, "more than one top folder (iso_tile_stylizer, other)"),
        ({"iso_tile_stylizer/run.sh": b""}, "iso_tile_stylizer/run.sh: an executable or shared library"),
    ],
)
def test_the_validator_rules_catch_what_they_are_for(repo_check, built_zip, tmp_path, change, expected):
    bad = rewritten(built_zip, tmp_path / "bad.zip", change)
    found = repo_check.validator_problems(bad) + repo_check.file_problems(bad)
    assert any(expected in p for p in found), found


def test_an_executable_python_file_is_caught(repo_check, built_zip, tmp_path):
    name = "iso_tile_stylizer/iso_qgis/extra.py"
    bad = rewritten(built_zip, tmp_path / "bad.zip", {name: b""}, mode={name: 0o755})
    assert repo_check.file_problems(bad) == [f"{name}: executable bit set on a Python file"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("supportsQt6=True\n", "supportsQt6 is deprecated"),
        ("tracker=example.org/issues\n", "tracker=example.org/issues is not a web address"),
        ("changelog=100% new\n", "metadata.txt cannot be read"),  # the repository's parser interpolates %
    ],
)
def test_metadata_rules(repo_check, built_zip, extra, expected):
    text = zipfile.ZipFile(built_zip).read("iso_tile_stylizer/metadata.txt").decode()
    key = extra.split("=")[0]
    kept = "".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith(key + "=") and
                   not (key == "changelog" and ln.startswith("    ")))  # fmt: skip
    assert repo_check.metadata_problems(text) == []
    assert any(expected in p for p in repo_check.metadata_problems(kept + extra)), repo_check.metadata_problems(
        kept + extra
    )


def test_metadata_lacking_a_required_key(repo_check, built_zip):
    text = zipfile.ZipFile(built_zip).read("iso_tile_stylizer/metadata.txt").decode()
    without = "".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith("email="))
    assert repo_check.metadata_problems(without) == ["metadata.txt lacks email"]
