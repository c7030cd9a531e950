"""The QGIS plugin repository's upload checks, run on the plugin ZIP before it is uploaded.

python scripts/plugin_repo_check.py [ZIP]     (without ZIP: builds a development ZIP into .build/)

1. The upload validator's rules that need no network: the archive's names, one top folder that is a Python
   identifier, __init__.py, LICENSE, metadata.txt's [general] section with the required keys, no deprecated
   keys, well-formed links (whether they answer is checked online by the repository, not here).
2. Its file analysis: no executable .py files, no executables or shared libraries.
3. Bandit with the tests the repository enables: any finding blocks the upload, so any finding fails here.
   Every ``# nosec`` must name its test and give a reason after a second ``#``.

Prints one line per problem and exits 1 when there is any; 2 when the check itself cannot run.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/ (not the repository root: see DESIGN.md)
import build_zip

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 25_000_000
REQUIRED = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about", "tracker", "repository")
LINKS = ("tracker", "repository", "homepage")
#: keys the repository accepts but warns about
DEPRECATED = {"supportsQt6": "qgisMaximumVersion=4.99 already lists the plugin for QGIS 4; take it out"}
FORBIDDEN_DIRS = ("__MACOSX", ".git", "__pycache__")
SUSPICIOUS_SUFFIXES = (".exe", ".dll", ".so", ".dylib", ".bat", ".sh", ".ps1", ".cmd")
#: the Bandit tests the QGIS plugin repository enables (its bandit_rules.json): all Bandit has but B109, B404, B410
#: and B411 (B309 and B322 Bandit itself has removed)
NOT_ENABLED = (109, 309, 322, 404, 410, 411)
BANDIT_NUMBERS = (*range(101, 114), 201, 202, *range(301, 325), *range(401, 414), *range(501, 510), *range(601, 616))
BANDIT_TESTS = [f"B{n}" for n in (*BANDIT_NUMBERS, *range(701, 705)) if n not in NOT_ENABLED]
NOSEC_WITH_REASON = re.compile(r"#\s*nosec\s+B\d{3}(\s*,\s*B\d{3})*\s+#\s*\S")


class CheckError(Exception):
    """The check cannot run (no Bandit, no ZIP); the message says what to do."""


def validator_problems(zip_path: Path) -> list[str]:
    """What the repository's upload validator would refuse (or warn about), offline."""
    if zip_path.stat().st_size > MAX_BYTES:
        return [f"{zip_path.name} is {zip_path.stat().st_size} bytes, over the repository's {MAX_BYTES}"]
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        return [f"{zip_path} is not a ZIP file"]
    found: list[str] = []
    with zf:
        names = zf.namelist()
        for name in names:
            parts = name.split("/")
            if ".." in name or name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
                found.append(f"{name}: a path the repository refuses (.., leading /, backslash or drive letter)")
            if ".pyc" in name:
                found.append(f"{name}: compiled Python files are refused")
            found += [f"{name}: a {d} folder is refused" for d in FORBIDDEN_DIRS if d in parts]
        bad = zf.testzip()
        if bad:
            found.append(f"{bad}: damaged in the ZIP (CRC)")
        tops = sorted({n.split("/")[0] for n in names})
        if not names or "/" not in names[0]:
            return [*found, "the ZIP has no plugin folder at its top"]
        if len(tops) > 1:
            found.append(f"more than one top folder ({', '.join(tops)}): put everything in one")
        package = names[0].split("/")[0]
        if not package.isidentifier() or not re.match(r"^[A-Za-z][A-Za-z0-9_-]+$", package):
            found.append(f"top folder {package!r} is not a Python identifier starting with a letter")
        for needed in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{package}/{needed}" not in names:
                found.append(f"{package}/{needed} is missing")
        if f"{package}/metadata.txt" in names:
            found += metadata_problems(zf.read(f"{package}/metadata.txt").decode("utf-8"), package, set(names))
    return found


def metadata_problems(text: str, package: str = "", names: set[str] | None = None) -> list[str]:
    """metadata.txt as the repository reads it (configparser, with its % interpolation)."""
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    try:
        parser.read_string(text)
        meta = dict(parser.items("general")) if parser.has_section("general") else None
    except configparser.Error as exc:
        return [f"metadata.txt cannot be read: {exc}".replace("\n", " ")]
    if meta is None:
        return ["metadata.txt has no [general] section"]
    found = [f"metadata.txt lacks {key}" for key in REQUIRED if not meta.get(key, "").strip()]
    found += [f"metadata.txt: {key} is deprecated: {why}" for key, why in DEPRECATED.items() if key in meta]
    for key in LINKS:
        url = meta.get(key, "").strip()
        parsed = urlparse(url)
        if url and not (parsed.scheme in ("http", "https") and parsed.netloc):
            found.append(f"metadata.txt: {key}={url} is not a web address (http(s)://host/...)")
    if "/" in meta.get("author", ""):
        found.append("metadata.txt: author must not contain a slash")
    if "@" not in meta.get("email", "@"):
        found.append(f"metadata.txt: email={meta['email']} is no e-mail address")
    icon = meta.get("icon", "").removeprefix("./")
    if names is not None and icon and f"{package}/{icon}" not in names:
        found.append(f"metadata.txt: icon={icon} is not in the ZIP")
    return found


def file_problems(zip_path: Path) -> list[str]:
    """The repository's file analysis: executable .py files, executables and shared libraries."""
    found = []
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            if info.filename.endswith(".py") and (info.external_attr >> 16) & 0o111:
                found.append(f"{info.filename}: executable bit set on a Python file")
            if info.filename.lower().endswith(SUSPICIOUS_SUFFIXES):
                found.append(f"{info.filename}: an executable or shared library")
    return found


def bandit_command() -> list[str]:
    if importlib.util.find_spec("bandit") is not None:
        return [sys.executable, "-m", "bandit"]
    exe = shutil.which("bandit")
    if exe:
        return [exe]
    raise CheckError(
        "Bandit is not installed: run scripts/setup.sh (requirements-dev.txt), or pip install bandit into this Python"
    )


def bandit_problems(zip_path: Path) -> list[str]:
    """Bandit over the extracted ZIP with the repository's tests, at every severity, as the repository runs it."""
    with tempfile.TemporaryDirectory(prefix="repo-check-") as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        cmd = [*bandit_command(), "-r", tmp, "-f", "json", "-q", "-t", ",".join(BANDIT_TESTS)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise CheckError(f"Bandit gave no report (exit {proc.returncode}): {proc.stderr.strip()[:500]}") from None
        found = [
            f"{os.path.relpath(r['filename'], tmp)}:{r['line_number']}: {r['test_id']} {r['issue_text']}"
            for r in report.get("results", [])
        ]
        found += [f"{os.path.relpath(e['filename'], tmp)}: Bandit could not read it: {e['reason']}"
                  for e in report.get("errors", [])]  # fmt: skip
        for path in sorted(Path(tmp).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"#\s*nosec\b", line) and not NOSEC_WITH_REASON.search(line):
                    found.append(
                        f"{path.relative_to(tmp)}:{number}: a nosec must name its test and say why "
                        "(# nosec B310 # reason)"
                    )
    return found


def check(zip_path: Path) -> list[str]:
    if not zip_path.is_file():
        raise CheckError(f"{zip_path} does not exist: build it with make zip-dev, or give no ZIP to build one")
    return validator_problems(zip_path) + file_problems(zip_path) + bandit_problems(zip_path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args:
            zip_path = Path(args[0])
        else:
            zip_path = build_zip.build(ROOT / ".build" / "repo-check" / "iso_tile_stylizer.zip")
        problems = check(zip_path)
    except (CheckError, build_zip.BuildError) as exc:
        print(f"plugin_repo_check: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"plugin_repo_check: {p}")
    print(f"plugin_repo_check: {zip_path.name}: {len(problems)} problem(s) (validator offline rules, file analysis, "
          f"Bandit with the repository's {len(BANDIT_TESTS)} tests)")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
