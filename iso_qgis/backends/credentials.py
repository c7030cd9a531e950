"""Credentials for the Gemini backends. Secrets live here only: never in settings, reports or logs."""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..util import netconfig
from ..util.errors import IsoInputError


def install_hint() -> str:
    from ..util.pyinstall import install_hint as hint

    return f"Install it into the Python that runs the plugin, {hint()} (see docs/backends.md), or use BACKEND=offline"


def genai_modules() -> tuple[Any, Any, Any]:
    """``google.genai`` and its ``types`` and ``errors``, or a clear error saying how to install it."""
    try:
        from google import genai
        from google.genai import errors, types
    except ImportError:
        raise IsoInputError("BACKEND", "the vertex and gemini backends need google-genai, which is not installed",
                            install_hint()) from None  # fmt: skip
    return genai, types, errors


class Credentials:
    """How to build a client for one API, and how to renew an access token after a 401."""

    def __init__(
        self,
        api: str,
        *,
        api_key: str | None = None,
        project: str | None = None,
        location: str = "global",
        access_token: str | None = None,
        token_provider: Callable[[], str | None] | None = None,
        adc: Any = None,
    ) -> None:
        self.api = api
        self._api_key = api_key
        self.project = project
        self.location = location or "global"
        self._token = access_token
        self._token_provider = token_provider
        self._adc = adc
        self.token_version = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show a secret, even in a traceback
        return f"Credentials(api={self.api!r}, project={self.project!r}, location={self.location!r})"

    # -------------------------------------------------------------- factories
    @classmethod
    def for_gemini(cls, api_key: str | None) -> Credentials:
        if not api_key:
            raise IsoInputError(
                "API_KEY",
                "the gemini backend needs a Gemini API key and none was given",
                "Store it in the QGIS authentication manager and choose it in the plugin settings "
                "(command line: set GOOGLE_API_KEY)",
            )
        return cls("gemini", api_key=api_key)

    @classmethod
    def for_vertex(
        cls,
        project: str | None,
        location: str | None = None,
        access_token: str | None = None,
        token_provider: Callable[[], str | None] | None = None,
    ) -> Credentials:
        if not project:
            raise IsoInputError(
                "PROJECT",
                "the vertex backend needs a Google Cloud project and none was given",
                "Set the project in the plugin settings (command line: VERTEX_PROJECT)",
            )
        if access_token or token_provider:
            return cls("vertex", project=project, location=location or "global", access_token=access_token,
                       token_provider=token_provider)  # fmt: skip
        return cls("vertex", project=project, location=location or "global", adc=_adc_credentials())

    # -------------------------------------------------------------- use
    def make_client(self, genai: Any, http_options: Any) -> Any:
        if self.api == "gemini":
            return genai.Client(api_key=self._api_key, http_options=http_options)
        return genai.Client(vertexai=True, project=self.project, location=self.location,
                            credentials=self._google_credentials(), http_options=http_options)  # fmt: skip

    def google_credentials(self) -> Any:
        """The google-auth credentials Vertex AI is called with (Cloud Storage takes the same)."""
        return self._google_credentials()

    def _google_credentials(self) -> Any:
        if self._adc is not None:
            return self._adc
        token = self._token or (self._token_provider() if self._token_provider else None)
        if not token:
            raise IsoInputError("CREDENTIALS", "no access token for Vertex AI", "Set VERTEX_ACCESS_TOKEN or use ADC")
        from google.oauth2.credentials import Credentials as OAuthCredentials

        return OAuthCredentials(token)

    def refresh(self) -> bool:
        """After a 401: a fresh token (from the provider or ADC). False when there is none to get."""
        with self._lock:
            if self._adc is not None:
                try:
                    self._adc.refresh(netconfig.google_auth_request())
                except Exception:  # noqa: BLE001 (google.auth raises several kinds)
                    return False
                self.token_version += 1
                return True
            if self._token_provider is None:
                return False
            fresh = self._token_provider()
            if not fresh or fresh == self._token:
                return False
            self._token = fresh
            self.token_version += 1
            return True


def _adc_credentials() -> Any:
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        raise IsoInputError("CREDENTIALS", "google-auth is not installed", install_hint()) from None
    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError:
        raise IsoInputError(
            "CREDENTIALS",
            "no Application Default Credentials for Vertex AI",
            "Run 'gcloud auth application-default login', or set VERTEX_ACCESS_TOKEN to an access token",
        ) from None
    return creds
