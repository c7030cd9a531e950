"""Build the installable plugin: dist/iso_tile_stylizer.zip, one folder, no tests.

python3 scripts/build_zip.py [OUT.zip]
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "iso_tile_stylizer"
FILES = ["metadata.txt", "__init__.py", "icon.svg", "resources.qrc", "README.md", "LICENSE"]
PACKAGES = ["iso_qgis", "processing", "ui", "examples"]  # examples: the Graphical Modeler model and its region


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
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / f"{NAME}.zip"))
