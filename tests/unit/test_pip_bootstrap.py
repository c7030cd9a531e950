"""pip for a Python without pip (Debian's QGIS runs the system Python): pip's own wheel, run as ``python -m pip``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iso_tile_stylizer.iso_qgis.util import pyinstall

NO_PIP = """import sys
from pathlib import Path
sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "pip").is_dir()]  # this Python has no pip
"""


def run_without_pip(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(NO_PIP)
    env = {**os.environ, "PYTHONPATH": str(blocker), "HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, str(pyinstall.BOOTSTRAP), *args], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def pip_wheel(tmp_path_factory) -> Path:
    """pip's wheel, as PyPI serves it (the machine's pip fetches it)."""
    folder = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "pip",
                    "-d", str(folder)], check=True, timeout=300)  # fmt: skip
    (wheel,) = folder.glob("pip-*.whl")
    return wheel


def test_the_blocker_hides_pip(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_PIP)
    proc = subprocess.run([sys.executable, "-c", "import pip"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(blocker)})  # fmt: skip
    assert proc.returncode != 0 and "No module named 'pip'" in proc.stderr


def test_a_python_without_pip_runs_pip_from_a_wheel_kept_beside_the_target(tmp_path, pip_wheel):
    target = tmp_path / "profile" / "python3"
    keep = target.parent / "pip-wheel"
    keep.mkdir(parents=True)
    (keep / pip_wheel.name).write_bytes(pip_wheel.read_bytes())
    proc = run_without_pip(tmp_path, "download", "--no-index", "--find-links", str(tmp_path / "none"), "--target",
                           str(target), "pip")  # fmt: skip
    assert "this Python has no pip" in proc.stderr and str(keep / pip_wheel.name) in proc.stderr
    assert "no such option: --target" in proc.stderr  # pip itself ran (from the wheel) and judged the arguments


def test_a_python_without_pip_installs_from_a_find_links_folder_offline(tmp_path, pip_wheel):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / pip_wheel.name).write_bytes(pip_wheel.read_bytes())
    target = tmp_path / "target"
    proc = run_without_pip(tmp_path, "install", "--no-index", "--find-links", str(wheels), "--target", str(target),
                           "--disable-pip-version-check", "pip")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (target / "pip" / "__init__.py").is_file()


def test_a_find_links_folder_without_pip_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_without_pip(tmp_path, "install", "--find-links", str(empty), "--target", str(tmp_path / "t"), "x")
    assert proc.returncode != 0 and "error: PIP: no pip wheel in" in proc.stderr


def test_the_install_command_runs_pip_through_the_bootstrap(tmp_path):
    cmd = pyinstall.pip_command(tmp_path / "t", "shapely>=2.0", python=sys.executable)
    assert cmd[:3] == [sys.executable, str(pyinstall.BOOTSTRAP), "install"] and pyinstall.BOOTSTRAP.is_file()
