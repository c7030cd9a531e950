"""Image model backends behind one small interface (see ``base``)."""

from __future__ import annotations

from .base import Backend, Failure, FailureKind, ImageRequest, ImageResult

BACKENDS = ("offline", "vertex", "gemini")


def make_backend(name: str, **options) -> Backend:
    """The backend called ``name`` (offline, vertex, gemini)."""
    from ..errors import IsoInputError

    if name == "offline":
        from .offline import OfflineBackend

        return OfflineBackend(**options)
    if name in ("vertex", "gemini"):
        raise IsoInputError(
            "BACKEND", f"the {name} backend is not available in this version", "Use BACKEND=offline for now"
        )
    raise IsoInputError("BACKEND", f"unknown backend {name!r}", f"Choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "Failure", "FailureKind", "ImageRequest", "ImageResult", "make_backend"]
