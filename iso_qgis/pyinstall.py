"""Installing google-genai for the plugin: into a folder the plugin owns, put on ``sys.path``.

Debian 12 and Ubuntu 23.04+ refuse ``pip install --user`` into the system Python
(``externally-managed-environment``, PEP 668); ``pip install --target`` into a folder
of our own is allowed everywhere (Linux, Windows OSGeo4W, macOS) and touches nothing
else. The folder is named per Python version, since compiled packages (pydantic-core)
are built for one.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

GENAI_REQUIREMENT = "google-genai>=3.4,<4"


def packages_dir(base: str | os.PathLike[str]) -> Path:
    """The plugin's own packages folder under ``base`` (the QGIS profile folder in the plugin)."""
    return Path(base) / "iso_tile_stylizer" / f"python{sys.version_info[0]}.{sys.version_info[1]}"


def use_packages_dir(path: str | os.PathLike[str]) -> bool:
    """Put the folder first on ``sys.path`` (its google-genai needs its own pydantic, not an older system one)."""
    p = str(path)
    if not os.path.isdir(p):
        return False
    if p not in sys.path:
        sys.path.insert(0, p)
    importlib.invalidate_caches()
    google = sys.modules.get("google")
    if google is not None and hasattr(google, "__path__"):  # a namespace package imported before the folder existed
        extra = os.path.join(p, "google")
        if os.path.isdir(extra) and extra not in list(google.__path__):
            google.__path__.append(extra)
    return True


def python_executable() -> str | None:
    """The Python interpreter QGIS embeds, as a program pip can run under (inside QGIS ``sys.executable``
    is QGIS itself)."""
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    major, minor = sys.version_info[:2]
    names = [f"python{major}.{minor}", f"python{major}", "python"]
    for prefix in dict.fromkeys([sys.exec_prefix, sys.prefix, sys.base_prefix]):
        for sub in ("bin", "", "Scripts"):
            for name in names:
                for cand in (Path(prefix) / sub / name, Path(prefix) / sub / f"{name}.exe"):
                    if cand.is_file():
                        return str(cand)
    found = shutil.which(f"python{major}.{minor}")
    return found


def pip_command(
    target: str | os.PathLike[str],
    requirement: str = GENAI_REQUIREMENT,
    python: str | None = None,
    find_links: str | None = None,
) -> list[str]:
    """The command that installs ``requirement`` and its dependencies into ``target``.

    ``find_links`` installs from a folder of wheels only (offline)."""
    py = python or python_executable()
    if py is None:
        raise FileNotFoundError("no Python interpreter found next to QGIS's")
    cmd = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--upgrade",
           "--target", str(target)]  # fmt: skip
    if find_links:
        cmd += ["--no-index", "--find-links", str(find_links)]
    return [*cmd, requirement]


def user_install_flags() -> str:
    """pip's flags for the user site: Debian and Ubuntu mark the system Python externally managed (PEP 668)."""
    if sys.platform.startswith("linux") and Path("/usr/lib/python3/dist-packages").is_dir():
        return "--user --break-system-packages"
    return "--user"


def install_hint() -> str:
    """The command a user can run by hand, for the platform QGIS runs on."""
    req = f"'{GENAI_REQUIREMENT}'"
    if sys.platform == "win32":
        return f'in the OSGeo4W Shell: python -m pip install "{GENAI_REQUIREMENT}"'
    if sys.platform == "darwin":
        return (
            "in Terminal: /Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install --user "
            f"{req} (or the Python of your QGIS build)"
        )
    if Path("/usr/lib/python3/dist-packages").is_dir():  # Debian, Ubuntu: PEP 668 refuses --user
        return (
            "Settings… ▸ Install google-genai (into the plugin's own folder); by hand: sudo apt install python3-pip, "
            f"then python3 -m pip install {user_install_flags()} {req}"
        )
    return f"python3 -m pip install --user {req}"
