"""Cloud Storage through its JSON API, for Vertex AI batch jobs (their JSONL in and out live in a bucket).

google-genai does not upload to Cloud Storage, and google-cloud-storage is not needed for four calls: a
resumable upload, a listing, a download and a deletion, over google-auth's ``AuthorizedSession`` (requests).
The endpoint is ``https://storage.googleapis.com`` unless ``STORAGE_EMULATOR_HOST`` names another, as Google's
own storage clients do (``host:port`` or a URL).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ..util import netconfig
from ..util.errors import IsoInputError

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
#: a resumable upload's chunk: a multiple of 256 KiB, as the protocol asks; what a dropped connection costs again
CHUNK_BYTES = 8 * 1024 * 1024


def split_gs_uri(uri: str, setting: str = "BATCH_BUCKET") -> tuple[str, str]:
    """``("bucket", "path/in/it")`` of ``gs://bucket/path/in/it``; a clear error for anything else."""
    if not uri.startswith("gs://") or not uri[len("gs://") :].split("/", 1)[0]:
        raise IsoInputError(
            setting,
            f"{uri!r} is not a Cloud Storage location",
            "Give a bucket as gs://BUCKET or gs://BUCKET/PREFIX (the Vertex AI service agent must be able to "
            "read and write it)",
        )
    bucket, _, name = uri[len("gs://") :].partition("/")
    return bucket, name.strip("/")


def storage_endpoint() -> str:
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
    if not host:
        return DEFAULT_ENDPOINT
    return host.rstrip("/") if "://" in host else f"http://{host.rstrip('/')}"


class Storage:
    """Upload, list, download and delete objects with a google-auth credentials object.

    ``renew`` gives fresh credentials after a 401 (an access token lives an hour), or None when there are none:
    the request is then sent again with them, body and all."""

    def __init__(
        self,
        credentials: Any,
        endpoint: str | None = None,
        timeout_s: float = 300.0,
        renew: Callable[[], Any] | None = None,
        resumes: int = 5,
    ) -> None:
        self.endpoint = (endpoint or storage_endpoint()).rstrip("/")
        self.timeout_s = timeout_s
        self.renew = renew
        self.resumes = resumes  # dropped connections an upload survives in a row
        self._session(credentials)

    def _session(self, credentials: Any) -> None:
        from google.auth.transport.requests import AuthorizedSession

        # a 401 is ours to handle (renew); google-auth would try to refresh a bare token and raise; the proxy and
        # certificates of the network settings, for the calls and the token refreshes
        self.session = AuthorizedSession(
            credentials, refresh_status_codes=(), auth_request=netconfig.google_auth_request()
        )
        netconfig.apply_to_session(self.session)

    def _request(self, method: str, url: str, **kw: Any) -> Any:
        """One request, sent again with renewed credentials after a 401."""
        kw.setdefault("timeout", self.timeout_s)
        resp = self.session.request(method, url, **kw)
        if resp.status_code == 401 and self.renew is not None:
            fresh = self.renew()
            if fresh is not None:
                resp.close()
                self._session(fresh)
                resp = self.session.request(method, url, **kw)
        return resp

    def _check(self, resp: Any, what: str) -> Any:
        if resp.status_code >= 400:
            raise OSError(f"Cloud Storage {what}: HTTP {resp.status_code} {resp.text[:300]}")
        return resp

    def upload(self, uri: str, path: str, content_type: str = "application/jsonl") -> None:
        """Upload a local file with the resumable protocol, a chunk at a time: a dropped connection resumes from
        what the service has persisted instead of sending gigabytes again."""
        bucket, name = split_gs_uri(uri)
        total = os.path.getsize(path)
        url = f"{self.endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        headers = {"X-Upload-Content-Type": content_type, "X-Upload-Content-Length": str(total)}
        start = self._request("POST", url, params={"uploadType": "resumable", "name": name},
                              json={"name": name, "contentType": content_type}, headers=headers)  # fmt: skip
        session_url = self._check(start, f"upload of {uri}").headers.get("Location")
        if not session_url:
            raise OSError(f"Cloud Storage upload of {uri}: no upload session was opened")
        offset, drops = 0, 0
        with open(path, "rb") as fh:
            while True:
                fh.seek(offset)
                chunk = fh.read(CHUNK_BYTES)  # bytes, not the file: a request sent again sends them again
                span = f"bytes {offset}-{offset + len(chunk) - 1}/{total}" if chunk else f"bytes */{total}"
                try:
                    resp = self._request("PUT", session_url, data=chunk, headers={"Content-Range": span})
                except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors
                    drops += 1
                    if drops > self.resumes:
                        raise OSError(f"Cloud Storage upload of {uri}: the connection dropped {drops} times") from exc
                    offset = self._persisted(session_url, total, uri)
                    continue
                if resp.status_code in (200, 201):
                    return
                if resp.status_code == 308:
                    offset, drops = persisted_bytes(resp), 0
                    continue
                if resp.status_code >= 500 and drops < self.resumes:
                    drops += 1
                    offset = self._persisted(session_url, total, uri)
                    continue
                self._check(resp, f"upload of {uri}")
                raise OSError(f"Cloud Storage upload of {uri}: unexpected HTTP {resp.status_code}")

    def _persisted(self, session_url: str, total: int, uri: str) -> int:
        """How much of an upload the service holds (asked with an empty PUT, as the protocol says)."""
        resp = self._request("PUT", session_url, data=b"", headers={"Content-Range": f"bytes */{total}"})
        if resp.status_code in (200, 201):
            return total
        if resp.status_code != 308:
            self._check(resp, f"upload of {uri}")
        return persisted_bytes(resp)

    def list(self, prefix_uri: str) -> list[str]:
        """The ``gs://`` names of the objects under a prefix."""
        bucket, prefix = split_gs_uri(prefix_uri)
        url = f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o"
        names: list[str] = []
        token = None
        while True:
            params = {"prefix": prefix + "/" if prefix else ""}
            if token:
                params["pageToken"] = token
            page = self._check(self._request("GET", url, params=params), f"listing {prefix_uri}")
            body = page.json()
            names += [f"gs://{bucket}/{item['name']}" for item in body.get("items", [])]
            token = body.get("nextPageToken")
            if not token:
                return names

    def _object_url(self, uri: str) -> str:
        bucket, name = split_gs_uri(uri)
        return f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"

    def download(self, uri: str) -> bytes:
        resp = self._request("GET", self._object_url(uri), params={"alt": "media"})
        return self._check(resp, f"download of {uri}").content

    def delete(self, uri: str) -> bool:
        """Delete an object; False when it was not there."""
        resp = self._request("DELETE", self._object_url(uri))
        if resp.status_code == 404:
            return False
        self._check(resp, f"deletion of {uri}")
        return True

    def download_to(self, uri: str, path: str, chunk_bytes: int = 1 << 20) -> int:
        """Stream an object to a local file, a chunk at a time (an output can be gigabytes); its size."""
        size = 0
        with self._request("GET", self._object_url(uri), params={"alt": "media"}, stream=True) as resp:
            self._check(resp, f"download of {uri}")
            with open(path, "wb") as fh:
                for chunk in resp.iter_content(chunk_bytes):
                    size += fh.write(chunk)
        return size


def persisted_bytes(resp: Any) -> int:
    """The bytes an upload session holds, from a 308's ``Range: bytes=0-N`` (none: nothing yet)."""
    held = resp.headers.get("Range", "")
    return int(held.rsplit("-", 1)[1]) + 1 if "-" in held else 0
