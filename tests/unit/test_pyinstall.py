"""google-genai installed for the plugin: pip --target into a folder the plugin owns, importable afterwards."""

from __future__ import annotations

import subprocess
import sys

from isotiles_testing import dummy_wheel

from iso_tile_stylizer.iso_qgis.util import pyinstall


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
        "import sys; from iso_tile_stylizer.iso_qgis.util.pyinstall import use_packages_dir; "
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


# ------------------------------------------------------------------ the engine's packages
def _wheel(folder, name, version, module, requires=()):
    """A pure-Python wheel with its dependencies declared (Requires-Dist), made by hand."""
    dummy_wheel(folder, name, version, module, tuple(requires))


def _pip_install(target, requirement, wheels, constraints=None):
    cmd = pyinstall.pip_command(target, requirement, find_links=str(wheels), constraints=constraints)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_install_is_pinned_to_what_the_python_has_and_keeps_only_what_was_missing(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    _wheel(wheels, "isotiles-engine", "2.0", "isotiles_engine", requires=["isotiles-base>=1"])
    _wheel(wheels, "isotiles-base", "1.0", "isotiles_base")
    _wheel(wheels, "isotiles-base", "3.0", "isotiles_base")  # newer: pip would take it, were it not pinned
    system = tmp_path / "system"  # the Python's own site: it has isotiles-base 1.0
    _pip_install(system, "isotiles-base==1.0", wheels)
    monkeypatch.syspath_prepend(str(system))
    target = tmp_path / "plugin-packages"
    pins = pyinstall.pins(target, ["isotiles-engine>=2"])
    assert "isotiles-base==1.0" in pins and not [p for p in pins if p.startswith("isotiles-engine")]
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    _pip_install(target, "isotiles-engine>=2", wheels, constraints)
    assert (target / "isotiles_base" / "__init__.py").read_text().startswith('__version__ = "1.0"\n')  # the pin held
    assert pyinstall.prune(target, keep=["isotiles-engine>=2"]) == ["isotiles-base"]
    assert sorted(p.name for p in target.iterdir()) == ["isotiles_engine", "isotiles_engine-2.0.dist-info"]
    assert (system / "isotiles_base" / "__init__.py").is_file()  # the Python's own copy is untouched


def test_prune_keeps_a_package_the_python_has_in_another_version(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    _wheel(wheels, "isotiles-base", "1.0", "isotiles_base")
    _wheel(wheels, "isotiles-base", "3.0", "isotiles_base")
    system = tmp_path / "system"
    _pip_install(system, "isotiles-base==1.0", wheels)
    monkeypatch.syspath_prepend(str(system))
    target = tmp_path / "plugin-packages"
    _pip_install(target, "isotiles-base==3.0", wheels)
    assert pyinstall.prune(target) == []
    assert (target / "isotiles_base" / "__init__.py").is_file()


def test_versions_with_a_local_label_are_pinned_to_their_public_part():
    assert pyinstall._public_version("1.24.2+dfsg") == "1.24.2"
    assert pyinstall._public_version("2.0.0rc1") == "2.0.0rc1"
    assert pyinstall._public_version("not-a-version") is None


def test_the_command_line_finds_the_profile_qgis_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("QGIS_CUSTOM_CONFIG_PATH", str(tmp_path / "cfg"))
    assert pyinstall.qgis_profile_dir("work") == tmp_path / "cfg" / "profiles" / "work"
    monkeypatch.delenv("QGIS_CUSTOM_CONFIG_PATH")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setattr(pyinstall.sys, "platform", "linux")
    assert pyinstall.qgis_profile_dir() == tmp_path / "share" / "QGIS" / "QGIS3" / "profiles" / "default"
    # run from a plugin installed in a profile: that profile, whatever the environment says
    plugin = tmp_path / "q" / "profiles" / "mine" / "python" / "plugins" / "iso_tile_stylizer" / "iso_qgis"
    monkeypatch.setattr(pyinstall, "__file__", str(plugin / "pyinstall.py"))
    assert pyinstall.qgis_profile_dir() == tmp_path / "q" / "profiles" / "mine"


def test_the_engine_plan_names_each_missing_package_and_why(monkeypatch):
    from iso_tile_stylizer.iso_qgis.util import deps

    monkeypatch.setitem(deps.REQUIRED, "isotiles_not_here", ("isotiles-not-here", (1, 2)))
    monkeypatch.setitem(deps.PURPOSE, "isotiles_not_here", "testing")
    requirements, why, pins = pyinstall.engine_install_plan("/nonexistent")
    assert requirements == ["isotiles-not-here>=1.2"]
    assert why == ["isotiles-not-here is not installed (needed for testing)"]
    assert any(p.startswith("numpy==") for p in pins)  # QGIS's numpy stays the one in use
