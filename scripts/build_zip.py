"""Build the installable plugin: dist/iso_tile_stylizer.zip, one folder, no tests.

python3 scripts/build_zip.py [OUT.zip]
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "iso_tile_stylizer"
FILES = ["metadata.txt", "__init__.py", "icon.svg", "resources.qrc", "README.md", "LICENSE"]
PACKAGES = ["iso_qgis", "processing", "ui", "examples"]  # examples: the Graphical Modeler model and its region
#: the viewer page; its library files come from viewer/node_modules (npm ci, scripts/setup.sh) into viewer/lib
VIEWER_FILES = ["index.html", "viewer.js", "viewer.css", "library.json", "package.json", "package-lock.json"]


def viewer_library() -> dict[str, Path]:
    """``viewer/lib/<name>`` -> the file in viewer/node_modules, as viewer/library.json lists them."""
    spec = json.loads((ROOT / "viewer" / "library.json").read_text(encoding="utf-8"))["files"]
    files = {name: ROOT / "viewer" / "node_modules" / path for name, path in spec.items()}
    missing = [str(p.relative_to(ROOT)) for p in files.values() if not p.is_file()]
    if missing:
        sys.exit(f"build_zip: the viewer's library files are missing ({', '.join(missing)}): run scripts/setup.sh")
    return files


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in FILES:
            zf.write(ROOT / name, f"{NAME}/{name}")
        for pkg in PACKAGES:
            for path in sorted((ROOT / pkg).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    zf.write(path, f"{NAME}/{path.relative_to(ROOT)}")
        for name in VIEWER_FILES:
            zf.write(ROOT / "viewer" / name, f"{NAME}/viewer/{name}")
        for name, path in viewer_library().items():
            zf.write(path, f"{NAME}/viewer/lib/{name}")
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / f"{NAME}.zip"))
