"""Files of a tile set on a web server (``http(s)://``) or in a Cloud Storage bucket (``gs://``).

Fetched through the network settings (``netconfig.py``), with retries, concurrently when many are needed, and
kept in a local cache so a rerun does not fetch them again. A private bucket is read with the user's Google
credentials (``VERTEX_ACCESS_TOKEN`` or ``GOOGLE_OAUTH_ACCESS_TOKEN``, else Application Default Credentials).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin

from ..util import netconfig
from ..util.errors import IsoInputError

SCHEMES = ("http://", "https://", "gs://")
#: Largest file we fetch (a tile, a tilejson, a report); more is a wrong URL.
MAX_BYTES = 64 * 1024 * 1024
#: Concurrent fetches of one batch (a canvas's tile and its neighbors).
MAX_WORKERS = 8
#: How long a cached file is used before it is fetched again (seconds); ISOTILES_TILE_CACHE_TTL_S overrides it.
CACHE_TTL_S = 24 * 3600


def is_remote(location: str) -> bool:
    return location.startswith(SCHEMES)


def join(base: str, relative: str) -> str:
    """``relative`` (a tile template, a report's name) resolved against ``base``, a tile set's folder URL
    ending in ``/``, as a web map client resolves a tilejson's relative templates."""
    if is_remote(relative):
        return relative
    if base.startswith("gs://"):
        bucket, _, path = base[len("gs://") :].partition("/")
        joined = posixpath.normpath(posixpath.join("/" + path, relative)).lstrip("/")
        return f"gs://{bucket}/{joined}"
    return urljoin(base, relative)


def folder_of(url: str) -> str:
    """The folder URL (ending in ``/``) of a file URL."""
    return url.rsplit("/", 1)[0] + "/"


def fetch(url: str, what: str = "TILEJSON", attempts: int = 4, cache: bool = True) -> bytes | None:
    """The bytes at ``url``, None when there is nothing there (404); retried on 429, 5xx and network errors,
    then a clear error naming ``what`` (the input the URL came from). ``cache`` False: always ask the server
    (a tilejson or a report, which may change while the tiles stay)."""
    cached = _cache_get(url) if cache else None
    if cached is not None:
        return cached
    problem = ""
    for attempt in range(attempts):
        try:
            data = _fetch_gs(url) if url.startswith("gs://") else _fetch_http(url)
        except _Permanent as exc:
            raise IsoInputError(what, f"cannot fetch {url}: {exc}", _fix(url)) from None
        except _Transient as exc:
            problem = str(exc)
        else:
            if data is not None and cache:
                _cache_put(url, data)
            return data
        if attempt < attempts - 1:
            time.sleep(min(0.25 * 2**attempt, 4.0))
    raise IsoInputError(what, f"cannot fetch {url}: {problem}", _fix(url))


def fetch_many(urls: Iterable[str], what: str = "TILE") -> dict[str, bytes | None]:
    """Many URLs at once (at most ``MAX_WORKERS`` in flight)."""
    todo = list(dict.fromkeys(urls))
    if len(todo) <= 1:
        return {u: fetch(u, what) for u in todo}
    with ThreadPoolExecutor(min(MAX_WORKERS, len(todo)), thread_name_prefix="iso-fetch") as pool:
        return dict(zip(todo, pool.map(lambda u: fetch(u, what), todo)))


def _fix(url: str) -> str:
    if url.startswith("gs://"):
        return ("Check the bucket and object, and that your Google account may read them (VERTEX_ACCESS_TOKEN, or "
                "'gcloud auth application-default login')")  # fmt: skip
    return ("Check the URL, the server and the network settings: the proxy, and the certificates trusted "
            "(QGIS's authentication manager; --ca_bundle or SSL_CERT_FILE)")  # fmt: skip


class _Transient(Exception):
    pass


class _Permanent(Exception):
    pass


def _fetch_http(url: str) -> bytes | None:
    import urllib.error

    try:
        with netconfig.urlopen(url, timeout=60) as resp:
            return _read_capped(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code}") from None
        raise _Permanent(f"HTTP {exc.code} {exc.reason}") from None
    except OSError as exc:
        if isinstance(getattr(exc, "reason", exc), ssl.SSLError):  # asking again will not change a certificate
            raise _Permanent(str(exc)) from None
        raise _Transient(str(exc)) from None


def _read_capped(resp: Any) -> bytes:
    data = resp.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _Permanent(f"more than {MAX_BYTES // 2**20} MB")
    return data


# ------------------------------------------------------------------ Cloud Storage
_STORAGE: dict[str, Any] = {}
_STORAGE_LOCK = threading.Lock()


def _storage() -> Any:
    """One Cloud Storage client (the batch jobs' own, ``backends/gcs.py``) for the current settings."""
    from ..backends.gcs import Storage, storage_endpoint

    token = os.environ.get("VERTEX_ACCESS_TOKEN") or os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN") or ""
    key = f"{storage_endpoint()} {netconfig.current()!r} {hashlib.sha256(token.encode()).hexdigest()}"
    with _STORAGE_LOCK:
        client = _STORAGE.get(key)
        if client is None:
            client = _STORAGE[key] = Storage(_google_credentials(), timeout_s=60.0)
        return client


def _google_credentials() -> Any:
    token = os.environ.get("VERTEX_ACCESS_TOKEN") or os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN")
    try:
        if token:
            from google.oauth2.credentials import Credentials

            return Credentials(token)
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        raise IsoInputError(
            "TILEJSON", "a gs:// tile set needs google-auth, which is not installed", "Install google-genai"
        ) from None
    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_only"])
    except DefaultCredentialsError:
        raise IsoInputError("TILEJSON", "no Google credentials to read a gs:// tile set", _fix("gs://")) from None
    return creds


def _fetch_gs(url: str) -> bytes | None:
    from urllib.parse import quote

    from google.auth.exceptions import GoogleAuthError

    from ..backends.gcs import split_gs_uri

    bucket, name = split_gs_uri(url, "TILEJSON")
    client = _storage()
    try:
        resp = client.session.get(
            f"{client.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}",
            params={"alt": "media"},
            timeout=client.timeout_s,
        )
    except OSError as exc:  # requests' connection errors are OSErrors
        raise _Transient(str(exc)) from None
    except GoogleAuthError as exc:  # a 401 whose token cannot be renewed
        raise _Permanent(f"HTTP 401, the credentials were refused ({type(exc).__name__})") from None
    if resp.status_code == 404:
        return None
    if resp.status_code == 429 or resp.status_code >= 500:
        raise _Transient(f"HTTP {resp.status_code}")
    if resp.status_code >= 400:
        raise _Permanent(f"HTTP {resp.status_code} {resp.text[:200]}")
    return resp.content


def json_files_beside(folder: str) -> list[str]:
    """The URLs of the JSON files directly in a remote folder, as far as the server tells (a bucket's
    listing, a web server's index page); names a renderer commonly writes are tried too."""
    found: list[str] = []
    try:
        if folder.startswith("gs://"):
            found = _gs_json_files(folder)
        else:
            import re

            page = (fetch(folder, cache=False, attempts=1) or b"").decode("utf-8", "replace")
            hrefs = re.findall(r'href="([^"?#/]+\.json)"', page)
            found = [join(folder, h) for h in hrefs]
    except IsoInputError:
        pass  # no index: the common names below
    common = ("render_report.json", "report.json", "whitebox_report.json", "render.json", "metadata.json")
    return list(dict.fromkeys(found + [join(folder, n) for n in common]))


def _gs_json_files(folder: str) -> list[str]:
    from urllib.parse import quote

    from ..backends.gcs import split_gs_uri

    bucket, prefix = split_gs_uri(folder, "TILEJSON")
    prefix = prefix + "/" if prefix else ""
    from google.auth.exceptions import GoogleAuthError

    client = _storage()
    try:
        resp = client.session.get(f"{client.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o",
                                  params={"prefix": prefix, "delimiter": "/"}, timeout=client.timeout_s)  # fmt: skip
    except (OSError, GoogleAuthError):
        return []  # the common names are still tried
    if resp.status_code >= 400:
        return []
    names = [item.get("name", "") for item in resp.json().get("items", [])]
    return [f"gs://{bucket}/{n}" for n in names if n.endswith(".json") and "/" not in n[len(prefix) :]]


# ------------------------------------------------------------------ local cache
def cache_dir() -> str:
    """``$ISOTILES_TILE_CACHE_DIR``, else ``iso_tile_stylizer/tiles`` in the user's cache folder."""
    given = os.environ.get("ISOTILES_TILE_CACHE_DIR")
    if given:
        return given
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "iso_tile_stylizer", "tiles")


def _cache_path(url: str) -> str:
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
    return os.path.join(cache_dir(), digest[:2], digest)


def _cache_get(url: str) -> bytes | None:
    path = _cache_path(url)
    try:
        ttl = float(os.environ.get("ISOTILES_TILE_CACHE_TTL_S", CACHE_TTL_S))
        if time.time() - os.path.getmtime(path) > ttl:
            return None
        with open(path, "rb") as fh:
            return fh.read()
    except (OSError, ValueError):
        return None


def _cache_put(url: str, data: bytes) -> None:
    path = _cache_path(url)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # whole or absent: a reader never sees half a tile
    except OSError:
        pass  # a cache that cannot be written only costs a fetch next time
