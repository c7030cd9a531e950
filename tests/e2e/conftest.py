"""Fixtures for the headless tests: qgis_process with the plugin enabled in a profile of its own."""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path

import pytest

QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian's wrapper passes --noversioncheck, which 3.22 rejects


@pytest.fixture(scope="session")
def qgis_env(plugins_dir, tmp_path_factory):
    """The environment for qgis_process: this plugin enabled, a profile not shared with pytest-qgis."""
    if not Path(QGIS_PROCESS).exists():
        pytest.fail("qgis_process.bin is missing: run scripts/setup.sh")
    home = tmp_path_factory.mktemp("qgis-home")
    env = {
        **os.environ,
        "HOME": str(home),
        "QGIS_CUSTOM_CONFIG_PATH": str(home),  # a profile of its own, not the one pytest-qgis set up
        "QGIS_PLUGINPATH": str(plugins_dir),
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
    }
    enable = [QGIS_PROCESS, "plugins", "enable", "iso_tile_stylizer"]
    proc = subprocess.run(enable, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    return env
