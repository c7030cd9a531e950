"""Build the installable plugin: dist/iso_tile_stylizer.zip, one folder, no tests.

python3 scripts/build_zip.py [--release] [OUT.zip]

The ZIP's metadata.txt is the repository's, completed from the one home of each value: email, homepage,
tracker and repository from pyproject.toml's [project], the changelog from CHANGELOG.md. ``--release``
(``make zip``) refuses placeholder values; without it (``make zip-dev``, CI) a development ZIP is built and
the placeholders are named on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import stat
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
NAME = "iso_tile_stylizer"
FILES = ["metadata.txt", "__init__.py", "icon.svg", "resources.qrc", "README.md", "LICENSE", "CHANGELOG.md"]
PACKAGES = ["iso_qgis", "processing", "ui", "examples"]  # examples: the Graphical Modeler model and its region
#: the viewer page; its library files come from viewer/node_modules (npm ci, scripts/setup.sh) into viewer/lib
VIEWER_FILES = ["index.html", "viewer.js", "viewer.css", "library.json", "package.json", "package-lock.json"]
#: metadata.txt keys the build fills in (and the repository's file must not hold, so they live in one place)
FILLED = ("email", "homepage", "tracker", "repository", "changelog")
#: hosts reserved for examples (RFC 2606, RFC 6761): a value there was never filled in
PLACEHOLDER_HOSTS = ("example.org", "example.com", "example.net", "invalid", "localhost")


class BuildError(Exception):
    """The ZIP cannot be built as asked; the message says what to change."""


def viewer_library() -> dict[str, Path]:
    """``viewer/lib/<name>`` -> the file in viewer/node_modules, as viewer/library.json lists them."""
    spec = json.loads((ROOT / "viewer" / "library.json").read_text(encoding="utf-8"))["files"]
    files = {name: (ROOT / "viewer" / "node_modules" / path).resolve() for name, path in spec.items()}
    missing = [str(p.relative_to(ROOT)) for p in files.values() if not p.is_file()]
    if missing:
        raise BuildError(f"the viewer's library files are missing ({', '.join(missing)}): run scripts/setup.sh")
    return files


def project_table(pyproject: Path = ROOT / "pyproject.toml") -> dict:
    if tomllib is None:
        raise BuildError("reading pyproject.toml needs Python 3.11 or later (tomllib): run it with python3.11+")
    return tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})


def contact(project: dict) -> dict[str, str]:
    """email, homepage, tracker and repository from pyproject.toml's [project]."""
    urls = {k.lower(): v for k, v in project.get("urls", {}).items()}
    emails = [a["email"] for a in project.get("authors", []) if a.get("email")]
    found = {
        "email": emails[0] if emails else "",
        "homepage": urls.get("homepage", ""),
        "tracker": urls.get("tracker", urls.get("issues", "")),
        "repository": urls.get("repository", urls.get("source", "")),
    }
    missing = [k for k, v in found.items() if not v]
    if missing:
        raise BuildError(
            f"pyproject.toml's [project] lacks {', '.join(missing)}: "
            "set authors = [{name, email}] and [project.urls] Homepage, Tracker, Repository"
        )
    return found


def placeholders(values: dict[str, str]) -> list[str]:
    """The values still pointing at a host reserved for examples."""
    found = []
    for key, value in values.items():
        host = value.rpartition("@")[2] if key == "email" else (urlparse(value).hostname or "")
        if any(host == h or host.endswith("." + h) for h in PLACEHOLDER_HOSTS):
            found.append(f"{key}={value}")
    return found


def changelog(path: Path = ROOT / "CHANGELOG.md") -> list[tuple[str, list[str]]]:
    """(version heading, entries) for every released section of CHANGELOG.md, newest first."""
    sections: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif line.startswith("- ") and sections:
            sections[-1][1].append(line[2:].strip())
    return [(v, e) for v, e in sections if not v.lower().startswith("unreleased")]


def metadata_text(source: Path, values: dict[str, str], versions: list[tuple[str, list[str]]]) -> str:
    """The repository's metadata.txt with the filled-in keys added at the end of [general]."""
    lines = source.read_text(encoding="utf-8").splitlines()
    held = [ln.split("=", 1)[0] for ln in lines if re.match(rf"^({'|'.join(FILLED)})\s*=", ln)]
    if held:
        raise BuildError(
            f"metadata.txt holds {', '.join(held)}: they live in pyproject.toml and CHANGELOG.md; take them out"
        )
    version = next((ln.split("=", 1)[1].strip() for ln in lines if ln.startswith("version=")), "")
    if not any(heading.split()[0] == version for heading, _ in versions):
        raise BuildError(f"CHANGELOG.md has no section '## {version}' for metadata.txt's version={version}: add it")
    log = ["changelog="]
    for heading, entries in versions:
        log.append(f"    {heading}")
        log += [f"    - {e}".replace("%", "%%") for e in entries]  # configparser interpolates %
    filled = [f"{k}={v}" for k, v in values.items()] + log
    return "\n".join(lines + filled) + "\n"


def build(out: Path, release: bool = False) -> Path:
    values = contact(project_table())
    fake = placeholders(values)
    if fake and release:
        raise BuildError(
            f"placeholder values in pyproject.toml's [project] ({', '.join(fake)}): set the real ones, "
            "or build a development ZIP (make zip-dev)"
        )
    if fake:
        print(f"build_zip: development ZIP, not for upload: placeholders {', '.join(fake)}", file=sys.stderr)
    meta = metadata_text(ROOT / "metadata.txt", values, changelog())
    library = viewer_library()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in FILES:
            if name == "metadata.txt":
                _write(zf, f"{NAME}/{name}", meta.encode("utf-8"))
            else:
                _add(zf, ROOT / name, f"{NAME}/{name}")
        for pkg in PACKAGES:
            for path in sorted((ROOT / pkg).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    _add(zf, path, f"{NAME}/{path.relative_to(ROOT)}")
        for name in VIEWER_FILES:
            _add(zf, ROOT / "viewer" / name, f"{NAME}/viewer/{name}")
        for name, path in library.items():
            _add(zf, path, f"{NAME}/viewer/lib/{name}")
    tmp.replace(out)
    return out


def _write(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16  # no executable bit: the repository flags it
    zf.writestr(info, data)


def _add(zf: zipfile.ZipFile, path: Path, arcname: str) -> None:
    info = zipfile.ZipInfo.from_file(path, arcname)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    zf.writestr(info, path.read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "dist" / f"{NAME}.zip"))
    parser.add_argument("--release", action="store_true", help="refuse placeholder contact values and links")
    args = parser.parse_args(argv)
    try:
        print(build(Path(args.out), release=args.release))
    except BuildError as exc:
        print(f"build_zip: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
