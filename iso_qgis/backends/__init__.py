"""Image model backends behind one small interface (see ``base``), and what their calls cost.

May import util.
"""

from __future__ import annotations

import os

from .base import Backend, Failure, FailureKind, ImageRequest, ImageResult

BACKENDS = ("offline", "vertex", "gemini", "endpoint")


CREDENTIAL_OPTIONS = ("api_key", "project", "location", "access_token", "token_provider")


def make_backend(name: str, **options) -> Backend:
    """The backend called ``name`` (offline, vertex, gemini).

    For vertex and gemini, credentials come from the options (the plugin passes what
    the QGIS authentication manager holds) or else from the environment (the seed's
    GOOGLE_API_KEY, VERTEX_PROJECT, VERTEX_LOCATION, VERTEX_ACCESS_TOKEN; then ADC).
    """
    import dataclasses

    from ..util.errors import IsoInputError

    if name == "offline":
        from .offline import OfflineBackend

        allowed = {"pixel_size", "palette_size", "variation", "fail_tiles"}
        return OfflineBackend(**{k: v for k, v in options.items() if k in allowed})
    if name in ("vertex", "gemini"):
        from .credentials import Credentials, genai_modules
        from .genai_backend import GenAIBackend, GenAISettings

        genai_modules()  # says how to install google-genai if it is missing
        cred = {k: options.pop(k) for k in CREDENTIAL_OPTIONS if k in options}
        env = os.environ
        if name == "gemini":
            creds = Credentials.for_gemini(
                cred.get("api_key") or env.get("GOOGLE_API_KEY") or env.get("GEMINI_API_KEY")
            )
        else:
            token = cred.get("access_token") or env.get("VERTEX_ACCESS_TOKEN")
            provider = cred.get("token_provider")
            if provider is None and not cred.get("access_token") and token:
                provider = lambda: os.environ.get("VERTEX_ACCESS_TOKEN")  # noqa: E731 (re-read after a 401)
            creds = Credentials.for_vertex(
                cred.get("project") or env.get("VERTEX_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT"),
                cred.get("location") or env.get("VERTEX_LOCATION"),
                token,
                provider,
            )
        known = {f.name for f in dataclasses.fields(GenAISettings)} - {"api"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise IsoInputError("BACKEND", f"unknown backend settings {unknown}", f"Use {sorted(known)}")
        return GenAIBackend(GenAISettings(api=name, **options), creds)
    if name == "endpoint":
        return make_endpoint(options)
    raise IsoInputError("BACKEND", f"unknown backend {name!r}", f"Choose one of {', '.join(BACKENDS)}")


def make_endpoint(options: dict) -> Backend:
    """The ``endpoint`` backend: its URL from the options, else ``ISOTILES_ENDPOINT_URL``; its headers (a
    proxy's keys) from the options, else ``ISOTILES_ENDPOINT_HEADERS`` (a JSON object)."""
    import dataclasses
    import json
    import urllib.parse

    from ..util.errors import IsoInputError
    from .endpoint import ENV_URL, EndpointSettings
    from .endpoint import EndpointBackend as _Endpoint

    opts = dict(options)
    if opts.pop("fallback_model", ""):
        raise IsoInputError("FALLBACK_MODEL", "the endpoint backend has no fallback model", "Leave it empty")
    url = str(opts.pop("url", "") or os.environ.get(ENV_URL, "")).strip()
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise IsoInputError(
            "ENDPOINT_URL",
            f"{url!r} is not an http(s) URL" if url else "no endpoint URL given",
            f"Give the server's edit route, e.g. https://host/edit_b64 (--endpoint_url, or ${ENV_URL})",
        )
    headers = opts.pop("headers", None)
    if headers is None and os.environ.get("ISOTILES_ENDPOINT_HEADERS"):
        try:
            headers = json.loads(os.environ["ISOTILES_ENDPOINT_HEADERS"])
        except ValueError:
            headers = None
        if not isinstance(headers, dict):
            raise IsoInputError(
                "ISOTILES_ENDPOINT_HEADERS",
                "is not a JSON object",
                'Set it to e.g. {"Modal-Key": "...", "Modal-Secret": "..."}',
            )
    known = {f.name for f in dataclasses.fields(EndpointSettings)} - {"url", "headers"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise IsoInputError("BACKEND", f"unknown endpoint settings {unknown}", f"Use {sorted(known)}")
    if opts.get("model") == "":
        opts.pop("model")
    return _Endpoint(EndpointSettings(url=url, headers={str(k): str(v) for k, v in (headers or {}).items()}, **opts))


__all__ = ["BACKENDS", "Backend", "Failure", "FailureKind", "ImageRequest", "ImageResult", "make_backend"]
