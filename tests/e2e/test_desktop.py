"""The plugin in the real QGIS desktop (under Xvfb): it loads, its menu and toolbar are there, no error.

A screenshot is kept as a test artifact in .build/artifacts/ (not committed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CHECK = r"""
import json, sys, traceback
from qgis.core import QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import QTimer
import qgis.utils

OUT = {out!r}
SHOT = {shot!r}

def check():
    status = {{"loaded": "iso_tile_stylizer" in qgis.utils.plugins, "actions": [], "errors": []}}
    try:
        win = qgis.utils.iface.mainWindow()
        plugin = qgis.utils.plugins.get("iso_tile_stylizer")
        status["plugin_file"] = sys.modules[type(plugin).__module__].__file__
        status["actions"] = sorted(a.objectName() for a in getattr(plugin, "actions", []))
        provider = QgsApplication.processingRegistry().providerById("isotiles")
        status["provider"] = provider is not None
        status["algorithms"] = sorted(a.id() for a in provider.algorithms())
        win.grab().save(SHOT)
    except Exception:
        status["errors"].append(traceback.format_exc())
    with open(OUT, "w") as fh:
        json.dump(status, fh)
    qgis.utils.iface.actionExit().trigger()

QTimer.singleShot(3000, check)
"""


def free_display() -> int:
    for n in range(90, 120):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture
def xvfb():
    if not shutil.which("Xvfb"):
        pytest.fail("Xvfb is missing: run scripts/setup.sh")
    n = free_display()
    proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1600x1000x24"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    yield f":{n}"
    proc.terminate()
    proc.wait(timeout=10)


def test_the_plugin_zip_installs_and_loads_in_the_qgis_desktop(xvfb, repo_root, tmp_path):
    """What "Install from ZIP" does: the zip unpacked into the profile's plugin folder, then enabled."""
    import sys
    import zipfile

    profiles = tmp_path / "profiles"
    ini = profiles / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    zip_path = tmp_path / "iso_tile_stylizer.zip"
    subprocess.run([sys.executable, str(repo_root / "scripts" / "build_zip.py"), str(zip_path)], check=True)
    zipfile.ZipFile(zip_path).extractall(profiles / "profiles" / "default" / "python" / "plugins")
    ini.write_text("[PythonPlugins]\niso_tile_stylizer=true\n[qgis]\ncheckVersion=false\n")
    artifacts = repo_root / ".build" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    status_file, shot = tmp_path / "status.json", artifacts / "qgis_desktop.png"
    script = tmp_path / "check.py"
    script.write_text(CHECK.format(out=str(status_file), shot=str(shot)))
    env = {**os.environ, "DISPLAY": xvfb, "HOME": str(tmp_path), "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    env.pop("QGIS_PLUGINPATH", None)  # only the installed copy may be found
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("QGIS_CUSTOM_CONFIG_PATH", None)
    proc = subprocess.run(
        ["/usr/bin/qgis.bin", "--profiles-path", str(profiles), "--nologo", "--noversioncheck", "--code", str(script)],
        env=env, capture_output=True, text=True, timeout=240, cwd=str(tmp_path),
    )  # fmt: skip
    assert status_file.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    status = json.loads(status_file.read_text())
    assert status["errors"] == [] and status["loaded"] and status["provider"]
    assert {"isotiles_generatetiles", "isotiles_draw_region", "isotiles_settings"} <= set(status["actions"])
    assert "isotiles:generatetiles" in status["algorithms"]
    assert status["plugin_file"].startswith(str(profiles)), status["plugin_file"]
    assert shot.stat().st_size > 10_000
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
