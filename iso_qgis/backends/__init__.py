"""Image model backends behind one small interface (see ``base``)."""

from __future__ import annotations

import os

from .base import Backend, Failure, FailureKind, ImageRequest, ImageResult

BACKENDS = ("offline", "vertex", "gemini")


CREDENTIAL_OPTIONS = ("api_key", "project", "location", "access_token", "token_provider")


def make_backend(name: str, **options) -> Backend:
    """The backend called ``name`` (offline, vertex, gemini).

    For vertex and gemini, credentials come from the options (the plugin passes what
    the QGIS authentication manager holds) or else from the environment (the seed's
    GOOGLE_API_KEY, VERTEX_PROJECT, VERTEX_LOCATION, VERTEX_ACCESS_TOKEN; then ADC).
    """
    import dataclasses

    from ..errors import IsoInputError

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
    raise IsoInputError("BACKEND", f"unknown backend {name!r}", f"Choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "Failure", "FailureKind", "ImageRequest", "ImageResult", "make_backend"]
