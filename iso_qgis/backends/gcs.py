"""Cloud Storage through its JSON API, for Vertex AI batch jobs (their JSONL in and out live in a bucket).

google-genai does not upload to Cloud Storage, and google-cloud-storage is not needed for three calls: an
upload, a listing and a download, over google-auth's ``AuthorizedSession`` (requests). The endpoint is
``https://storage.googleapis.com`` unless ``STORAGE_EMULATOR_HOST`` names another, as Google's own storage
clients do (``host:port`` or a URL).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from .. import netconfig
from ..errors import IsoInputError

DEFAULT_ENDPOINT = "https://storage.googleapis.com"


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
    """Upload, list and download objects with a google-auth credentials object."""

    def __init__(self, credentials: Any, endpoint: str | None = None, timeout_s: float = 300.0) -> None:
        from google.auth.transport.requests import AuthorizedSession

        # the proxy and certificates of the network settings, for the calls and the token refreshes
        self.session = AuthorizedSession(credentials, auth_request=netconfig.google_auth_request())
        netconfig.apply_to_session(self.session)
        self.endpoint = (endpoint or storage_endpoint()).rstrip("/")
        self.timeout_s = timeout_s

    def _check(self, resp: Any, what: str) -> Any:
        if resp.status_code >= 400:
            raise OSError(f"Cloud Storage {what}: HTTP {resp.status_code} {resp.text[:300]}")
        return resp

    def upload(self, uri: str, path: str, content_type: str = "application/jsonl") -> None:
        """Upload a local file (streamed, not read into memory)."""
        bucket, name = split_gs_uri(uri)
        url = f"{self.endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        headers = {"Content-Type": content_type, "Content-Length": str(os.path.getsize(path))}
        with open(path, "rb") as fh:
            resp = self.session.post(url, params={"uploadType": "media", "name": name}, data=fh, headers=headers,
                                     timeout=self.timeout_s)  # fmt: skip
        self._check(resp, f"upload of {uri}")

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
            page = self._check(self.session.get(url, params=params, timeout=self.timeout_s), f"listing {prefix_uri}")
            body = page.json()
            names += [f"gs://{bucket}/{item['name']}" for item in body.get("items", [])]
            token = body.get("nextPageToken")
            if not token:
                return names

    def download(self, uri: str) -> bytes:
        bucket, name = split_gs_uri(uri)
        url = f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        resp = self.session.get(url, params={"alt": "media"}, timeout=self.timeout_s)
        return self._check(resp, f"download of {uri}").content
