"""Installing Python packages for the plugin (google-genai, and the engine's packages where QGIS's Python
lacks them): into a folder the plugin owns, put on ``sys.path``.

Debian 12 and Ubuntu 23.04+ refuse ``pip install --user`` into the system Python
(``externally-managed-environment``, PEP 668); ``pip install --target`` into a folder
of our own is allowed everywhere (Linux, Windows OSGeo4W, macOS) and touches nothing
else. The folder is named per Python version, since compiled packages (pydantic-core)
are built for one.

pip ``--target`` ignores what the Python already has and installs every dependency again (numpy among
them). A second numpy or GDAL binding ahead of QGIS's own on ``sys.path`` would replace the ones QGIS's
compiled modules were built against, so the engine's install pins every package the Python already has
to its version (``pins``), and takes those copies out of the folder afterwards (``prune``): the folder
ends up holding only what was missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
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


#: runs pip in a Python that may have none (standalone: see the module)
BOOTSTRAP = Path(__file__).resolve().parent / "pip_bootstrap.py"


def pip_command(
    target: str | os.PathLike[str],
    requirement: str | Sequence[str] = GENAI_REQUIREMENT,
    python: str | None = None,
    find_links: str | None = None,
    constraints: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The command that installs ``requirement`` (one or several) and their dependencies into ``target``.

    ``find_links`` installs from a folder of wheels only (offline); ``constraints`` is a pip constraints file.
    Wheels only (``--only-binary``): QGIS's Python has no compiler to build from source."""
    py = python or python_executable()
    if py is None:
        raise FileNotFoundError("no Python interpreter found next to QGIS's")
    # pip through ``pip_bootstrap.py``: the same as ``python -m pip`` where pip is installed; where it is not
    # (Debian's QGIS runs the system Python, without pip), pip's own wheel is taken (checked) and run
    cmd = [py, str(BOOTSTRAP), "install", "--disable-pip-version-check", "--no-input", "--upgrade",
           "--only-binary", ":all:", "--target", str(target)]  # fmt: skip
    if find_links:
        cmd += ["--no-index", "--find-links", str(find_links)]
    if constraints:
        cmd += ["--constraint", str(constraints)]
    return [*cmd, *([requirement] if isinstance(requirement, str) else requirement)]


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _public_version(version: str) -> str | None:
    """``1.24.2`` from ``1.24.2+dfsg`` (a distribution's local label is not on PyPI); None if not PEP 440-like."""
    public = version.split("+")[0]
    return public if re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", public) else None


def installed_elsewhere(target: str | os.PathLike[str]) -> dict[str, str]:
    """Distribution name -> version of what this Python has outside ``target`` (the first of each name wins,
    as an import would)."""
    skip = os.path.normcase(os.path.abspath(target))
    paths = [p for p in sys.path if os.path.normcase(os.path.abspath(p or ".")) != skip]
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=paths):
        name = dist.metadata["Name"]
        if name and canonical(name) not in found:
            found[canonical(name)] = dist.version
    return found


def pins(target: str | os.PathLike[str], installing: Iterable[str]) -> list[str]:
    """Constraint lines ``name==version`` for every package the Python has outside ``target`` but those being
    installed: pip then picks versions that work with them, and their copies can be taken out (``prune``)."""
    skip = {canonical(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in installing}
    lines = []
    for name, version in sorted(installed_elsewhere(target).items()):
        public = _public_version(version)
        if name not in skip and public is not None:
            lines.append(f"{name}=={public}")
    return lines


def prune(target: str | os.PathLike[str], keep: Iterable[str] = ()) -> list[str]:
    """Take out of ``target`` every distribution this Python also has elsewhere at the same version (but
    ``keep``); returns their names. Files go by the distribution's RECORD (its .dist-info among them), never
    outside ``target``."""
    root = Path(target).resolve()
    kept = {canonical(re.split(r"[<>=!~\[; ]", k, maxsplit=1)[0]) for k in keep}
    elsewhere = installed_elsewhere(root)
    removed = []
    for dist in importlib.metadata.distributions(path=[str(root)]):
        name = canonical(dist.metadata["Name"] or "")
        if not name or name in kept or elsewhere.get(name) is None:
            continue
        if _public_version(elsewhere[name]) != _public_version(dist.version):
            continue
        for file in dist.files or []:
            path = (root / file).resolve()
            if path.is_relative_to(root) and path.is_file():
                path.unlink()
        removed.append(name)
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def qgis_profile_dir(profile: str = "default") -> Path:
    """The QGIS profile folder this plugin runs in (QGIS's ``qgisSettingsDirPath()``), found without QGIS: the
    profile holding this copy of the plugin, else QGIS_CUSTOM_CONFIG_PATH's or the platform's default one."""
    here = list(Path(os.path.abspath(__file__)).parents)  # not resolved: a linked plugin folder counts too
    for i, folder in enumerate(here[:-3]):
        if folder.name == "plugins" and here[i + 1].name == "python" and here[i + 3].name == "profiles":
            return here[i + 2]
    custom = os.environ.get("QGIS_CUSTOM_CONFIG_PATH")
    if custom:
        root = Path(custom)
    elif sys.platform == "win32":
        root = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "QGIS" / "QGIS3"
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Application Support" / "QGIS" / "QGIS3"
    else:
        root = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "QGIS" / "QGIS3"
    return root / "profiles" / profile


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


#: run in a fresh Python with the folder first on sys.path: what the engine would import, and whether GDAL's
#: own Python binding (QGIS's) still opens a GeoTIFF that rasterio wrote, after rasterio's bundled GDAL loaded
_VERIFY = """
import json, os, sys, tempfile
sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2])
from iso_qgis.util.deps import needs
out = {"needs": [str(n) for n in needs()], "gdal": None}
if not out["needs"]:
    import numpy as np, rasterio
    from rasterio.transform import from_origin
    path = os.path.join(tempfile.mkdtemp(), "check.tif")
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=1, dtype="uint8",
                       crs="EPSG:3857", transform=from_origin(0, 3, 1, 1)) as ds:
        ds.write(np.full((1, 3, 4), 7, np.uint8))
    out["rasterio"] = rasterio.__file__
    try:
        from osgeo import gdal
    except ImportError:
        out["gdal"] = "no osgeo.gdal in this Python"
    else:
        ds = gdal.Open(path)
        ok = ds is not None and (ds.RasterXSize, ds.RasterYSize, int(ds.ReadAsArray()[0, 0])) == (4, 3, 7)
        out["gdal"] = "ok" if ok else "osgeo.gdal cannot read a GeoTIFF rasterio wrote"
print(json.dumps(out))
"""


def verify(target: str | os.PathLike[str], python: str | None = None, timeout: float = 300) -> dict:
    """What a fresh Python with ``target`` on its path still needs, and whether GDAL still reads rasters there
    (``gdal``: "ok", a problem, or None when the engine's packages are not all there to try)."""
    import json
    import subprocess

    py = python or python_executable() or sys.executable
    engine_parent = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(  # nosec B603 # our own interpreter, running our own code
        [py, "-c", _VERIFY, str(target), engine_parent], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        return {"needs": [f"the check failed: {proc.stderr.strip()[-800:]}"], "gdal": None}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def engine_install_plan(target: str | os.PathLike[str]) -> tuple[list[str], list[str], list[str]]:
    """(requirements to install, why each, constraint lines pinning what the Python has) for the engine."""
    from .deps import needs

    found = needs()
    requirements = [n.requirement for n in found]
    return requirements, [str(n) for n in found], pins(target, requirements) if requirements else []
