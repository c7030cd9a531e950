"""google-genai installed for the plugin: pip --target into a folder the plugin owns, importable afterwards."""

from __future__ import annotations

import subprocess
import sys

from isotiles_testing import dummy_wheel

from iso_tile_stylizer.iso_qgis import pyinstall


def test_the_install_command_puts_google_genai_in_the_plugins_folder(tmp_path):
    wheels = tmp_path / "wheels"
    dummy_wheel(wheels)  # google-genai 3.4.0, made here: the real requirement string resolves to it
    target = pyinstall.packages_dir(tmp_path / "profile")
    assert target == tmp_path / "profile" / "iso_tile_stylizer" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    cmd = pyinstall.pip_command(target, find_links=str(wheels))
    assert cmd[-1] == pyinstall.GENAI_REQUIREMENT and "--target" in cmd and "--user" not in cmd
    # the system Python, as QGIS runs it: on Debian 12 it refuses --user (externally managed), not --target
    cmd[0] = "/usr/bin/python3" if sys.platform.startswith("linux") else sys.executable
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "google" / "genai" / "__init__.py").is_file()
    # importable afterwards once the plugin has put the folder on sys.path, ahead of any other google-genai
    probe = (
        "import sys; from iso_tile_stylizer.iso_qgis.pyinstall import use_packages_dir; "
        f"assert use_packages_dir({str(target)!r}); "
        "import google.genai as g; print(g.__version__, g.DUMMY, g.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         cwd=str(tmp_path), env=_env_with_plugin())  # fmt: skip
    assert out.returncode == 0, out.stderr
    version, dummy, path = out.stdout.split()
    assert (version, dummy) == ("3.4.0", "True") and path.startswith(str(target))


def test_a_folder_that_does_not_exist_is_left_off_sys_path(tmp_path):
    before = list(sys.path)
    assert not pyinstall.use_packages_dir(tmp_path / "nope")
    assert sys.path == before


def test_the_python_pip_runs_under_is_found():
    exe = pyinstall.python_executable()
    assert exe is not None
    out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert out.stdout.strip() == str(tuple(sys.version_info[:2]))


def test_the_hint_fits_the_platform(monkeypatch):
    monkeypatch.setattr(pyinstall.sys, "platform", "win32")
    assert "OSGeo4W Shell" in pyinstall.install_hint() and "--user" not in pyinstall.install_hint()
    monkeypatch.setattr(pyinstall.sys, "platform", "darwin")
    assert "QGIS.app" in pyinstall.install_hint()
    monkeypatch.setattr(pyinstall.sys, "platform", "linux")
    if (pyinstall.Path("/usr/lib/python3/dist-packages")).is_dir():
        assert (
            "--break-system-packages" in pyinstall.install_hint() and "Install google-genai" in pyinstall.install_hint()
        )


def _env_with_plugin():
    import os
    from pathlib import Path

    import iso_tile_stylizer

    plugins = str(Path(iso_tile_stylizer.__path__[0]).parent)
    return {**os.environ, "PYTHONPATH": plugins}
