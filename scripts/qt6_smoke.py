"""Import every ui/ and processing/ module under PyQt6, as QGIS 4 would load them.

Only what cannot be installed from PyPI is stubbed: qgis.core, qgis.gui, qgis.utils and QGIS's own
``processing`` package get placeholder names, just enough to import. ``qgis.PyQt.*`` are the real
PyQt6 modules, so a name Qt6 removed or moved (``QAction`` in QtWidgets, ``QRegExp``), an unscoped
enum read at import time, and the like fail here as they would in QGIS 4.

python scripts/qt6_smoke.py        (with PyQt6 installed; exits 1 and names what failed)
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "iso_tile_stylizer"
QT_MODULES = ["QtCore", "QtGui", "QtWidgets", "QtNetwork", "QtSvg", "QtXml", "QtSql", "QtTest", "QtPrintSupport"]
#: what the stubs must answer with a value, not a placeholder, for code that computes with it on import
QGIS_VALUES = {"QGIS_VERSION_INT": 40000, "QGIS_VERSION": "4.0.0-smoke", "QGIS_RELEASE_NAME": "smoke"}


class _StubMeta(type):
    """Any attribute of a stub class is another stub class (enums, nested classes, static methods)."""

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in QGIS_VALUES:
            return QGIS_VALUES[name]
        return _stub(f"{cls.__name__}.{name}")

    def __or__(cls, other):  # flags combined at import time: Flag.A | Flag.B
        return cls

    __ror__ = __or__


def _stub(name: str) -> type:
    def init(self, *args, **kwargs) -> None:
        pass

    return _StubMeta(name.rsplit(".", 1)[-1], (), {"__init__": init, "__qualname__": name})


class _StubModule(types.ModuleType):
    """A QGIS module that cannot be installed here: every name it is asked for is a stub class."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _stub(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


def install_qgis_stubs() -> None:
    from PyQt6 import sip

    qgis = types.ModuleType("qgis")
    qgis.__path__ = []  # a package, so that ``import qgis.core`` looks in sys.modules
    pyqt = types.ModuleType("qgis.PyQt")
    pyqt.__path__ = []
    sys.modules.update({"qgis": qgis, "qgis.PyQt": pyqt, "qgis.PyQt.sip": sip})
    qgis.PyQt = pyqt
    pyqt.sip = sip
    for name in QT_MODULES:
        try:
            mod = importlib.import_module(f"PyQt6.{name}")
        except ImportError:
            continue
        sys.modules[f"qgis.PyQt.{name}"] = mod
        setattr(pyqt, name, mod)
    for name in ("core", "gui", "utils", "analysis", "processing"):
        mod = _StubModule(f"qgis.{name}")
        sys.modules[mod.__name__] = mod
        setattr(qgis, name, mod)
    for name in ("processing", "processing.core", "processing.core.Processing", "processing.tools"):
        sys.modules[name] = _StubModule(name)
    core = sys.modules["qgis.core"]
    core.Qgis = _stub("qgis.core.Qgis")
    core.NULL = None


def plugin_modules() -> list[str]:
    names = [PACKAGE]
    for folder in ("ui", "processing"):
        names += [f"{PACKAGE}.{folder}.{p.stem}" for p in sorted((ROOT / folder).glob("*.py")) if p.stem != "__init__"]
    return names


def main() -> int:
    install_qgis_stubs()
    with tempfile.TemporaryDirectory(prefix="qt6smoke-") as tmp:
        (Path(tmp) / PACKAGE).symlink_to(ROOT, target_is_directory=True)
        sys.path.insert(0, tmp)
        failed = []
        modules = plugin_modules()
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 (every failure is reported, then the run fails)
                failed.append(name)
                print(f"FAIL {name}\n{traceback.format_exc()}", file=sys.stderr)
    print(f"qt6 smoke: {len(modules) - len(failed)} of {len(modules)} modules import under PyQt6")
    if failed:
        print("qt6 smoke: failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
